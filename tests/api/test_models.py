"""Model registry endpoints: reads, train, promote, rollback, and who may call them."""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.middleware.csrf import _get_new_csrf_string
from django.test import override_settings

from predictor.ml.data import load_diabetes_bmi
from predictor.models import ModelVersion, PromotionEvent
from predictor.registry import services

pytestmark = pytest.mark.django_db

MANAGEMENT = [
    ("post", "/api/v1/models/train", {"epochs": 50}),
    ("post", "/api/v1/models/{version}/promote", {}),
    ("post", "/api/v1/models/rollback", {}),
    ("get", "/api/v1/predictions", None),
]


def call(client, method, url, body, version):
    url = url.format(version=version)
    if method == "get":
        return client.get(url)
    return client.post(url, body, format="json")


# --- Permissions ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "url", "body"), MANAGEMENT)
def test_management_refuses_anonymous_with_401(api, train_version, method, url, body):
    candidate = train_version(promote=False)
    response = call(api, method, url, body, candidate.version)

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"
    assert ModelVersion.objects.count() == 1
    assert not PromotionEvent.objects.exists()


@pytest.mark.parametrize(("method", "url", "body"), MANAGEMENT)
def test_management_refuses_plain_users_with_403(plain_token_client, train_version, method, url, body):
    candidate = train_version(promote=False)
    response = call(plain_token_client, method, url, body, candidate.version)

    assert response.status_code == 403
    assert response.json()["error"]["code"] == "permission_denied"
    assert ModelVersion.objects.count() == 1
    assert not PromotionEvent.objects.exists()


@pytest.mark.parametrize(("method", "url", "body"), MANAGEMENT)
def test_management_refuses_plain_user_sessions_with_403(client, plain_user, train_version, method, url, body):
    candidate = train_version(promote=False)
    client.force_login(plain_user)
    url = url.format(version=candidate.version)
    response = client.get(url) if method == "get" else client.post(url, body or {}, content_type="application/json")

    assert response.status_code == 403


@pytest.mark.parametrize(("method", "url", "body"), MANAGEMENT)
def test_management_refuses_view_only_staff_with_403_naming_the_permission(
    api, view_only_staff, train_version, method, url, body
):
    # The admin lets view-only staff look but not promote; the API must not be the way around it.
    active = train_version(promote=True)
    candidate = train_version(promote=False, random_state=1)
    services.model_version_promote(version=candidate.version, actor_name="test")  # something to roll back
    events = PromotionEvent.objects.count()
    api.force_authenticate(view_only_staff)
    response = call(api, method, url, body, active.version)

    assert response.status_code == 403
    error = response.json()["error"]
    assert error["code"] == "permission_denied"
    needed = "predictor.view_predictionlog" if method == "get" else "predictor.change_modelversion"
    assert needed in error["message"]
    assert ModelVersion.objects.count() == 2
    assert PromotionEvent.objects.count() == events


@pytest.mark.parametrize(("method", "url", "body"), MANAGEMENT)
def test_management_allows_superusers(api, admin_user, train_version, method, url, body):
    train_version(promote=True)
    second = train_version(promote=False, random_state=1)
    if url.endswith("rollback"):
        services.model_version_promote(version=second.version, actor_name="test")
    api.force_authenticate(admin_user)

    response = call(api, method, url, body, second.version)

    assert response.status_code == (201 if url.endswith("train") else 200), response.content


@pytest.mark.parametrize("client_fixture", ["staff_token_client", "staff_session_client"])
@pytest.mark.parametrize(("method", "url", "body"), MANAGEMENT)
def test_management_allows_staff_by_token_and_session(request, client_fixture, train_version, method, url, body):
    staff = request.getfixturevalue(client_fixture)
    train_version(promote=True)
    second = train_version(promote=False, random_state=1)
    if url.endswith("rollback"):
        services.model_version_promote(version=second.version, actor_name="test")  # something to roll back
    url = url.format(version=second.version)
    headers = {}
    if client_fixture == "staff_session_client":
        # A session caller must send the CSRF token, as a browser page would.
        token = _get_new_csrf_string()
        staff.cookies["csrftoken"] = token
        headers["HTTP_X_CSRFTOKEN"] = token

    response = staff.get(url) if method == "get" else staff.post(url, body, format="json", **headers)

    assert response.status_code == (201 if url.endswith("train") else 200), response.content


