"""POST /api/v1/predict/batch: order, logging, limits and all-or-nothing."""

import pytest
from django.db import connection, transaction
from django.test import override_settings

from predictor.models import PredictionLog

URL = "/api/v1/predict/batch"
pytestmark = pytest.mark.django_db


def test_batch_returns_predictions_in_input_order_and_logs_each_once(api, active_version):
    bmis = [31.5, 18.0, 27.4, 18.0, 44.25]

    response = api.post(URL, {"bmi": bmis}, format="json")

    assert response.status_code == 200
    body = response.json()
    assert body["model_version"] == active_version.version
    assert body["count"] == 5
    expected = [active_version.slope * b + active_version.intercept for b in bmis]
    assert body["predictions"] == pytest.approx(expected)
    assert body["bmi_unit"] == "kg/m²"
    # One log entry for the whole batch, its id the batch_id: an integer, as a prediction_id is.
    batch = PredictionLog.objects.get()
    assert isinstance(body["batch_id"], int) and not isinstance(body["batch_id"], bool)
    assert batch.pk == body["batch_id"]
    assert (batch.channel, batch.model_version_id, batch.size, batch.bmi) == ("batch", active_version.version, 5, bmis)
    assert batch.predictions == body["predictions"]  # what was returned is what was logged, bit for bit


def test_each_batch_is_its_own_entry_with_a_new_id(api, active_version):
    first = api.post(URL, {"bmi": [27.4]}, format="json").json()
    single = api.post("/api/v1/predict", {"bmi": 27.4}, format="json").json()
    second = api.post(URL, {"bmi": [27.4, 30.0]}, format="json").json()

    # Batches and single predictions draw their ids from one sequence: an id names one entry.
    assert first["batch_id"] < single["prediction_id"] < second["batch_id"]
    channels = dict(PredictionLog.objects.values_list("pk", "channel"))
    assert channels == {first["batch_id"]: "batch", single["prediction_id"]: "api", second["batch_id"]: "batch"}


def test_batch_of_the_maximum_size_is_accepted(api, active_version, settings):
    settings.PREDICTOR_BATCH_MAX = 10_000
    response = api.post(URL, {"bmi": [27.4] * 10_000}, format="json")

    assert response.status_code == 200
    assert response.json()["count"] == 10_000
    batch = PredictionLog.objects.get()
    assert (batch.size, len(batch.bmi), len(batch.predictions)) == (10_000, 10_000, 10_000)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("{}", "bmi: This field is required."),
        ('{"bmi": []}', "bmi: Must contain at least one value."),
        ('{"bmi": 27.4}', "bmi: Must be a JSON array of numbers, not a decimal number."),
        ('{"bmi": "27.4, 30"}', "bmi: Must be a JSON array of numbers, not a string."),
        ('{"bmi": {"0": 27.4}}', "bmi: Must be a JSON array of numbers, not an object."),
        ('{"bmi": null}', "bmi: This field may not be null."),
        ('{"bmi": [27.4, "30"]}', "bmi[1]: Must be a JSON number (kg/m²), not a string."),
        ('{"bmi": [27.4, true]}', "bmi[1]: Must be a JSON number (kg/m²), not a boolean."),
        ('{"bmi": [null, 27.4]}', "bmi[0]: Must be a JSON number (kg/m²), not null."),
        ('{"bmi": [[27.4]]}', "bmi[0]: Must be a JSON number (kg/m²), not an array."),
        ('{"bmi": [27.4, 30, 5]}', "bmi[2]: Must be between 10 and 80 kg/m²."),
        ('{"bmi": [1e999]}', "bmi[0]: Must be a finite number."),
    ],
)
def test_bad_batch_is_a_400_naming_the_item_and_logs_nothing(api, active_version, body, message):
    response = api.generic("POST", URL, body, content_type="application/json")

    assert response.status_code == 400
    assert response.json()["error"]["message"] == message
    assert not PredictionLog.objects.exists()


def test_one_bad_value_in_a_large_batch_writes_nothing(api, active_version):
    bmis = [27.4] * 5000
    bmis[4321] = 99.0

    response = api.post(URL, {"bmi": bmis}, format="json")

    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {"bmi": {"4321": ["Must be between 10 and 80 kg/m²."]}}
    assert not PredictionLog.objects.exists()


def test_batch_over_the_limit_is_a_400(api, active_version, settings):
    settings.PREDICTOR_BATCH_MAX = 100
    response = api.post(URL, {"bmi": [27.4] * 101}, format="json")

    assert response.status_code == 400
    assert response.json()["error"]["message"] == "bmi: Must contain at most 100 values; got 101. Split the batch."
    assert not PredictionLog.objects.exists()


def test_many_bad_values_are_listed_up_to_ten(api, active_version):
    response = api.post(URL, {"bmi": ["x"] * 50}, format="json")

    error = response.json()["error"]
    assert len(error["fields"]["bmi"]) == 10
    assert error["message"].endswith("(and 7 more)")


@override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=4096)
def test_oversize_batch_body_is_a_413(api, active_version):
    response = api.post(URL, {"bmi": [27.4] * 1000}, format="json")

    assert response.status_code == 413
    assert not PredictionLog.objects.exists()


def test_batch_with_no_active_model_is_a_503(api, db):
    response = api.post(URL, {"bmi": [27.4]}, format="json")

    assert response.status_code == 503
    assert response.json()["error"]["code"] == "no_active_model"
    assert not PredictionLog.objects.exists()


def test_database_error_while_logging_a_batch_is_a_503_and_returns_no_predictions(api, active_version):
    savepoint = transaction.savepoint()
    with connection.cursor() as cursor:
        # What a failover to a read-only replica looks like: every write fails.
        cursor.execute("SET LOCAL transaction_read_only = on")
    response = api.post(URL, {"bmi": [27.4, 30.0]}, format="json")
    transaction.savepoint_rollback(savepoint)

    assert response.status_code == 503
    assert response.json()["error"]["code"] == "prediction_log_unavailable"
    assert "predictions" not in response.json()
    assert not PredictionLog.objects.exists()
