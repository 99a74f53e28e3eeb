"""Retention: prune_predictions deletes old log entries (single predictions and batches) and their
outcomes, and nothing newer."""

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from predictor.models import Outcome, PredictionLog
from predictor.predictions import services, serving

pytestmark = pytest.mark.django_db


def _age(log_id: int, days: float) -> None:
    PredictionLog.objects.filter(pk=log_id).update(created_at=timezone.now() - timedelta(days=days))


def _single(days: float, bmi: float = 25.0, *, outcome: bool = False) -> int:
    log_id = serving.predict([bmi], channel="api").log_id
    _age(log_id, days)
    if outcome:
        Outcome.objects.create(log_id=log_id, position=0, observed=150.0)
    return log_id


def _batch(days: float, size: int = 3, outcomes: int = 1) -> int:
    log_id = serving.predict([20.0 + i % 30 for i in range(size)], channel="batch").log_id
    _age(log_id, days)
    for position in range(outcomes):
        Outcome.objects.create(log_id=log_id, position=position, observed=150.0)
    return log_id


def _remaining() -> list[int]:
    return sorted(PredictionLog.objects.values_list("id", flat=True))


def test_prune_deletes_only_entries_older_than_the_cut_off(active_version):
    old = _single(31, 25.0, outcome=True)
    _single(400, 26.0)
    recent = _single(29, 27.0, outcome=True)

    out = StringIO()
    call_command("prune_predictions", "--older-than", "30", stdout=out)

    assert "Deleted 2 log entries (single predictions and batches) older than 30 days." in out.getvalue()
    assert _remaining() == [recent]
    assert list(Outcome.objects.values_list("log_id", flat=True)) == [recent]
    assert not Outcome.objects.filter(log_id=old).exists()


def test_prune_defaults_to_the_retention_setting(active_version, settings):
    settings.PREDICTOR_LOG_RETENTION_DAYS = 7
    _single(8)
    kept = _single(6)
    out = StringIO()
    call_command("prune_predictions", stdout=out)
    assert "older than 7 days" in out.getvalue()
    assert _remaining() == [kept]


@pytest.mark.parametrize("days", ["0", "-5"])
def test_prune_refuses_a_non_positive_age(db, days):
    with pytest.raises(CommandError, match="at least 1"):
        call_command("prune_predictions", "--older-than", days, stdout=StringIO())


def test_prune_beyond_the_calendar_deletes_nothing(active_version):
    serving.predict([25.0], channel="api")
    out = StringIO()
    call_command("prune_predictions", "--older-than", "99999999", stdout=out)  # before year 1
    assert "Deleted 0 log entries" in out.getvalue()
    assert PredictionLog.objects.count() == 1


def test_prune_deletes_old_batches_with_their_outcomes_and_keeps_newer_ones(active_version):
    old = _batch(31, outcomes=2)
    older = _batch(400, size=10_000)
    recent = _batch(29)
    _single(31)

    out = StringIO()
    call_command("prune_predictions", "--older-than", "30", stdout=out)

    # A batch is one entry, however many predictions it holds.
    assert "Deleted 3 log entries (single predictions and batches) older than 30 days." in out.getvalue()
    assert _remaining() == [recent]
    assert list(Outcome.objects.values_list("log_id", flat=True)) == [recent]
    assert not PredictionLog.objects.filter(pk__in=[old, older]).exists()


def test_prune_service_counts_every_entry_and_deletes_in_chunks(active_version):
    expired = {_batch(40) for _ in range(5)} | {_single(40, 25.0 + i, outcome=True) for i in range(3)}
    kept_batch = _batch(1)
    kept_single = _single(0.5, 30.0, outcome=True)

    # Chunks smaller than what is due: the service keeps going until nothing old is left.
    deleted = services.predictions_prune(older_than_days=30, chunk_size=2)

    assert deleted == 8
    assert _remaining() == sorted([kept_batch, kept_single])
    assert not Outcome.objects.filter(log_id__in=expired).exists()
    assert sorted(Outcome.objects.values_list("log_id", flat=True)) == sorted([kept_batch, kept_single])


@pytest.mark.parametrize("days", [0, -1])
def test_prune_service_refuses_a_non_positive_age(active_version, days):
    _single(40)
    with pytest.raises(ValueError, match="at least 1"):
        services.predictions_prune(older_than_days=days)
    assert PredictionLog.objects.count() == 1


def test_prune_never_loads_a_batchs_values(active_version):
    _batch(40, size=10_000)

    with CaptureQueriesContext(connection) as captured:
        deleted = services.predictions_prune(older_than_days=30)

    assert deleted == 1
    log_queries = [q["sql"] for q in captured if "predictor_predictionlog" in q["sql"]]
    assert log_queries
    assert not [sql for sql in log_queries if '"bmi"' in sql or '"predictions"' in sql]


def test_prune_with_nothing_old_deletes_nothing(active_version):
    kept = _batch(2)
    out = StringIO()
    call_command("prune_predictions", "--older-than", "3", stdout=out)
    assert "Deleted 0 log entries (single predictions and batches) older than 3 days." in out.getvalue()
    assert _remaining() == [kept]
