"""API tokens: hashed at rest, shown once, named, expiring, revocable, and absent from the admin."""

from __future__ import annotations

import datetime
import hashlib
import re
from io import StringIO

import pytest
from django.contrib.auth.models import Permission
from django.core.management import CommandError, call_command
from django.db import connection
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from predictor.accounts import services
from predictor.accounts.models import ApiToken
from tests.conftest import token_for

# A staff-only read: 200 with a staff token, 401 with a refused one.
PROTECTED = "/api/v1/predictions"


def status_with(secret: str) -> int:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {secret}")
    return client.get(PROTECTED).status_code


@pytest.fixture
def superuser(django_user_model):
    return django_user_model.objects.create_superuser("root", "root@example.com", "root-pass-123")


def test_a_token_authenticates_as_its_user_and_records_its_last_use(staff_user):
    secret = token_for(staff_user, name="ci")
    assert secret.startswith("bmi_")

    assert status_with(secret) == 200
    token = ApiToken.objects.get(user=staff_user, name="ci")
    assert token.last_used is not None and timezone.now() - token.last_used < datetime.timedelta(minutes=1)


def test_the_token_table_holds_no_usable_secret(staff_user):
    secret = token_for(staff_user)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT * FROM {ApiToken._meta.db_table}")
        columns = [col.name for col in cursor.description]
        (row,) = cursor.fetchall()
    stored = dict(zip(columns, row, strict=True))

    assert not any(secret in str(value) for value in stored.values())
    # What is stored is a one-way digest and a short prefix for lookup; neither signs anybody in.
    assert stored["digest"] == hashlib.sha512(secret.encode()).hexdigest()
    assert secret.startswith(stored["token_key"]) and len(stored["token_key"]) < len(secret) // 3
    assert status_with(stored["digest"]) == 401
    assert status_with(stored["token_key"]) == 401


def test_an_expired_token_is_refused_and_deleted(staff_user):
    secret = token_for(staff_user)
    ApiToken.objects.update(expiry=timezone.now() - datetime.timedelta(seconds=1))

    assert status_with(secret) == 401
    assert not ApiToken.objects.exists()


def test_a_revoked_token_is_refused(staff_user):
    secret = token_for(staff_user, name="old")
    kept = token_for(staff_user, name="new")
    services.api_tokens_revoke(tokens=ApiToken.objects.filter(name="old"), reason="test")

    assert status_with(secret) == 401
    assert status_with(kept) == 200


@pytest.mark.parametrize("update_fields", [None, ["password"]])
def test_a_password_change_revokes_every_token_of_the_user(staff_user, plain_user, update_fields):
    first, second = token_for(staff_user, name="a"), token_for(staff_user, name="b")
    other = token_for(plain_user)
    staff_user.set_password("a-new-password-456")
    staff_user.save(update_fields=update_fields)

    assert status_with(first) == 401 and status_with(second) == 401
    assert ApiToken.objects.filter(user=plain_user).count() == 1, "another user's tokens stay"
    assert ApiToken.objects.get(user=plain_user).digest == hashlib.sha512(other.encode()).hexdigest()


def test_deactivating_a_user_revokes_their_tokens(staff_user):
    secret = token_for(staff_user)
    staff_user.is_active = False
    staff_user.save()

    assert not ApiToken.objects.exists()
    staff_user.is_active = True
    staff_user.save()
    assert status_with(secret) == 401


def test_a_sign_in_or_an_unrelated_change_keeps_the_tokens(client, staff_user):
    secret = token_for(staff_user)
    client.post(reverse("predictor:login"), {"username": "staff", "password": "staff-pass-123"})  # saves last_login
    staff_user.refresh_from_db()
    staff_user.email = "new@example.com"
    staff_user.save()

    assert status_with(secret) == 200


def test_a_user_has_several_tokens_with_distinct_names(staff_user):
    token_for(staff_user, name="ci")
    token_for(staff_user, name="laptop")
    with pytest.raises(services.TokenRefused, match="already has a token named 'ci'"):
        token_for(staff_user, name="ci")
    assert sorted(ApiToken.objects.values_list("name", flat=True)) == ["ci", "laptop"]


# --- The admin ------------------------------------------------------------------------------


