"""Schema fuzzing: schemathesis generates requests for every operation from our own OpenAPI schema.

The requests go through the Django WSGI application in-process (the whole middleware stack, the
test database), with a staff token so every operation is reachable. Each response must be no 5xx,
conform to the documented status codes, content types and response schema. When a check fails,
the schema or the view is wrong, never the check.
"""

from __future__ import annotations

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from bmiproject.wsgi import application
from tests.conftest import token_for

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
FUZZ = {"deadline": None, "derandomize": True, "suppress_health_check": list(HealthCheck), "database": None}

schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", application)
# Training fits a model per call: fewer examples, in a test of its own.
cheap = schema.exclude(operation_id="model_train")
train = schema.include(operation_id="model_train")


@pytest.fixture(autouse=True)
def _keep_the_test_connection():
    # Django closes the connection when a request finishes; that would end the test's transaction.
    # Django's own test client does the same around each of its requests.
    for signal in (request_started, request_finished):
        signal.disconnect(close_old_connections)
    yield
    for signal in (request_started, request_finished):
        signal.connect(close_old_connections)


@pytest.fixture
def staff_headers(db, staff_user, unthrottled, active_version, train_version):
    # A registry with history, so that promote, rollback and the detail pages have real targets.
    train_version(promote=False, random_state=1)
    train_version(promote=True, random_state=2)
    return {"Authorization": f"Token {token_for(staff_user)}"}


@cheap.parametrize()
@settings(max_examples=300, **FUZZ)
def test_every_operation_answers_as_documented(case, staff_headers):
    case.call_and_validate(headers=staff_headers, checks=CHECKS)


@train.parametrize()
@settings(max_examples=40, **FUZZ)
def test_training_answers_as_documented(case, staff_headers):
    case.call_and_validate(headers=staff_headers, checks=CHECKS)
