"""The serving path: predictions are logged before they are returned; the cache follows promotions.

One request is one PredictionLog entry: a single prediction (channel api or web) of size 1, a batch
(channel batch) of its size, with the BMIs and predictions as float8[] arrays in the order sent.
"""

import subprocess
import sys

import pytest
from django.db import DatabaseError, IntegrityError, connection, transaction

from predictor.models import PredictionLog
from predictor.predictions import serving
from predictor.registry import services

pytestmark = pytest.mark.django_db


def expected(version, bmi: float) -> float:
    return version.slope * bmi + version.intercept


@pytest.mark.parametrize("channel", ["api", "web"])
def test_a_single_prediction_is_slope_times_bmi_plus_intercept_and_logged(active_version, channel):
    result = serving.predict([27.4], channel=channel)
    assert result.predictions == [pytest.approx(expected(active_version, 27.4), abs=1e-9)]
    assert result.bmi == [27.4]
    assert result.model.version == active_version.version
    entry = PredictionLog.objects.get()
    assert (entry.pk, entry.model_version_id, entry.channel, entry.size) == (
        result.log_id,
        active_version.version,
        channel,
        1,
    )
    assert (entry.bmi, entry.predictions) == ([27.4], result.predictions)
    assert entry.created_at is not None


def test_a_bare_number_is_one_prediction(active_version):
    result = serving.predict(25.0, channel="api")
    assert (result.bmi, PredictionLog.objects.get().size) == ([25.0], 1)


def test_a_single_prediction_channel_never_returns_more_than_it_logs(active_version):
    # Every prediction returned has been logged: a single-prediction channel logs one value, so
    # asking it for two must fail rather than answer two and log one.
    with pytest.raises(ValueError):
        serving.predict([25.0, 30.0], channel="api")
    assert not PredictionLog.objects.exists()


def test_no_active_version_raises_no_active_model(train_version):
    train_version(threshold=0.99)  # rejected: nothing can serve
    with pytest.raises(serving.NoActiveModel, match="No model version is active"):
        serving.predict([25.0], channel="api")
    with pytest.raises(serving.NoActiveModel):
        serving.predict([25.0], channel="batch")
    assert not PredictionLog.objects.exists()


def test_cached_model_follows_promotion_and_rollback_on_the_next_request(train_version):
    v1 = train_version()
    v2 = train_version(promote=False, learning_rate=0.02, random_state=8)
    assert serving.predict([30.0], channel="api").model.version == v1.version  # now cached

    # The promotion does not touch this worker's cache: the logging INSERT finds the cached
    # version no longer active, and the worker reloads.
    services.model_version_promote(version=v2.version)
    after_promotion = serving.predict([30.0], channel="api")
    assert after_promotion.model.version == v2.version
    assert after_promotion.predictions == [pytest.approx(expected(v2, 30.0))]

    services.model_version_rollback()
    assert serving.predict([30.0, 31.0], channel="batch").model.version == v1.version
    # Every entry names the version that produced it.
    assert list(PredictionLog.objects.order_by("id").values_list("channel", "model_version_id")) == [
        ("api", v1.version),
        ("api", v2.version),
        ("batch", v1.version),
    ]


def test_batch_is_logged_in_input_order_as_one_entry(active_version):
    bmis = [31.5, 18.2, 44.0, 27.4, 27.4]
    result = serving.predict(bmis, channel="batch")
    assert result.bmi == bmis
    assert result.predictions == pytest.approx([expected(active_version, b) for b in bmis])
    entry = PredictionLog.objects.get()
    assert (entry.pk, entry.model_version_id, entry.channel, entry.size) == (
        result.log_id,
        active_version.version,
        "batch",
        5,
    )
    assert list(zip(entry.bmi, entry.predictions, strict=True)) == list(zip(bmis, result.predictions, strict=True))
    assert entry.created_at is not None


def test_a_batch_of_one_is_a_batch_entry(active_version):
    result = serving.predict([25.0], channel="batch")
    entry = PredictionLog.objects.get(pk=result.log_id)
    assert (entry.channel, entry.size, entry.bmi) == ("batch", 1, [25.0])


def test_single_predictions_and_batches_share_one_id_sequence(active_version):
    ids = [
        serving.predict([25.0], channel="api").log_id,
        serving.predict([25.0, 26.0], channel="batch").log_id,
        serving.predict([25.0], channel="web").log_id,
    ]
    assert ids == sorted(ids) and len(set(ids)) == 3
    assert sorted(PredictionLog.objects.values_list("pk", flat=True)) == ids


