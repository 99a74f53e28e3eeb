"""Per-client throttling: a 429 with Retry-After, counted in the cache, per scope."""

import pytest
from django.test import override_settings

from predictor.models import PredictionLog

pytestmark = pytest.mark.django_db


@override_settings(PREDICTOR_THROTTLE_PREDICT="2/min")
def test_third_prediction_in_a_minute_is_a_429_with_retry_after(api, active_version):
    statuses = [api.post("/api/v1/predict", {"bmi": 27.4}, format="json").status_code for _ in range(3)]
    throttled = api.post("/api/v1/predict", {"bmi": 27.4}, format="json")

    assert statuses == [200, 200, 429]
    assert throttled.status_code == 429
    assert 0 < int(throttled["Retry-After"]) <= 60
    assert throttled.json()["error"]["code"] == "throttled"
    assert PredictionLog.objects.count() == 2


@override_settings(PREDICTOR_THROTTLE_PREDICT="1/min")
def test_clients_are_counted_separately(api, active_version):
    first = api.post("/api/v1/predict", {"bmi": 27.4}, format="json", REMOTE_ADDR="10.0.0.1")
    other = api.post("/api/v1/predict", {"bmi": 27.4}, format="json", REMOTE_ADDR="10.0.0.2")
    again = api.post("/api/v1/predict", {"bmi": 27.4}, format="json", REMOTE_ADDR="10.0.0.1")

    assert (first.status_code, other.status_code, again.status_code) == (200, 200, 429)


@override_settings(PREDICTOR_THROTTLE_PREDICT="1/min")
def test_a_forged_forwarded_for_header_does_not_reset_the_count(api, active_version):
    statuses = [
        api.post("/api/v1/predict", {"bmi": 27.4}, format="json", HTTP_X_FORWARDED_FOR=f"198.51.100.{i}").status_code
        for i in range(3)
    ]
    assert statuses == [200, 429, 429]


def test_behind_one_proxy_the_client_is_the_address_the_proxy_appended(api, active_version, settings):
    settings.PREDICTOR_THROTTLE_PREDICT = "1/min"
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 1}
    # A client may prepend anything; the load balancer appends the address it saw, last.
    first = api.post("/api/v1/predict", {"bmi": 27.4}, format="json", HTTP_X_FORWARDED_FOR="1.1.1.1, 203.0.113.7")
    forged = api.post("/api/v1/predict", {"bmi": 27.4}, format="json", HTTP_X_FORWARDED_FOR="2.2.2.2, 203.0.113.7")
    other = api.post("/api/v1/predict", {"bmi": 27.4}, format="json", HTTP_X_FORWARDED_FOR="203.0.113.8")
    assert (first.status_code, forged.status_code, other.status_code) == (200, 429, 200)


@override_settings(PREDICTOR_THROTTLE_PREDICT=None)
def test_a_scope_can_be_switched_off(api, active_version):
    for _ in range(5):
        assert api.post("/api/v1/predict", {"bmi": 27.4}, format="json").status_code == 200


@override_settings(PREDICTOR_THROTTLE_BATCH="1/min", PREDICTOR_THROTTLE_PREDICT="100/min")
def test_batch_has_its_own_scope(api, active_version):
    assert api.post("/api/v1/predict/batch", {"bmi": [27.4]}, format="json").status_code == 200
    assert api.post("/api/v1/predict/batch", {"bmi": [27.4]}, format="json").status_code == 429
    assert api.post("/api/v1/predict", {"bmi": 27.4}, format="json").status_code == 200


@override_settings(PREDICTOR_THROTTLE_API="1/min")
def test_other_endpoints_share_the_api_scope(staff_token_client, active_version):
    assert staff_token_client.get("/api/v1/predictions").status_code == 200
    assert staff_token_client.get("/api/v1/models").status_code == 429
