"""Clients for the API tests: anonymous, plain user and staff (token and session)."""

import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

from tests.conftest import token_for


@pytest.fixture(autouse=True)
def _fresh_throttle_state():
    # Throttle counters live in the cache; one test's requests must not count against the next.
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def api():
    return APIClient()


@pytest.fixture
def staff_token_client(staff_user):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token_for(staff_user)}")
    return client


@pytest.fixture
def staff_session_client(staff_user):
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(staff_user)
    return client


@pytest.fixture
def plain_token_client(plain_user):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token_for(plain_user)}")
    return client
