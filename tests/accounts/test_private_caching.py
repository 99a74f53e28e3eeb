"""Cache-Control: no-store on every answer to a request with credentials; public answers untouched."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from tests.conftest import token_for


def assert_no_store(response) -> None:
    cache_control = response.get("Cache-Control", "")
    assert "no-store" in cache_control and "private" in cache_control, (response.status_code, cache_control)


@pytest.fixture
def token_client(staff_user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token_for(staff_user)}")
    return client


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/api/v1/predictions"),
        ("get", "/api/v1/models/1/monitoring"),
        ("get", "/api/v1/models"),
        ("get", "/api/v1/models/active"),
        ("post", "/api/v1/predict"),
        ("post", "/api/v1/models/rollback"),
    ],
)
def test_answers_to_a_token_are_never_stored(token_client, active_version, method, path):
    response = getattr(token_client, method)(path, {"bmi": 27.5} if method == "post" else None, format="json")
    assert response.status_code < 500
    assert_no_store(response)


def test_a_refused_token_is_not_stored_either(active_version):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token bmi_not-a-token")
    response = client.get("/api/v1/predictions")
    assert response.status_code == 401
    assert_no_store(response)


@pytest.mark.parametrize(
    "path", ["/monitoring/", "/", "/models/", "/api/v1/predictions", "/admin/", "/admin/predictor/modelversion/"]
)
def test_pages_for_a_signed_in_user_are_never_stored(client, staff_user, active_version, path):
    client.force_login(staff_user)
    response = client.get(path)
    assert response.status_code == 200
    assert_no_store(response)


def test_the_admin_sign_in_page_is_never_stored():
    assert_no_store(Client().get(reverse("admin:login")))


def test_public_answers_to_anonymous_callers_are_left_alone(active_version):
    client = APIClient()
    for response in (
        client.post("/api/v1/predict", {"bmi": 27.5}, format="json"),
        client.get("/api/v1/models/active"),
        client.get("/models/"),
    ):
        assert response.status_code == 200
        assert "Cache-Control" not in response, response.get("Cache-Control")
