"""Migrations 0003/0004: batches logged as rows move into PredictionBatch with their outcomes, and back."""

from __future__ import annotations

import datetime
import uuid

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

BEFORE = [("predictor", "0002_prediction_log_leaner_indexes")]
AFTER = [("predictor", "0004_prediction_log_single_only")]
RECORDED = datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)


def _migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


@pytest.fixture
def legacy(transactional_db):
    """The database at 0002, with two batches logged as rows, one single prediction, and outcomes."""
    apps = _migrate(BEFORE)
    ModelVersion = apps.get_model("predictor", "ModelVersion")
    PredictionLog = apps.get_model("predictor", "PredictionLog")
    Outcome = apps.get_model("predictor", "Outcome")
    User = apps.get_model("auth", "User")
    user = User.objects.create(username="recorder")
    version = ModelVersion.objects.create(
        status="candidate", slope=10.0, intercept=-100.0, r2_test=0.5, mse_test=1.0, mae_test=1.0, r2_train=0.5,
        mse_train=1.0, n_train=1, n_test=1, threshold=0.4, hyperparameters={}, n_epochs=1, converged=True,
        training_seconds=0.1, dataset_name="legacy", data_fingerprint="f",
    )  # fmt: skip
    batches = {uuid.uuid4(): [20.0, 30.0, 40.0], uuid.uuid4(): [25.5]}
    ids = {}
    for batch_id, bmis in batches.items():
        for bmi in bmis:
            row = PredictionLog.objects.create(
                model_version=version, bmi=bmi, prediction=10 * bmi - 100, channel="batch", batch_id=batch_id
            )
            ids[(batch_id, bmi)] = row.pk
    single = PredictionLog.objects.create(model_version=version, bmi=33.0, prediction=230.0, channel="api")
    first = next(iter(batches))
    Outcome.objects.create(prediction_id=ids[(first, 30.0)], observed=222.0, recorded_by=user, source="import")
    Outcome.objects.filter(prediction_id=ids[(first, 30.0)]).update(recorded_at=RECORDED)
    Outcome.objects.create(prediction_id=single.pk, observed=111.0, source="api")
    yield {"batches": batches, "first": first, "single": single.pk, "version": version.pk}
    _migrate(AFTER)  # leave the schema as the other tests expect it


def test_batches_logged_as_rows_become_one_row_each_with_their_outcomes(legacy):
    apps = _migrate(AFTER)
    PredictionBatch = apps.get_model("predictor", "PredictionBatch")
    PredictionLog = apps.get_model("predictor", "PredictionLog")
    Outcome = apps.get_model("predictor", "Outcome")
    BatchOutcome = apps.get_model("predictor", "BatchOutcome")

    moved = {batch.pk: batch for batch in PredictionBatch.objects.all()}
    assert set(moved) == set(legacy["batches"])
    for batch_id, bmis in legacy["batches"].items():
        batch = moved[batch_id]
        assert (batch.size, batch.model_version_id) == (len(bmis), legacy["version"])
        assert batch.bmi == bmis  # in the order they were logged
        assert batch.predictions == [10 * bmi - 100 for bmi in bmis]
    outcome = BatchOutcome.objects.get()
    assert (outcome.batch_id, outcome.position, outcome.observed) == (legacy["first"], 1, 222.0)
    assert (outcome.source, outcome.recorded_by.username, outcome.recorded_at) == ("import", "recorder", RECORDED)
    # The single prediction and its outcome stay where they were.
    assert list(PredictionLog.objects.values_list("pk", "channel")) == [(legacy["single"], "api")]
    assert list(Outcome.objects.values_list("prediction_id", "observed")) == [(legacy["single"], 111.0)]


def test_migrating_back_expands_the_batches_into_rows_again(legacy):
    _migrate(AFTER)
    apps = _migrate(BEFORE)
    PredictionLog = apps.get_model("predictor", "PredictionLog")
    Outcome = apps.get_model("predictor", "Outcome")

    for batch_id, bmis in legacy["batches"].items():
        rows = PredictionLog.objects.filter(batch_id=batch_id).order_by("id")
        assert [(row.bmi, row.prediction, row.channel) for row in rows] == [(b, 10 * b - 100, "batch") for b in bmis]
    restored = Outcome.objects.get(prediction__batch_id=legacy["first"])
    assert (restored.prediction.bmi, restored.observed, restored.source, restored.recorded_at) == (
        30.0,
        222.0,
        "import",
        RECORDED,
    )
    assert PredictionLog.objects.filter(channel="api").count() == 1


def test_the_previous_release_keeps_logging_batches_while_and_after_this_one_migrates(legacy):
    """Expand/contract: 0004 leaves the old batch column and check in place, so rows the previous
    release logs during the deploy (between 0003 and 0004, and after) are accepted and stay usable."""
    _migrate([("predictor", "0003_prediction_batches")])
    old_release_copy = (
        "INSERT INTO predictor_predictionlog (created_at, model_version_id, bmi, prediction, channel, batch_id) "
        "VALUES (CURRENT_TIMESTAMP, %s, %s, %s, 'batch', %s)"
    )
    with connection.cursor() as cursor:
        cursor.execute(old_release_copy, [legacy["version"], 21.0, 110.0, uuid.uuid4().hex])
    apps = _migrate(AFTER)
    with connection.cursor() as cursor:
        cursor.execute(old_release_copy, [legacy["version"], 22.0, 120.0, uuid.uuid4().hex])

    # This release reads them as log rows of their version, like any other.
    PredictionLog = apps.get_model("predictor", "PredictionLog")
    rows = PredictionLog.objects.filter(model_version_id=legacy["version"]).order_by("id")
    assert [(row.bmi, row.channel) for row in rows] == [(33.0, "api"), (21.0, "batch"), (22.0, "batch")]