def test_staff_session_without_csrf_token_is_refused(staff_session_client, train_version):
    candidate = train_version(promote=False)

    response = staff_session_client.post(f"/api/v1/models/{candidate.version}/promote", {}, format="json")

    assert response.status_code == 403
    assert "CSRF" in response.json()["error"]["message"]
    assert ModelVersion.objects.get().status == "candidate"


def test_invalid_token_is_a_401(api, active_version):
    api.credentials(HTTP_AUTHORIZATION="Token not-a-real-token")

    response = api.post("/api/v1/models/rollback", {}, format="json")

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "authentication_failed"


# --- Reads ---------------------------------------------------------------------------------------


def test_model_list_shows_versions_with_metrics_and_status_newest_first(api, train_version):
    first = train_version(promote=True)
    second = train_version(promote=False, random_state=1)

    response = api.get("/api/v1/models")

    assert response.status_code == 200
    results = response.json()["results"]
    assert [r["version"] for r in results] == [second.version, first.version]
    assert [r["status"] for r in results] == ["candidate", "active"]
    assert results[1]["metrics"]["r2_test"] == pytest.approx(first.r2_test)
    assert set(results[1]["metrics"]) == {"r2_test", "mse_test", "mae_test", "r2_train", "mse_train"}
    assert "created_by" not in results[1]  # usernames are for staff callers only
    assert "loss_curve" not in results[1]


def test_model_list_names_who_trained_each_version_to_staff_only(api, staff_token_client, train_version, staff_user):
    services.model_version_train(dataset=load_diabetes_bmi(), random_state=0, user=staff_user)

    anonymous = api.get("/api/v1/models").json()["results"][0]
    staff = staff_token_client.get("/api/v1/models").json()["results"][0]

    assert "created_by" not in anonymous
    assert staff["created_by"] == "staff"


def test_model_detail_and_active_name_the_trainer_to_staff_only(api, staff_token_client, staff_user, db):
    version = services.model_version_train(dataset=load_diabetes_bmi(), random_state=0, user=staff_user).version
    for path in (f"/api/v1/models/{version.version}", "/api/v1/models/active"):
        assert "created_by" not in api.get(path).json()
        assert staff_token_client.get(path).json()["created_by"] == "staff"


def test_model_list_costs_two_queries_whatever_the_number_of_versions(api, train_version, django_assert_num_queries):
    for seed in range(3):
        train_version(promote=False, random_state=seed)
    with django_assert_num_queries(2):  # COUNT for the page, then the page
        response = api.get("/api/v1/models")
    assert len(response.json()["results"]) == 3


def test_model_detail_and_active(api, active_version):
    detail = api.get(f"/api/v1/models/{active_version.version}")
    active = api.get("/api/v1/models/active")

    assert detail.status_code == 200
    assert detail.json()["loss_curve"] == pytest.approx(active_version.loss_curve)
    assert active.status_code == 200
    assert active.json()["version"] == active_version.version
    assert active.json()["status"] == "active"


@pytest.mark.parametrize("version", [999, 2**31, 10**30])
def test_unknown_version_is_a_404(api, active_version, version):
    response = api.get(f"/api/v1/models/{version}")

    assert response.status_code == 404
    assert response.json()["error"]["message"] == f"Version {version} does not exist."


def test_active_without_an_active_version_is_a_404(api, train_version):
    train_version(promote=False)

    response = api.get("/api/v1/models/active")

    assert response.status_code == 404
    assert response.json()["error"]["message"] == "No model version is active."


@override_settings(PREDICTOR_PREDICTIONS_REQUIRE_AUTH=True)
def test_model_reads_follow_the_prediction_access_setting(api, plain_token_client, active_version):
    assert api.get("/api/v1/models").status_code == 401
    assert plain_token_client.get("/api/v1/models").status_code == 200


# --- Train, promote, rollback --------------------------------------------------------------------


def test_train_promotes_a_passing_version_and_records_the_staff_user(staff_token_client, staff_user, db):
    response = staff_token_client.post("/api/v1/models/train", {"seed": 0}, format="json")

    assert response.status_code == 201
    body = response.json()
    assert body["promoted"] is True
    assert body["status"] == "active"
    assert body["decision"].startswith("promoted")
    assert body["metrics"]["r2_test"] > 0.4
    assert ModelVersion.objects.get().created_by == staff_user
    event = PromotionEvent.objects.get()
    assert (event.actor, event.actor_name, event.to_version_id) == (staff_user, "staff", body["version"])


