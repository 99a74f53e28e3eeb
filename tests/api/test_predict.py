"""POST /api/v1/predict: the answer, every kind of bad input, and the serving failure modes."""

import pytest
from django.db import connection, transaction
from django.test import Client, override_settings

from predictor.models import PredictionLog
from predictor.registry import services

URL = "/api/v1/predict"
pytestmark = pytest.mark.django_db


def post_json(client, body: bytes | str, content_type="application/json"):
    return client.generic("POST", URL, body, content_type=content_type)


def test_predict_returns_prediction_version_and_units_and_logs_it(api, active_version):
    response = api.post(URL, {"bmi": 27.4}, format="json")

    assert response.status_code == 200
    body = response.json()
    assert body["bmi"] == 27.4
    assert body["model_version"] == active_version.version
    assert body["prediction"] == pytest.approx(active_version.slope * 27.4 + active_version.intercept)
    assert "progression" in body["unit"]
    assert body["bmi_unit"] == "kg/m²"
    log = PredictionLog.objects.get()
    assert body["prediction_id"] == log.pk
    assert (log.bmi, log.size, log.channel, log.model_version_id) == ([27.4], 1, "api", active_version.version)
    assert log.predictions == [body["prediction"]]  # what was returned is what was logged, bit for bit


def test_predict_accepts_integer_bmi(api, active_version):
    response = api.post(URL, {"bmi": 30}, format="json")
    assert response.status_code == 200
    assert response.json()["bmi"] == 30.0


@pytest.mark.parametrize("client_fixture", ["api", "plain_token_client"])  # anonymous and with a token
def test_predict_ignores_fields_other_than_bmi(request, client_fixture, active_version):
    # Documented in docs/api.md: clients may send their own request ids alongside the BMI.
    response = request.getfixturevalue(client_fixture).post(URL, {"bmi": 27.4, "request_id": "a1"}, format="json")
    assert response.status_code == 200
    assert "request_id" not in response.json()
    assert PredictionLog.objects.get().bmi == [27.4]


def test_anonymous_predict_costs_one_query_the_logging_insert(api, active_version, django_assert_num_queries):
    api.post(URL, {"bmi": 25.0}, format="json")  # loads the model into the worker's cache
    with django_assert_num_queries(1):
        response = api.post(URL, {"bmi": 26.0}, format="json")
    assert response.status_code == 200


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("{}", "required"),
        ('{"bmi": "27.4"}', "not a string"),
        ('{"bmi": "abc"}', "not a string"),
        ('{"bmi": true}', "not a boolean"),
        ('{"bmi": null}', "may not be null"),
        ('{"bmi": {"value": 27.4}}', "not an object"),
        ('{"bmi": [27.4]}', "not an array"),
        ('{"bmi": 9.99}', "between 10 and 80"),
        ('{"bmi": 80.01}', "between 10 and 80"),
        ('{"bmi": -27}', "between 10 and 80"),
        ('{"bmi": 1e400}', "finite"),
        ('{"bmi": 1' + "0" * 400 + "}", "finite"),
        ("[27.4]", "Expected a dictionary"),
        ("27.4", "Expected a dictionary"),
    ],
)
def test_bad_bmi_is_a_400_naming_the_field_and_logs_nothing(api, active_version, body, reason):
    response = post_json(api, body)

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["status"] == 400
    assert error["code"] == "invalid"
    assert reason in error["message"]
    if body.startswith("{"):
        assert error["message"].startswith("bmi: ")
        assert "bmi" in error["fields"]
    assert "Traceback" not in response.content.decode()
    assert not PredictionLog.objects.exists()


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_literals_are_refused_by_the_parser(api, active_version, literal):
    response = post_json(api, f'{{"bmi": {literal}}}')

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "parse_error"
    assert literal.lstrip("-") in error["message"]
    assert not PredictionLog.objects.exists()


@pytest.mark.parametrize("body", ["bmi=27.4", "{bmi: 27.4}", '{"bmi": 27.4', "", "\xff\xfe", "[" * 100_000])
def test_non_json_body_is_a_400(api, active_version, body):
    response = post_json(api, body.encode("latin-1"))

    assert response.status_code == 400
    assert response.json()["error"]["status"] == 400
    assert not PredictionLog.objects.exists()


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "application/xml"])
def test_wrong_content_type_is_a_415(api, active_version, content_type):
    response = post_json(api, '{"bmi": 27.4}', content_type=content_type)

    assert response.status_code == 415
    assert response.json()["error"]["code"] == "unsupported_media_type"
    assert not PredictionLog.objects.exists()


@override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=1024)
def test_oversize_body_is_a_json_413(api, active_version):
    response = post_json(api, '{"bmi": 27.4, "padding": "' + "x" * 2000 + '"}')

    assert response.status_code == 413
    assert response["Content-Type"] == "application/json"
    assert response.json()["error"]["code"] == "payload_too_large"
    assert not PredictionLog.objects.exists()


