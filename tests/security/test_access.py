"""Who may call what, for every URL the project has: discovered from the URLconf, not listed by hand.

A new URL pattern fails ``test_every_url_pattern_is_classified`` until someone decides whether it
is public, for signed-in users, or for staff; and every staff URL is then checked to refuse
anonymous callers and signed-in non-staff users, for each HTTP method it might accept.
"""

from __future__ import annotations

import re

import pytest
from django.contrib import admin
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from predictor.models import PredictionLog
from predictor.predictions import serving

# Open to anyone unless PREDICTOR_PREDICTIONS_REQUIRE_AUTH is set; then for signed-in users.
PREDICTION_ACCESS = {
    "predictor:predict",
    "predictor:model-list",
    "predictor:model-detail",
    "api:predict",
    "api:predict-batch",
    "api:model-list",
    "api:model-active",
    "api:model-detail",
}
# Signing out needs no account either (a POST with the CSRF token; it only ends a session).
PUBLIC = {
    "api:schema",
    "api:docs",
    "api:docs-slash",
    "api:not-found",
    "predictor:favicon",
    "predictor:login",
    "predictor:logout",
}
# Clinicians record outcomes with their own accounts (predictor.add_outcome); they need not be staff.
AUTHENTICATED = {"api:outcome-create", "predictor:outcome-record"}
STAFF = {
    "api:model-train",
    "api:model-rollback",
    "api:model-promote",
    "api:model-monitoring",
    "api:prediction-list",
    "api:prediction-detail",
    "predictor:monitoring",
    "monitoring:metrics",
}
METHODS = ("get", "post", "put", "patch", "delete")


def _walk(patterns, prefix: str = "", namespace: str | None = None):
    for entry in patterns:
        if isinstance(entry, URLResolver):
            if entry.namespace == "admin":
                continue  # the admin site guards all its own views; tested below
            ns = entry.namespace or namespace
            yield from _walk(entry.url_patterns, prefix + str(entry.pattern), ns)
        elif isinstance(entry, URLPattern):
            name = f"{namespace}:{entry.name}" if namespace else entry.name
            yield name, prefix + str(entry.pattern)


def discovered() -> dict[str, str]:
    return dict(_walk(get_resolver().url_patterns))


def _url(route: str, ids: dict[str, object]) -> str:
    # <int:version> and friends become real ids, so a view that checks permissions late would
    # answer 200 and be caught.
    return "/" + re.sub(r"<(?:\w+:)?(\w+)>", lambda m: str(ids.get(m.group(1), 1)), route)


@pytest.fixture
def ids(active_version):
    single = serving.predict([25.0], channel="api")
    batch = serving.predict([25.0, 30.0], channel="batch")
    return {"version": active_version.version, "prediction_id": single.log_id, "batch_id": batch.log_id}


def test_every_url_pattern_is_classified():
    names = set(discovered())
    unclassified = names - PUBLIC - PREDICTION_ACCESS - AUTHENTICATED - STAFF
    assert not unclassified, f"Decide who may use these, and add them to this test: {sorted(unclassified)}"
    assert not (PUBLIC | PREDICTION_ACCESS | AUTHENTICATED | STAFF) - names, "a listed URL no longer exists"


def _refused(response, *, login_redirect_ok: bool = True) -> bool:
    if response.status_code in (401, 403):
        return True
    # Pages send anonymous browsers to the site's sign-in page (the admin's to its own) instead.
    return (
        login_redirect_ok
        and response.status_code == 302
        and response["Location"].startswith(("/login/?next=", "/admin/login/"))
    )


@pytest.mark.parametrize("name", sorted(STAFF))
def test_staff_urls_refuse_anonymous_non_staff_and_view_only_staff_for_every_method(
    name, ids, plain_user, view_only_staff, settings
):
    settings.PREDICTOR_METRICS_TOKEN = ""
    settings.PREDICTOR_METRICS_ALLOWED_IPS = []
    url = _url(discovered()[name], ids)
    anonymous, plain, viewer = Client(), Client(), Client()
    plain.force_login(plain_user)
    # is_staff alone opens nothing here: each URL needs a registry or prediction-log permission.
    viewer.force_login(view_only_staff)
    checked = 0
    for method in METHODS:
        for who, client in (("anonymous", anonymous), ("non-staff", plain), ("view-only staff", viewer)):
            response = client.generic(method.upper(), url, "{}", content_type="application/json")
            if response.status_code == 405:
                continue  # the method does not exist at all there
            assert _refused(response), f"{method.upper()} {url} as {who}: {response.status_code}"
            checked += 1
    assert checked >= 2


def _prediction_request(client, name: str, url: str):
    """The request each prediction-access URL is for: a POSTed BMI for predictions, a GET for reads."""
    if name == "predictor:predict":
        response = client.post(url, {"bmi": "27.5"})
        # A logged prediction is shown after a redirect (POST, redirect, GET) to the same page.
        return client.get(response["Location"]) if response.status_code == 303 else response
    if name == "api:predict":
        return client.post(url, {"bmi": 27.5}, content_type="application/json")
    if name == "api:predict-batch":
        return client.post(url, {"bmi": [27.5]}, content_type="application/json")
    return client.get(url)