def test_large_batch_is_logged_exactly(active_version):
    bmis = [10.0 + (i % 7000) / 100 for i in range(10_000)]
    result = serving.predict(bmis, channel="batch")
    entry = PredictionLog.objects.get(pk=result.log_id)
    assert entry.size == 10_000
    # Floats survive the binary COPY bit for bit.
    assert entry.bmi == bmis
    assert entry.predictions == result.predictions


def test_from_log_rebuilds_what_a_request_was_answered_with(active_version):
    result = serving.predict([20.0, 30.5], channel="batch")
    entry = PredictionLog.objects.select_related("model_version").get(pk=result.log_id)
    assert serving.LoggedPredictions.from_log(entry) == result


@pytest.mark.parametrize("channel", ["api", "batch"])
def test_the_arrays_are_real_float8_arrays(active_version, channel):
    bmis = [20.0, 30.5, 41.25] if channel == "batch" else [30.5]
    result = serving.predict(bmis, channel=channel)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_typeof(bmi)::text, pg_typeof(predictions)::text, cardinality(predictions), "
            "bmi[cardinality(bmi)], predictions[cardinality(predictions)] FROM predictor_predictionlog WHERE id = %s",
            [result.log_id],
        )
        assert cursor.fetchone() == (
            "double precision[]",
            "double precision[]",
            len(bmis),
            bmis[-1],
            result.predictions[-1],
        )


@pytest.mark.parametrize(
    "fields",
    [
        {"channel": "batch", "size": 3, "bmi": [20.0, 21.0], "predictions": [1.0, 2.0]},  # size too big
        {"channel": "batch", "size": 2, "bmi": [20.0, 21.0], "predictions": [1.0]},  # arrays disagree
        {"channel": "batch", "size": 0, "bmi": [], "predictions": []},  # empty
        {"channel": "api", "size": 2, "bmi": [20.0, 21.0], "predictions": [1.0, 2.0]},  # a single of two
        {"channel": "web", "size": 2, "bmi": [20.0, 21.0], "predictions": [1.0, 2.0]},
        {"channel": "mail", "size": 1, "bmi": [20.0], "predictions": [1.0]},  # no such channel
    ],
)
def test_the_database_rejects_an_inconsistent_entry(active_version, fields):
    with pytest.raises(IntegrityError), transaction.atomic():
        PredictionLog.objects.create(model_version=active_version, **fields)
    assert not PredictionLog.objects.exists()


def test_a_failed_batch_write_logs_nothing_and_returns_nothing(active_version, monkeypatch):
    serving.predict([25.0], channel="batch")
    # A batch whose write fails in the database (here: its arrays disagree with its size, which
    # a check constraint rejects) raises Django's error, and leaves no entry behind.
    real = serving._float8_array
    monkeypatch.setattr(serving, "_float8_array", lambda values: real(values[:-1]))
    with pytest.raises(IntegrityError):
        serving.predict([25.0, 26.0, 27.0], channel="batch")
    assert PredictionLog.objects.count() == 1


def test_serving_imports_neither_scikit_learn_nor_matplotlib():
    code = (
        "import os, sys, django; os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'bmiproject.settings_test'); "
        "django.setup(); import predictor.predictions.serving, predictor.middleware; "
        "import bmiproject.urls; "
        "print(sorted(m for m in ('sklearn', 'matplotlib', 'scipy') if m in sys.modules))"
    )
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert output.strip() == "[]"


def test_the_logging_insert_is_prepared_once_per_connection_and_again_after_a_lost_statement(active_version):
    first = serving.predict([25.0], channel="api")
    raw = connection.connection
    name = serving._prepared[raw]
    serving.predict([26.0], channel="web")
    assert serving._prepared[raw] == name  # reused, not prepared again
    with connection.cursor() as cursor:
        cursor.execute("DEALLOCATE ALL")  # what a connection pooler's DISCARD ALL would do
    with pytest.raises(DatabaseError), transaction.atomic():  # a savepoint, as the test runs in a transaction
        serving.predict([27.0], channel="api")
    third = serving.predict([28.0], channel="api")  # prepared anew under a fresh name
    assert serving._prepared[raw] != name
    assert third.log_id > first.log_id
    assert list(PredictionLog.objects.order_by("id").values_list("bmi", flat=True)) == [[25.0], [26.0], [28.0]]