def test_train_below_the_gate_creates_a_rejected_version_with_201(staff_token_client, db):
    response = staff_token_client.post("/api/v1/models/train", {"threshold": 0.99}, format="json")

    assert response.status_code == 201
    body = response.json()
    assert body["promoted"] is False
    assert body["status"] == "rejected"
    assert "0.99" in body["decision"]
    assert ModelVersion.objects.get().status == "rejected"


def test_train_without_promote_keeps_a_candidate(staff_token_client, db):
    response = staff_token_client.post("/api/v1/models/train", {"promote": False, "epochs": 200}, format="json")

    assert response.status_code == 201
    assert response.json()["status"] == "candidate"
    assert response.json()["hyperparameters"]["max_epochs"] == 200


def test_train_with_an_empty_body_trains_what_the_command_trains(staff_token_client, db):
    from io import StringIO

    from django.core.management import call_command

    response = staff_token_client.generic("POST", "/api/v1/models/train")
    call_command("train", "--no-promote", stdout=StringIO())

    assert response.status_code == 201
    from_cli = ModelVersion.objects.get(status="candidate")
    assert response.json()["hyperparameters"] == from_cli.hyperparameters
    assert response.json()["metrics"]["r2_test"] == from_cli.r2_test  # the same model, bit for bit


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"learning_rate": 0}, "learning_rate: Must be greater than 0."),
        ({"learning_rate": "0.1"}, "learning_rate: Must be a JSON number, not a string."),
        ({"epochs": 0}, "epochs: Ensure this value is greater than or equal to 1."),
        ({"epochs": 1.5}, "epochs: Must be a JSON integer, not a decimal number."),
        ({"epochs": 10**6}, "epochs: Ensure this value is less than or equal to 10000."),
        ({"seed": -1}, "seed: Ensure this value is greater than or equal to 0."),
        ({"threshold": 2}, "threshold: Must be at most 1."),
        ({"threshold": 1}, "threshold: Must be below 1; no version can exceed an R² gate of 1."),
        (
            {"threshold": 0.1},
            "threshold: Must be at least the configured gate 0.4; the API can raise the threshold, not lower it.",
        ),
        ({"promote": "yes"}, "promote: Must be true or false, not a string."),
        ({"promote": 1}, "promote: Must be true or false, not an integer."),
        ({"decay": None}, "decay: This field may not be null."),
    ],
)
def test_train_refuses_bad_hyperparameters_and_writes_nothing(staff_token_client, body, message):
    response = staff_token_client.post("/api/v1/models/train", body, format="json")

    assert response.status_code == 400
    assert response.json()["error"]["message"] == message
    assert not ModelVersion.objects.exists()


@pytest.mark.parametrize("body", [{"max_epochs": 1}, {"random_state": 7, "seed": 1}, {"bogus": 1}])
def test_train_refuses_unknown_fields_and_writes_nothing(staff_token_client, body):
    # DRF ignores unknown fields: {"max_epochs": 1} used to train (and promote) with the defaults.
    response = staff_token_client.post("/api/v1/models/train", body, format="json")

    assert response.status_code == 400
    unknown = sorted(set(body) - {"seed"})[0]
    assert response.json()["error"]["message"] == (
        f"{unknown}: Unknown field; this endpoint takes: decay, epochs, learning_rate, promote, seed, threshold, tol."
    )
    assert not ModelVersion.objects.exists()


def test_promote_and_rollback_refuse_unknown_fields(staff_token_client, train_version):
    first = train_version(promote=True)
    second = train_version(promote=False, random_state=1)

    promoted = staff_token_client.post(f"/api/v1/models/{second.version}/promote", {"reasn": "x"}, format="json")
    rolled_back = staff_token_client.post("/api/v1/models/rollback", {"why": "x"}, format="json")

    assert promoted.status_code == rolled_back.status_code == 400
    assert promoted.json()["error"]["message"] == "reasn: Unknown field; this endpoint takes: reason."
    assert rolled_back.json()["error"]["message"] == "why: Unknown field; this endpoint takes: reason."
    assert ModelVersion.objects.get(status="active").version == first.version
    assert not PromotionEvent.objects.exclude(action="promote").exists()