@pytest.mark.parametrize("name", sorted(PREDICTION_ACCESS))
def test_prediction_urls_are_public_when_the_setting_is_off(name, ids, settings):
    settings.PREDICTOR_PREDICTIONS_REQUIRE_AUTH = False
    response = _prediction_request(Client(), name, _url(discovered()[name], ids))
    assert response.status_code == 200, (name, response.status_code)


@pytest.mark.parametrize("name", sorted(PREDICTION_ACCESS))
def test_prediction_urls_need_a_signed_in_user_when_the_setting_is_on(name, ids, plain_user, settings):
    settings.PREDICTOR_PREDICTIONS_REQUIRE_AUTH = True
    url = _url(discovered()[name], ids)
    logged = PredictionLog.objects.count()
    for method in METHODS:
        response = Client().generic(method.upper(), url, "{}", content_type="application/json")
        if response.status_code == 405:
            continue
        if name.startswith("api:"):
            assert response.status_code == 401, (method, url, response.status_code)
        else:
            # Browsers go to the sign-in page and come back to the page they asked for.
            assert response.status_code == 302, (method, url, response.status_code)
            assert response["Location"] == f"/login/?next={url}", response["Location"]
    anonymous = _prediction_request(Client(), name, url)
    assert anonymous.status_code in (302, 401)
    assert PredictionLog.objects.count() == logged, "an anonymous request was logged as a prediction"
    # Any signed-in user will do (clinicians are not staff).
    plain = Client()
    plain.force_login(plain_user)
    assert _prediction_request(plain, name, url).status_code == 200


def test_authenticated_urls_refuse_anonymous_callers(ids):
    for name in AUTHENTICATED - {"predictor:outcome-record"}:
        url = _url(discovered()[name], ids)
        response = Client().post(url, data={"observed": 100}, content_type="application/json")
        assert response.status_code == 401, (url, response.status_code)


def test_authenticated_urls_refuse_anonymous_callers_for_a_batch_item_too(ids):
    # A batch's outcomes go to the same URL, with the item's position: the same door, the same lock.
    url = _url(discovered()["api:outcome-create"], {**ids, "prediction_id": ids["batch_id"]})
    response = Client().post(url, data={"observed": 100, "position": 1}, content_type="application/json")
    assert response.status_code == 401, (url, response.status_code)


@pytest.mark.parametrize(
    ("entry", "body"),
    [("prediction_id", {"observed": 100}), ("batch_id", {"observed": 100, "position": 1})],
    ids=["single prediction", "batch item"],
)
def test_outcomes_need_the_add_outcome_permission_not_staff(ids, django_user_model, entry, body):
    url = _url(discovered()["api:outcome-create"], {**ids, "prediction_id": ids[entry]})
    plain = django_user_model.objects.create_user("nobody")
    client = Client()
    client.force_login(plain)
    assert client.post(url, data=body, content_type="application/json").status_code == 403
    plain.user_permissions.add(Permission.objects.get(content_type__app_label="predictor", codename="add_outcome"))
    client.force_login(django_user_model.objects.get(pk=plain.pk))  # a fresh user object: no permission cache
    response = client.post(url, data=body, content_type="application/json")
    assert response.status_code == 201
    assert (response.json()["prediction_id"], response.json()["position"]) == (ids[entry], body.get("position", 0))


def test_admin_refuses_anonymous_and_non_staff_users_on_every_registered_model(ids, plain_user):
    plain = Client()
    plain.force_login(plain_user)
    urls = [reverse("admin:index")]
    for model in admin.site._registry:
        prefix = f"admin:{model._meta.app_label}_{model._meta.model_name}"
        urls += [reverse(f"{prefix}_changelist"), reverse(f"{prefix}_add")]
        obj = model._default_manager.first()
        if obj is not None:
            urls.append(reverse(f"{prefix}_change", args=[obj.pk]))
    assert len(urls) > 5
    for url in urls:
        for who, client in (("anonymous", Client()), ("non-staff", plain)):
            response = client.get(url)
            assert response.status_code == 302 and response["Location"].startswith("/admin/login/"), (url, who)


def test_the_outcome_page_sends_anonymous_browsers_to_sign_in_and_refuses_accounts_without_the_permission(
    ids, plain_user
):
    for method in ("get", "post"):
        response = getattr(Client(), method)(f"/outcomes/?reference={ids['prediction_id']}")
        assert response.status_code == 302
        assert response["Location"] == f"/login/?next=/outcomes/%3Freference%3D{ids['prediction_id']}"
    plain = Client()
    plain.force_login(plain_user)
    response = plain.post(f"/outcomes/?reference={ids['prediction_id']}", {"observed": "100"})
    assert response.status_code == 403
    assert "predictor.add_outcome" in response.content.decode()
