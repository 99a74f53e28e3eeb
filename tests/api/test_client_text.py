"""Error messages that repeat client text are always encodable: a lone surrogate key is a 400, not a 500."""

from __future__ import annotations

import json

import pytest
from rest_framework.test import APIClient

from predictor.api.strictjson import encodable
from predictor.models import PredictionLog
from predictor.predictions import serving
from tests.conftest import token_for

# JSON text, not a dict: the body must carry the escape "\ud800" exactly as an attacker sends it.
BODY = '{"observed": 100, "\\ud800": 1}'


@pytest.fixture
def superuser_client(django_user_model, active_version) -> APIClient:
    root = django_user_model.objects.create_superuser("root", "root@example.com", "root-pass-123")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token_for(root)}")
    return client


@pytest.fixture
def paths(active_version, train_version) -> list[str]:
    single = serving.predict([27.5], channel=PredictionLog.Channel.API)
    batch = serving.predict([22.0, 30.0], channel=PredictionLog.Channel.BATCH)
    candidate = train_version(promote=False, random_state=1)
    return [
        f"/api/v1/predictions/{single.log_id}/outcome",
        f"/api/v1/predictions/{batch.log_id}/outcome",  # a batch item's outcome (position refused later)
        "/api/v1/models/train",
        f"/api/v1/models/{candidate.version}/promote",
        "/api/v1/models/rollback",
    ]


def test_a_lone_surrogate_key_is_a_400_naming_it_on_every_endpoint(superuser_client, paths):
    for path in paths:
        response = superuser_client.post(path, BODY, content_type="application/json")

        assert response.status_code == 400, (path, response.status_code)
        error = json.loads(response.content)["error"]  # the bytes are valid UTF-8 JSON
        assert error["code"] == "invalid"
        assert "\\ud800" in error["fields"], path
        assert "\\ud800: Unknown field" in error["message"], path


def test_nothing_changed_after_the_refusals(superuser_client, paths, active_version):
    for path in paths:
        superuser_client.post(path, BODY, content_type="application/json")
    assert serving.active_model(refresh=True).version == active_version.version


def test_encodable_escapes_only_what_utf8_cannot_encode():
    assert encodable("bmi ½ kg/m²") == "bmi ½ kg/m²"
    assert encodable("a\ud800b\udfffc") == "a\\ud800b\\udfffc"
    assert encodable("😀") == "😀"
