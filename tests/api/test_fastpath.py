"""The fast path for plain anonymous predictions answers exactly as DRF's view would, or not at all."""

import json

import pytest
from django.contrib.auth.models import AnonymousUser
from django.core.cache import cache
from django.test import RequestFactory

from predictor.api import fastpath
from predictor.api.views import PredictView
from predictor.models import PredictionLog

pytestmark = pytest.mark.django_db

ALLOWED = "POST, OPTIONS"


@pytest.fixture(autouse=True)
def _empty_throttle_history():
    cache.clear()
    yield
    cache.clear()


def _request(body, *, content_type="application/json", **extra):
    data = body if isinstance(body, (str, bytes)) else json.dumps(body)
    request = RequestFactory().post("/api/v1/predict", data=data, content_type=content_type, **extra)
    request.user = AnonymousUser()  # as AuthenticationMiddleware leaves it for a caller with no session
    return request


@pytest.mark.parametrize("body", [{"bmi": 27.4}, {"bmi": 31}, {"bmi": 10}, {"bmi": 80.0}, {"bmi": 22.5, "note": "x"}])
def test_fast_answer_is_byte_for_byte_the_drf_answer(active_version, body):
    fast = fastpath.predict(_request(body), allowed_methods=ALLOWED)
    assert fast is not None
    drf = PredictView.as_view().drf_view(_request(body))
    drf.render()

    fast_body, drf_body = json.loads(fast.content), json.loads(drf.content)
    # Two requests, two log rows: everything but the row id must be identical.
    assert fast_body.pop("prediction_id") + 1 == drf_body.pop("prediction_id")
    assert fast_body == drf_body
    assert fast.status_code == drf.status_code == 200
    # Vary: Cookie comes from SessionMiddleware on DRF's side; the whole-stack test below compares it.
    assert {k: v for k, v in fast.headers.items() if k != "Vary"} == dict(drf.headers)
    assert fast_body["prediction"] == active_version.slope * body["bmi"] + active_version.intercept
    assert PredictionLog.objects.count() == 2


def test_fast_body_has_the_drf_field_order_and_compact_utf8(active_version):
    fast = fastpath.predict(_request({"bmi": 27.4}), allowed_methods=ALLOWED)
    drf = PredictView.as_view().drf_view(_request({"bmi": 27.4}))
    drf.render()
    log_id = json.loads(fast.content)["prediction_id"]
    assert fast.content == drf.content.replace(
        f'"prediction_id":{log_id + 1}'.encode(), f'"prediction_id":{log_id}'.encode()
    )
    assert "kg/m²".encode() in fast.content


@pytest.mark.parametrize(
    ("body", "kwargs"),
    [
        ({"bmi": "27.4"}, {}),
        ({"bmi": True}, {}),
        ({"bmi": None}, {}),
        ({"bmi": [27.4]}, {}),
        ({"bmi": 9.99}, {}),
        ({"bmi": 80.01}, {}),
        ({"bmi": 10**400}, {}),
        ('{"bmi": NaN}', {}),
        ('{"bmi": Infinity}', {}),
        ("[27.4]", {}),
        ("not json", {}),
        ({}, {}),
        ({"bmi": 27.4}, {"content_type": "text/plain"}),
        ({"bmi": 27.4}, {"content_type": "application/json; charset=latin-1"}),
        ({"bmi": 27.4}, {"HTTP_AUTHORIZATION": "Token abc"}),
    ],
    ids=lambda value: str(value)[:30],
)
def test_anything_but_a_plain_valid_request_goes_to_drf(active_version, body, kwargs):
    request = _request(body, **kwargs)
    assert fastpath.predict(request, allowed_methods=ALLOWED) is None
    assert not PredictionLog.objects.exists()


def test_a_session_cookie_goes_to_drf_which_authenticates_and_checks_csrf(active_version, settings):
    request = _request({"bmi": 27.4})
    request.COOKIES[settings.SESSION_COOKIE_NAME] = "abc"
    assert fastpath.predict(request, allowed_methods=ALLOWED) is None


def test_required_authentication_goes_to_drf(active_version, settings):
    settings.PREDICTOR_PREDICTIONS_REQUIRE_AUTH = True
    assert fastpath.predict(_request({"bmi": 27.4}), allowed_methods=ALLOWED) is None


def test_a_throttled_client_goes_to_drf_which_answers_429(active_version, settings, client):
    settings.PREDICTOR_THROTTLE_PREDICT = "1/min"
    assert fastpath.predict(_request({"bmi": 27.4}), allowed_methods=ALLOWED) is not None
    assert fastpath.predict(_request({"bmi": 27.4}), allowed_methods=ALLOWED) is None
    response = client.post("/api/v1/predict", {"bmi": 27.4}, content_type="application/json")
    assert response.status_code == 429 and "Retry-After" in response
    assert PredictionLog.objects.count() == 1


def test_no_active_model_goes_to_drf_which_answers_503(db, client):
    assert fastpath.predict(_request({"bmi": 27.4}), allowed_methods=ALLOWED) is None
    response = client.post("/api/v1/predict", {"bmi": 27.4}, content_type="application/json")
    assert response.status_code == 503


def test_the_url_serves_the_fast_path_with_its_allow_header(active_version, client):
    response = client.post("/api/v1/predict", {"bmi": 27.4}, content_type="application/json")
    assert response.status_code == 200
    assert response["Allow"] == ", ".join(PredictView().allowed_methods)
    assert response.json()["prediction_id"] == PredictionLog.objects.get().pk


@pytest.mark.parametrize("rate", ["2/min", None], ids=["throttled", "throttle-off"])
def test_through_the_whole_stack_both_paths_answer_alike(active_version, client, settings, monkeypatch, rate):
    settings.PREDICTOR_THROTTLE_PREDICT = rate
    fast = client.post("/api/v1/predict", {"bmi": 27.4}, content_type="application/json")
    monkeypatch.setattr(fastpath, "predict", lambda request, **kwargs: None)  # DRF only
    drf = client.post("/api/v1/predict", {"bmi": 27.4}, content_type="application/json")

    assert fast.status_code == drf.status_code == 200
    assert dict(fast.headers) == dict(drf.headers)  # Vary: Cookie included
    fast_body, drf_body = fast.json(), drf.json()
    assert drf_body.pop("prediction_id") == fast_body.pop("prediction_id") + 1
    assert fast_body == drf_body


@pytest.mark.parametrize(("rate", "expected"), [("1/min", [503, 429]), ("2/min", [503, 503, 429])])
def test_a_request_handed_over_after_the_throttle_is_counted_once(db, client, settings, rate, expected):
    settings.PREDICTOR_THROTTLE_PREDICT = rate
    statuses = [
        client.post("/api/v1/predict", {"bmi": 27.4}, content_type="application/json").status_code for _ in expected
    ]
    assert statuses == expected  # as DRF alone would answer with no active model