@pytest.fixture
def viewer(django_user_model):
    """Staff who may view everything in the admin and change nothing: the issue's attacker."""
    user = django_user_model.objects.create_user("peek", "peek@example.com", "peek-pass-123", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(codename__startswith="view_"))
    return user


def admin_pages(client, token: ApiToken, owner) -> dict[str, str]:
    urls = [
        reverse("admin:index"),
        reverse("admin:app_list", args=["predictor"]),
        reverse("admin:predictor_apitoken_changelist"),
        reverse("admin:predictor_apitoken_changelist") + f"?q={token.name}",
        reverse("admin:predictor_apitoken_change", args=[token.pk]),
        reverse("admin:predictor_apitoken_history", args=[token.pk]),
        reverse("admin:auth_user_changelist"),
        reverse("admin:auth_user_change", args=[owner.pk]),
    ]
    pages = {}
    for url in urls:
        response = client.get(url)
        assert response.status_code == 200, url
        pages[url] = response.content.decode()
    return pages


def test_a_view_only_staff_user_sees_no_token_secret_on_any_admin_page(client, viewer, superuser):
    secret = token_for(superuser, name="root-automation")
    token = ApiToken.objects.get()
    client.force_login(viewer)

    pages = admin_pages(client, token, superuser)

    changelist = pages[reverse("admin:predictor_apitoken_changelist")]
    assert "root-automation" in changelist and "root" in changelist, "tokens are listed by name and owner"
    for url, html in pages.items():
        for value in (secret, secret.removeprefix("bmi_")[:16], token.digest, token.digest[:16], token.token_key):
            assert value not in html, f"{url} shows {value!r}"
    # No way to make one here (its secret would sit in the session's messages), and no edit.
    assert client.get(reverse("admin:predictor_apitoken_add")).status_code == 403


def test_an_operator_revokes_a_token_in_the_admin(client, superuser, staff_user):
    secret = token_for(staff_user, name="leaked")
    client.force_login(superuser)

    response = client.post(
        reverse("admin:predictor_apitoken_changelist"),
        {"action": "delete_selected", "_selected_action": [str(ApiToken.objects.get().pk)], "post": "yes"},
        follow=True,
    )

    assert response.status_code == 200
    assert not ApiToken.objects.exists()
    assert status_with(secret) == 401


# --- manage.py create_token -----------------------------------------------------------------


def test_create_token_prints_the_secret_once_and_it_works(staff_user):
    out, err = StringIO(), StringIO()
    call_command("create_token", "staff", name="ci-deploy", expires_in_days=7, stdout=out, stderr=err)

    secret = out.getvalue().strip()
    assert re.fullmatch(r"bmi_[0-9a-f]{64}", secret)
    assert "cannot be shown again" in err.getvalue() and secret not in err.getvalue()
    assert status_with(secret) == 200
    token = ApiToken.objects.get()
    assert token.name == "ci-deploy"
    assert abs(token.expiry - (timezone.now() + datetime.timedelta(days=7))) < datetime.timedelta(minutes=1)


@pytest.mark.parametrize(
    ("args", "options", "message"),
    [
        (["nobody"], {"name": "x"}, "No user named 'nobody'"),
        (["staff"], {"name": "  "}, "needs a name"),
        (["staff"], {"name": "x", "expires_in_days": 0}, "expires in 1 to 365 days, not 0"),
        (["staff"], {"name": "x", "expires_in_days": 366}, "expires in 1 to 365 days, not 366"),
    ],
)
def test_create_token_refuses_bad_input(staff_user, args, options, message):
    with pytest.raises(CommandError, match=message):
        call_command("create_token", *args, **options, stdout=StringIO(), stderr=StringIO())
    assert not ApiToken.objects.exists()


def test_create_token_refuses_an_inactive_user_and_a_duplicate_name(staff_user, plain_user):
    token_for(staff_user, name="ci")
    with pytest.raises(CommandError, match="already has a token named 'ci'"):
        call_command("create_token", "staff", name="ci", stdout=StringIO(), stderr=StringIO())
    plain_user.is_active = False
    plain_user.save()
    with pytest.raises(CommandError, match="inactive"):
        call_command("create_token", "clinician", name="ci", stdout=StringIO(), stderr=StringIO())
