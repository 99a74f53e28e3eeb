"""Retention: prune_predictions deletes old logs and batches and their outcomes, and nothing newer."""

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from predictor import services, serving
from predictor.models import BatchOutcome, Outcome, PredictionBatch, PredictionLog

pytestmark = pytest.mark.django_db


def _age(log_id, days):
    PredictionLog.objects.filter(pk=log_id).update(created_at=timezone.now() - timedelta(days=days))


def _age_batch(batch_id, days):
    PredictionBatch.objects.filter(pk=batch_id).update(created_at=timezone.now() - timedelta(days=days))


def _batch(days: float, size: int = 3, outcomes: int = 1):
    batch_id = serving.predict_batch([20.0 + i % 30 for i in range(size)]).batch_id
    _age_batch(batch_id, days)
    for position in range(outcomes):
        BatchOutcome.objects.create(batch_id=batch_id, position=position, observed=150.0)
    return batch_id


def test_prune_deletes_only_logs_older_than_the_cut_off(active_version):
    old = serving.predict_one(25.0).log_id
    older = serving.predict_one(26.0).log_id
    recent = serving.predict_one(27.0).log_id
    _age(old, 31)
    _age(older, 400)
    _age(recent, 29)
    Outcome.objects.create(prediction_id=old, observed=150.0)

    out = StringIO()
    call_command("prune_predictions", "--older-than", "30", stdout=out)

    assert "Deleted 2 prediction logs and 0 batches older than 30 days" in out.getvalue()
    assert list(PredictionLog.objects.values_list("id", flat=True)) == [recent]
    assert not Outcome.objects.exists()


def test_prune_defaults_to_the_retention_setting(active_version, settings):
    settings.PREDICTOR_LOG_RETENTION_DAYS = 7
    expired = serving.predict_one(25.0).log_id
    kept = serving.predict_one(26.0).log_id
    _age(expired, 8)
    _age(kept, 6)
    out = StringIO()
    call_command("prune_predictions", stdout=out)
    assert "older than 7 days" in out.getvalue()
    assert list(PredictionLog.objects.values_list("id", flat=True)) == [kept]


def test_prune_refuses_a_non_positive_age(db):
    with pytest.raises(CommandError, match="at least 1"):
        call_command("prune_predictions", "--older-than", "0", stdout=StringIO())


def test_prune_beyond_the_calendar_deletes_nothing(active_version):
    serving.predict_one(25.0)
    out = StringIO()
    call_command("prune_predictions", "--older-than", "99999999", stdout=out)  # before year 1
    assert "Deleted 0 prediction logs and 0 batches" in out.getvalue()
    assert PredictionLog.objects.count() == 1


def test_prune_deletes_old_batches_with_their_outcomes_and_keeps_newer_ones(active_version):
    old = _batch(31, outcomes=2)
    older = _batch(400, size=10_000)
    recent = _batch(29)
    single = serving.predict_one(25.0).log_id
    _age(single, 31)

    out = StringIO()
    call_command("prune_predictions", "--older-than", "30", stdout=out)

    assert "Deleted 1 prediction logs and 2 batches older than 30 days" in out.getvalue()
    assert list(PredictionBatch.objects.values_list("id", flat=True)) == [recent]
    assert list(BatchOutcome.objects.values_list("batch_id", flat=True)) == [recent]
    assert not PredictionBatch.objects.filter(pk__in=[old, older]).exists()


def test_prune_service_counts_both_and_deletes_in_chunks(active_version):
    expired_batches = {_batch(40) for _ in range(5)}
    kept_batch = _batch(1)
    expired_logs = [serving.predict_one(25.0 + i).log_id for i in range(3)]
    kept_log = serving.predict_one(30.0).log_id
    for log_id in expired_logs:
        _age(log_id, 40)

    # Chunks smaller than what is due: the service keeps going until nothing old is left.
    result = services.prediction_logs_prune(older_than_days=30, chunk_size=2, batch_chunk_size=2)

    assert result == services.PruneResult(predictions=3, batches=5)
    assert list(PredictionBatch.objects.values_list("id", flat=True)) == [kept_batch]
    assert list(PredictionLog.objects.values_list("id", flat=True)) == [kept_log]
    assert not BatchOutcome.objects.filter(batch_id__in=expired_batches).exists()
    assert BatchOutcome.objects.filter(batch_id=kept_batch).count() == 1


def test_prune_never_loads_a_batchs_values(active_version):
    _batch(40, size=10_000)

    with CaptureQueriesContext(connection) as captured:
        result = services.prediction_logs_prune(older_than_days=30)

    assert result.batches == 1
    batch_queries = [q["sql"] for q in captured if "predictor_predictionbatch" in q["sql"]]
    assert batch_queries
    assert not [sql for sql in batch_queries if '"bmi"' in sql or '"predictions"' in sql]


def test_prune_with_nothing_old_deletes_nothing(active_version):
    kept = _batch(2)
    out = StringIO()
    call_command("prune_predictions", "--older-than", "3", stdout=out)
    assert "Deleted 0 prediction logs and 0 batches older than 3 days" in out.getvalue()
    assert list(PredictionBatch.objects.values_list("id", flat=True)) == [kept]