def test_no_active_model_is_a_503(api, train_version):
    train_version(promote=False)  # a candidate exists, but nothing serves

    response = api.post(URL, {"bmi": 27.4}, format="json")

    assert response.status_code == 503
    error = response.json()["error"]
    assert error["code"] == "no_active_model"
    assert "active" in error["message"]
    assert not PredictionLog.objects.exists()


def test_database_error_while_logging_is_a_503_and_returns_no_prediction(api, active_version):
    api.post(URL, {"bmi": 25.0}, format="json")  # warm the model cache: only the INSERT remains
    savepoint = transaction.savepoint()
    with connection.cursor() as cursor:
        # What a failover to a read-only replica looks like: every write fails.
        cursor.execute("SET LOCAL transaction_read_only = on")
    response = api.post(URL, {"bmi": 27.4}, format="json")
    transaction.savepoint_rollback(savepoint)

    assert response.status_code == 503
    error = response.json()["error"]
    assert error["code"] == "prediction_log_unavailable"
    assert "prediction" not in response.json()
    assert PredictionLog.objects.count() == 1  # the warm-up only


def test_next_prediction_uses_a_newly_promoted_version_and_the_rolled_back_one(api, active_version, train_version):
    first = api.post(URL, {"bmi": 27.4}, format="json").json()
    newer = train_version(promote=False, random_state=1)
    services.model_version_promote(version=newer.version, actor_name="test")

    after_promotion = api.post(URL, {"bmi": 27.4}, format="json").json()
    services.model_version_rollback(actor_name="test")
    after_rollback = api.post(URL, {"bmi": 27.4}, format="json").json()

    assert first["model_version"] == active_version.version
    assert after_promotion["model_version"] == newer.version
    assert after_promotion["prediction"] == pytest.approx(newer.slope * 27.4 + newer.intercept)
    assert after_rollback["model_version"] == active_version.version
    logged = list(PredictionLog.objects.order_by("id").values_list("model_version_id", flat=True))
    assert logged == [active_version.version, newer.version, active_version.version]


@override_settings(PREDICTOR_PREDICTIONS_REQUIRE_AUTH=True)
def test_predictions_can_require_a_token(api, plain_token_client, active_version):
    anonymous = api.post(URL, {"bmi": 27.4}, format="json")
    with_token = plain_token_client.post(URL, {"bmi": 27.4}, format="json")

    assert anonymous.status_code == 401
    assert anonymous["WWW-Authenticate"] == "Token"
    assert anonymous.json()["error"]["code"] == "not_authenticated"
    assert with_token.status_code == 200
    assert PredictionLog.objects.count() == 1


def test_get_is_a_json_405_with_allow(api, active_version):
    response = api.get(URL)

    assert response.status_code == 405
    assert response["Allow"] == "POST, OPTIONS"
    assert response.json()["error"]["code"] == "method_not_allowed"


def test_a_host_not_allowed_is_a_json_400_under_the_api_and_a_page_elsewhere(client, active_version):
    api_response = client.post(URL, {"bmi": 27.4}, content_type="application/json", HTTP_HOST="evil.example")
    page_response = client.get("/", HTTP_HOST="evil.example")

    assert api_response.status_code == page_response.status_code == 400
    assert api_response.json() == {"error": {"status": 400, "code": "bad_request", "message": "Bad request."}}
    assert "evil.example" not in api_response.content.decode()
    assert page_response["Content-Type"].startswith("text/html")
    assert not PredictionLog.objects.exists()


def test_unknown_api_path_is_a_json_404(api):
    response = api.get("/api/v1/does-not-exist")

    assert response.status_code == 404
    assert response.json()["error"] == {"status": 404, "code": "not_found", "message": "No API endpoint at this path."}


@pytest.mark.parametrize("debug", [False, True])
@pytest.mark.parametrize(
    ("method", "path", "message"),
    [
        ("get", "/api/v1/nothing-here", "No API endpoint at this path."),
        ("get", "/api/", "No API endpoint at this path."),
        ("post", "/api/v1/predict/", "No API endpoint at this path. Did you mean /api/v1/predict?"),
        ("get", "/api/v1/models/", "No API endpoint at this path. Did you mean /api/v1/models?"),
        ("get", "/api/schema", "No API endpoint at this path. Did you mean /api/schema/?"),
    ],
)
def test_unknown_api_paths_are_json_404s_in_every_mode_naming_the_path_without_the_slash(
    api, settings, db, debug, method, path, message
):
    settings.DEBUG = debug  # `make run` serves with DEBUG on: Django's HTML debug 404 unless routed
    response = getattr(api, method)(path, data={"bmi": 27.5}, format="json")
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json()["error"] == {"status": 404, "code": "not_found", "message": message}


def test_a_post_to_an_unknown_api_path_from_a_session_is_the_json_404_not_the_csrf_page(staff_user, db):
    client = Client(enforce_csrf_checks=True)
    client.force_login(staff_user)
    response = client.post("/api/v1/models/null,null/promote", {"reason": ""}, content_type="application/json")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
