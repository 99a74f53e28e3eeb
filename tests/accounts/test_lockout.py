"""Sign-in lockout on both password forms: per username, per client address, for a while."""

from __future__ import annotations

import datetime
import logging

import pytest
from axes.models import AccessAttempt
from django.conf import settings
from django.test import Client
from prometheus_client import REGISTRY

from predictor.monitoring import metrics

FORMS = {"site": "/login/", "admin": "/admin/login/"}
LIMIT = settings.AXES_FAILURE_LIMIT


@pytest.fixture(params=sorted(FORMS))
def form(request) -> str:
    return request.param


def sign_in(client: Client, form: str, username: str, password: str, **extra):
    return client.post(FORMS[form], {"username": username, "password": password}, **extra)


def signed_in(client: Client) -> bool:
    return "_auth_user_id" in client.session


def count(name: str, form: str) -> float:
    return REGISTRY.get_sample_value(name, {"form": form}) or 0.0


def test_the_right_password_is_refused_after_too_many_failures(client, staff_user, form):
    for _ in range(LIMIT - 1):
        assert sign_in(client, form, "staff", "wrong").status_code == 200  # the form again, with its error
    locked = sign_in(client, form, "staff", "wrong")
    assert locked.status_code == 429

    response = sign_in(client, form, "staff", "staff-pass-123")

    assert response.status_code == 429 and not signed_in(client)
    assert int(response["Retry-After"]) == settings.AXES_COOLOFF_TIME.total_seconds()
    page = response.content.decode()
    assert "Too many failed sign-ins" in page and "locked for\n  15 minutes" in page
    assert '<link rel="stylesheet"' in page, "the site's own page, not a bare message"


def test_the_lockout_ends_after_the_cool_off(client, staff_user, form):
    for _ in range(LIMIT):
        sign_in(client, form, "staff", "wrong")
    assert sign_in(client, form, "staff", "staff-pass-123").status_code == 429
    # As if the cool-off had passed: the attempts are dated back past it, in the database axes reads.
    AccessAttempt.objects.update(attempt_time=AccessAttempt.objects.get().attempt_time - settings.AXES_COOLOFF_TIME)

    response = sign_in(client, form, "staff", "staff-pass-123")

    assert response.status_code == 302 and signed_in(client)
    assert not AccessAttempt.objects.exists(), "a success resets the count"


def test_a_success_before_the_limit_resets_the_count(client, staff_user):
    for _ in range(LIMIT - 1):
        sign_in(client, "site", "staff", "wrong")
    assert sign_in(client, "site", "staff", "staff-pass-123").status_code == 302
    client.logout()
    for _ in range(LIMIT - 1):
        sign_in(client, "site", "staff", "wrong")
    assert sign_in(client, "site", "staff", "staff-pass-123").status_code == 302


def test_a_username_is_locked_whichever_address_tries(staff_user):
    for i in range(LIMIT):
        sign_in(Client(REMOTE_ADDR=f"192.0.2.{i + 1}"), "admin", "staff", "wrong")

    fresh = Client(REMOTE_ADDR="198.51.100.7")
    assert sign_in(fresh, "admin", "staff", "staff-pass-123").status_code == 429


def test_an_address_is_locked_whichever_username_it_tries(staff_user, plain_user):
    attacker = Client(REMOTE_ADDR="192.0.2.9")
    for i in range(LIMIT):
        sign_in(attacker, "site", f"guess{i}", "wrong")

    assert sign_in(attacker, "site", "clinician", "clinician-pass-123").status_code == 429
    elsewhere = Client(REMOTE_ADDR="198.51.100.7")
    assert sign_in(elsewhere, "site", "clinician", "clinician-pass-123").status_code == 302


def test_behind_two_proxies_the_client_address_comes_from_x_forwarded_for(settings, staff_user, plain_user):
    # ALB -> nginx -> gunicorn: the ALB appends the client, nginx appends the ALB; a client may
    # prepend anything it likes, which must not give it a fresh count.
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 2}
    nginx = "10.0.1.5"
    for i in range(LIMIT):
        spoofed = f"203.0.113.{i}, 192.0.2.50, 10.0.0.2"
        sign_in(Client(REMOTE_ADDR=nginx), "site", f"guess{i}", "wrong", HTTP_X_FORWARDED_FOR=spoofed)

    same_client = sign_in(
        Client(REMOTE_ADDR=nginx),
        "site",
        "clinician",
        "clinician-pass-123",
        HTTP_X_FORWARDED_FOR="192.0.2.50, 10.0.0.3",
    )
    other_client = sign_in(
        Client(REMOTE_ADDR=nginx),
        "site",
        "clinician",
        "clinician-pass-123",
        HTTP_X_FORWARDED_FOR="192.0.2.51, 10.0.0.2",
    )

    assert same_client.status_code == 429
    assert other_client.status_code == 302
    assert set(AccessAttempt.objects.values_list("ip_address", flat=True)) == {"192.0.2.50"}


def test_failures_and_lockouts_are_counted_in_metrics_and_logged(client, staff_user, form, caplog):
    failures, lockouts = count("bmi_login_failures_total", form), count("bmi_login_lockouts_total", form)
    with caplog.at_level(logging.WARNING):
        for _ in range(LIMIT + 1):
            sign_in(client, form, "staff", "wrong")

    assert count("bmi_login_failures_total", form) - failures == LIMIT + 1
    assert count("bmi_login_lockouts_total", form) - lockouts >= 1
    assert any("sign-in locked out" in r.getMessage() and "'staff'" in r.getMessage() for r in caplog.records)
    scraped = metrics.render().decode()
    assert f'bmi_login_lockouts_total{{form="{form}"}}' in scraped


def test_wrong_api_tokens_do_not_lock_out_a_sign_in(staff_user):
    # The API authenticates tokens itself (no password): a wrong token is a 401, never a lockout.
    client = Client(REMOTE_ADDR="192.0.2.77")
    for _ in range(LIMIT + 2):
        assert client.get("/api/v1/predictions", HTTP_AUTHORIZATION="Token bmi_wrong").status_code == 401
    assert sign_in(client, "site", "staff", "staff-pass-123").status_code == 302


def test_a_staff_session_ends_after_staff_session_hours(client, staff_user, plain_user):
    sign_in(client, "site", "staff", "staff-pass-123")
    assert client.session.get_expiry_age() == settings.STAFF_SESSION_SECONDS == 8 * 3600
    cookie = client.cookies[settings.SESSION_COOKIE_NAME]
    assert int(cookie["max-age"]) == 8 * 3600

    clinician = Client()
    sign_in(clinician, "site", "clinician", "clinician-pass-123")
    assert (
        clinician.session.get_expiry_age() == settings.SESSION_COOKIE_AGE == datetime.timedelta(days=14).total_seconds()
    )
