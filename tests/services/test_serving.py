"""The serving path: predictions are logged before they are returned; the cache follows promotions."""

import sys

import pytest
from django.db import DatabaseError, IntegrityError, connection, transaction

from predictor import services, serving
from predictor.models import PredictionBatch, PredictionLog

pytestmark = pytest.mark.django_db


def test_predict_one_is_slope_times_bmi_plus_intercept_and_logged(active_version):
    result = serving.predict_one(27.4)
    assert result.prediction == pytest.approx(active_version.slope * 27.4 + active_version.intercept, abs=1e-9)
    assert result.model.version == active_version.version
    row = PredictionLog.objects.get()
    assert (row.pk, row.model_version_id, row.bmi, row.channel) == (result.log_id, active_version.version, 27.4, "api")
    assert row.prediction == result.prediction
    assert row.created_at is not None


def test_no_active_version_raises_no_active_model(train_version):
    train_version(threshold=0.99)  # rejected: nothing can serve
    with pytest.raises(serving.NoActiveModel, match="No model version is active"):
        serving.predict_one(25.0)
    with pytest.raises(serving.NoActiveModel):
        serving.predict_batch([25.0])
    assert not PredictionLog.objects.exists()


def test_cached_model_follows_promotion_and_rollback_on_the_next_request(train_version):
    v1 = train_version()
    v2 = train_version(promote=False, learning_rate=0.02, random_state=8)
    assert serving.predict_one(30.0).model.version == v1.version  # now cached

    services.model_version_promote(version=v2.version)
    after_promotion = serving.predict_one(30.0)
    assert after_promotion.model.version == v2.version
    assert after_promotion.prediction == pytest.approx(v2.slope * 30.0 + v2.intercept)

    services.model_version_rollback()
    assert serving.predict_batch([30.0]).model.version == v1.version
    # Every row names the version that produced it.
    assert list(PredictionLog.objects.order_by("id").values_list("model_version_id", flat=True)) == [
        v1.version,
        v2.version,
    ]
    assert PredictionBatch.objects.get().model_version_id == v1.version


def test_batch_is_logged_in_input_order_as_one_row(active_version):
    bmis = [31.5, 18.2, 44.0, 27.4, 27.4]
    result = serving.predict_batch(bmis)
    assert result.bmi == bmis
    assert result.predictions == pytest.approx([active_version.slope * b + active_version.intercept for b in bmis])
    batch = PredictionBatch.objects.get()
    assert (batch.pk, batch.model_version_id, batch.size) == (result.batch_id, active_version.version, 5)
    assert list(zip(batch.bmi, batch.predictions, strict=True)) == list(zip(bmis, result.predictions, strict=True))
    assert batch.created_at is not None
    assert not PredictionLog.objects.exists()


def test_large_batch_is_logged_exactly(active_version):
    bmis = [10.0 + (i % 7000) / 100 for i in range(10_000)]
    result = serving.predict_batch(bmis)
    batch = PredictionBatch.objects.get(pk=result.batch_id)
    assert batch.size == 10_000
    # Floats survive the write bit for bit (the binary COPY).
    assert batch.bmi == bmis
    assert batch.predictions == result.predictions


def test_the_arrays_are_real_float8_arrays_in_postgresql(active_version):
    result = serving.predict_batch([20.0, 30.5, 41.25])
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_typeof(bmi)::text, cardinality(predictions), bmi[2], predictions[3] "
            "FROM predictor_predictionbatch WHERE id = %s",
            [result.batch_id],
        )
        assert cursor.fetchone() == ("double precision[]", 3, 30.5, result.predictions[2])


def test_the_database_rejects_a_batch_whose_arrays_disagree_with_its_size(active_version):
    with pytest.raises(IntegrityError), transaction.atomic():
        PredictionBatch.objects.create(model_version=active_version, size=3, bmi=[20.0, 21.0], predictions=[1.0, 2.0])
    with pytest.raises(IntegrityError), transaction.atomic():
        PredictionBatch.objects.create(model_version=active_version, size=2, bmi=[20.0, 21.0], predictions=[1.0])
    assert not PredictionBatch.objects.exists()


def test_a_failed_batch_write_logs_nothing_and_returns_nothing(active_version, monkeypatch):
    serving.predict_batch([25.0])
    # A batch whose write fails in the database (here: its arrays disagree with its size, which
    # a check constraint rejects) raises, and leaves no row behind.
    real = serving._float8_array
    monkeypatch.setattr(serving, "_float8_array", lambda values: real(values[:-1]))
    with pytest.raises(DatabaseError):
        serving.predict_batch([25.0, 26.0, 27.0])
    assert PredictionBatch.objects.count() == 1


def test_serving_imports_neither_scikit_learn_nor_matplotlib():
    import subprocess

    code = (
        "import os, sys, django; os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'bmiproject.settings_test'); "
        "django.setup(); import predictor.serving, predictor.middleware; "
        "import bmiproject.urls; "
        "print(sorted(m for m in ('sklearn', 'matplotlib', 'scipy') if m in sys.modules))"
    )
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert output.strip() == "[]"


def test_the_logging_insert_is_prepared_once_per_connection_and_again_after_a_lost_statement(active_version):
    first = serving.predict_one(25.0)
    name = connection._predictor_prepared[1]
    serving.predict_one(26.0)
    assert connection._predictor_prepared[1] == name  # reused, not prepared again
    with connection.cursor() as cursor:
        cursor.execute("DEALLOCATE ALL")  # what a connection pooler's DISCARD ALL would do
    with pytest.raises(DatabaseError), transaction.atomic():  # a savepoint, as the test runs in a transaction
        serving.predict_one(27.0)
    third = serving.predict_one(28.0)  # prepared anew under a fresh name
    assert connection._predictor_prepared[1] != name
    assert third.log_id > first.log_id
    assert list(PredictionLog.objects.order_by("id").values_list("bmi", flat=True)) == [25.0, 26.0, 28.0]