def test_rollback_below_the_gate_in_force_is_a_409_over_the_api_and_fails_the_command(
    staff_token_client, train_version, settings
):
    first = train_version(promote=True)
    train_version(promote=True, random_state=1)
    settings.PREDICTOR_PROMOTION_THRESHOLD = 0.5  # raised since the first version served

    response = staff_token_client.post("/api/v1/models/rollback", {}, format="json")
    assert response.status_code == 409
    message = response.json()["error"]["message"]
    assert message.startswith(f"Cannot roll back to version {first.version}: ")
    assert "does not exceed the current threshold 0.5" in message
    with pytest.raises(CommandError, match=r"does not exceed the current threshold 0\.5"):
        call_command("rollback", stdout=StringIO())
    assert ModelVersion.objects.get(version=first.version).status == "candidate"


def test_promote_then_rollback_records_the_actor(staff_token_client, staff_user, train_version):
    first = train_version(promote=True)
    second = train_version(promote=False, random_state=1)

    promoted = staff_token_client.post(f"/api/v1/models/{second.version}/promote", {"reason": "better"}, format="json")
    rolled_back = staff_token_client.post("/api/v1/models/rollback", {"reason": "oops"}, format="json")

    assert promoted.status_code == 200
    assert promoted.json()["status"] == "active"
    assert rolled_back.status_code == 200
    assert rolled_back.json()["version"] == first.version
    events = list(PromotionEvent.objects.order_by("id").values_list("action", "actor", "reason"))
    assert events[-2:] == [("promote", staff_user.pk, "better"), ("rollback", staff_user.pk, "oops")]


def test_promote_unknown_version_is_a_404(staff_token_client, active_version):
    response = staff_token_client.post("/api/v1/models/999/promote", {}, format="json")

    assert response.status_code == 404
    assert response.json()["error"]["message"] == "Version 999 does not exist."


def test_promote_refused_is_a_409_with_the_reason(staff_token_client, active_version, train_version):
    rejected = train_version(threshold=0.99)

    already = staff_token_client.post(f"/api/v1/models/{active_version.version}/promote", {}, format="json")
    refused = staff_token_client.post(f"/api/v1/models/{rejected.version}/promote", {}, format="json")

    assert already.status_code == 409
    assert already.json()["error"]["message"] == f"Version {active_version.version} is already active."
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "refused"
    assert "rejected" in refused.json()["error"]["message"]
    assert ModelVersion.objects.get(version=active_version.version).status == "active"


def test_promote_refuses_a_non_string_reason(staff_token_client, train_version):
    candidate = train_version(promote=False)

    response = staff_token_client.post(f"/api/v1/models/{candidate.version}/promote", {"reason": 5}, format="json")

    assert response.status_code == 400
    assert response.json()["error"]["message"] == "reason: Must be a JSON string, not an integer."


def test_rollback_with_nothing_to_roll_back_to_is_a_409(staff_token_client, active_version):
    response = staff_token_client.post("/api/v1/models/rollback", {}, format="json")

    assert response.status_code == 409
    assert "no earlier active version" in response.json()["error"]["message"]


@pytest.mark.parametrize("number", ["2147483648", "99999999999999999999999"])
def test_versions_beyond_the_column_range_are_not_found(api, staff_token_client, db, number):
    # Not a 500 from the database (a number beyond the column's range is an error there): no such version.
    assert api.get(f"/api/v1/models/{number}").json()["error"]["message"] == f"Version {number} does not exist."
    assert staff_token_client.post(f"/api/v1/models/{number}/promote", {}, format="json").status_code == 404
    assert staff_token_client.get(f"/api/v1/models/{number}/monitoring").status_code == 404
    assert api.get(f"/models/{number}/").status_code == 404


def test_a_version_filter_beyond_the_column_range_is_a_400(staff_token_client, db):
    response = staff_token_client.get("/api/v1/predictions", {"version": 10**25})
    assert response.status_code == 400
    assert response.json()["error"]["message"].startswith("version: ")


def test_model_detail_states_its_interval_figures_and_calibration(api, active_version):
    body = api.get(f"/api/v1/models/{active_version.version}").json()
    assert body["interval"] == {
        "level": 0.95,
        "t": pytest.approx(active_version.interval_t),
        "residual_std": pytest.approx(active_version.residual_std),
        "bmi_mean": pytest.approx(active_version.bmi_mean),
        "bmi_sxx": pytest.approx(active_version.bmi_sxx),
        "coverage_test": 1.0,
        "coverage_cv": pytest.approx(active_version.coverage_cv),
        "bmi_range": [18.0, 42.2],
        "scale": [25.0, 346.0],
    }
    assert 0.93 < body["interval"]["coverage_cv"] < 0.99
