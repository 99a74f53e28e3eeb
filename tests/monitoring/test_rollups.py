"""Rollups plus the unfolded tail give what a full scan of the log gives, whenever folds run."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import numpy as np
import pytest
from django.core.management import call_command
from django.utils import timezone

from predictor.models import DailyRollup, Outcome, PredictionLog
from predictor.monitoring import rollups, stats
from predictor.predictions import services
from tests.monitoring.full_scan import scan


def assert_matches_scan(version) -> None:
    """Every figure the page, API, /metrics and check_model show, against the NumPy scan."""
    quality, days = stats.version_report(version)
    expected = scan(version)
    assert quality.n_predictions == expected.n_predictions
    assert quality.served_counts == expected.served_counts
    assert quality.n_outcomes == expected.n_outcomes
    assert quality.n_inside == expected.n_inside
    assert quality.coverage == (pytest.approx(expected.n_inside / expected.n_outcomes) if expected.n_outcomes else None)
    if expected.r2 is None:
        assert quality.r2 is None
    else:
        assert quality.r2 == pytest.approx(expected.r2, rel=1e-9, abs=1e-12)
    assert quality.mae == (None if expected.mae is None else pytest.approx(expected.mae, rel=1e-9))
    assert {d.day: d.predictions for d in days} == expected.predictions_by_day
    assert {d.day: d.outcomes for d in days if d.outcomes} == expected.outcomes_by_day
    if days and expected.r2 is not None:
        assert days[-1].r2_cumulative == pytest.approx(expected.r2, rel=1e-9, abs=1e-12)
    assert quality.as_dict()["live_coverage"] == quality.coverage
    assert quality.as_dict()["interval_level"] == version.interval_level


def test_rollups_plus_tail_equal_a_full_scan_with_late_and_out_of_order_outcomes(
    train_version, log_predictions, log_batch, record_outcomes, record_batch_outcomes
):
    rng = np.random.default_rng(17)
    active = train_version(promote=True)
    other = train_version(promote=False, random_state=3)
    singles, batches = [], []
    for days_ago in range(12, -1, -1):
        for version in (active, other):
            singles += log_predictions(version, rng.normal(27, 5, 6), days_ago=days_ago)
            batches.append(log_batch(version, rng.normal(30, 6, 9), days_ago=days_ago))
        if days_ago % 4 == 0:
            # Folded now and then as the predictions come in: the outcomes below all arrive later.
            rollups.rollups_fold()
    assert_matches_scan(active)
    assert_matches_scan(other)

    # Outcomes arrive days after their prediction and in no order: shuffled across days and versions.
    pending = [(entry, 0) for entry in singles] + [(batch, p) for batch in batches for p in range(batch.size)]
    order = rng.permutation(len(pending))[: len(pending) * 2 // 3]
    for step, index in enumerate(order):
        entry, position = pending[index]
        noise = rng.normal(0, 50)
        Outcome.objects.create(log=entry, position=position, observed=max(0.0, entry.predictions[position] + noise))
        if step % 37 == 0:
            rollups.rollups_fold()
        if step % 101 == 0:
            assert_matches_scan(active)
    assert_matches_scan(active)
    assert_matches_scan(other)
    rollups.rollups_fold()
    # Everything folded: the figures now come from the rollups alone, and still equal the scan.
    mark = rollups.watermark()
    assert mark.log_id == PredictionLog.objects.order_by("-pk").first().pk
    assert mark.outcome_id == Outcome.objects.order_by("-pk").first().pk
    assert_matches_scan(active)
    assert_matches_scan(other)
    assert DailyRollup.objects.filter(model_version=active).count() == 13


def test_folding_again_changes_nothing(active_version, log_predictions, record_outcomes):
    rows = log_predictions(active_version, [22.0, 28.0, 35.0], days_ago=3)
    record_outcomes(rows, [120.0, 160.0, 240.0])
    first = rollups.rollups_fold()
    before = list(DailyRollup.objects.values())
    second = rollups.rollups_fold()
    assert (first.entries, first.outcomes) == (3, 3)
    assert (second.entries, second.outcomes) == (0, 0)
    assert list(DailyRollup.objects.values()) == before
    assert_matches_scan(active_version)


def test_the_first_fold_of_a_long_log_commits_in_chunks(active_version, log_predictions, log_batch, record_outcomes):
    rows = log_predictions(active_version, np.linspace(18, 40, 25), days_ago=2)
    log_batch(active_version, np.linspace(20, 30, 50), days_ago=1)
    record_outcomes(rows[:10], np.linspace(100, 250, 10))
    report = rollups.rollups_fold(chunk=4)
    assert (report.entries, report.outcomes) == (26, 10)
    assert stats.version_days(active_version) and rollups.watermark().log_id == rows[-1].pk + 1
    assert_matches_scan(active_version)


def test_prune_deletes_raw_rows_and_keeps_the_history(active_version, log_predictions, record_outcomes):
    old = log_predictions(active_version, [21.0, 26.0, 33.0, 38.0], days_ago=40)
    record_outcomes(old[:3], [110.0, 150.0, 230.0])
    recent = log_predictions(active_version, [24.0, 29.0], days_ago=1)
    record_outcomes(recent[:1], [140.0])
    before, before_days = stats.version_report(active_version)

    assert services.predictions_prune(older_than_days=30) == 4

    assert not PredictionLog.objects.filter(pk__in=[e.pk for e in old]).exists()
    after, after_days = stats.version_report(active_version)
    assert (after.n_predictions, after.n_outcomes, after.n_inside) == (6, 4, before.n_inside)
    assert after.r2 == pytest.approx(before.r2) and after.served_counts == before.served_counts
    assert [(d.day, d.predictions, d.outcomes) for d in after_days] == [
        (d.day, d.predictions, d.outcomes) for d in before_days
    ]
    assert after_days[0].day == (timezone.now() - timedelta(days=40)).date()


def test_a_version_whose_raw_rows_were_all_pruned_is_still_monitored(train_version, log_predictions):
    retired_long_ago = train_version(promote=True, random_state=1)
    log_predictions(retired_long_ago, [25.0, 30.0], days_ago=400)
    active = train_version(promote=True, random_state=2)
    services.predictions_prune(older_than_days=365)
    assert not PredictionLog.objects.filter(model_version=retired_long_ago).exists()
    assert [v.version for v in stats.monitored_versions()] == [active.version, retired_long_ago.version]
    assert stats.version_quality(retired_long_ago).n_predictions == 2


def test_prune_folds_first_so_unfolded_rows_are_never_lost(active_version, log_predictions, record_outcomes):
    rows = log_predictions(active_version, [23.0, 31.0], days_ago=50)
    record_outcomes(rows, [130.0, 210.0])
    assert rollups.watermark().log_id == 0  # nothing folded yet
    services.predictions_prune(older_than_days=30)
    quality = stats.version_quality(active_version)
    assert (quality.n_predictions, quality.n_outcomes) == (2, 2)


def test_an_outcome_recorded_after_the_fold_keeps_its_entry_from_prune(
    active_version, log_predictions, record_outcomes, monkeypatch
):
    # An outcome that arrives between prune's fold and its delete is not in the rollups yet:
    # deleting its entry (and so the outcome) would lose it. Simulated by a fold that folds nothing more.
    rows = log_predictions(active_version, [23.0, 31.0, 36.0], days_ago=50)
    rollups.rollups_fold()
    record_outcomes(rows[:1], [130.0])
    monkeypatch.setattr(rollups, "rollups_fold", lambda: None)

    assert services.predictions_prune(older_than_days=30) == 2

    assert list(PredictionLog.objects.values_list("pk", flat=True)) == [rows[0].pk]
    monkeypatch.undo()
    rollups.rollups_fold()
    assert services.predictions_prune(older_than_days=30) == 1
    quality = stats.version_quality(active_version)
    assert (quality.n_predictions, quality.n_outcomes) == (3, 1)


def test_rollup_monitoring_command_reports_what_it_folded(active_version, log_predictions, record_outcomes):
    record_outcomes(log_predictions(active_version, [25.0, 27.0]), [150.0, 170.0])
    out = StringIO()
    call_command("rollup_monitoring", stdout=out)
    mark = rollups.watermark()
    assert "Folded 2 log entries and 2 outcomes in " in out.getvalue()
    assert f"rollups now reach log entry {mark.log_id} and outcome {mark.outcome_id}." in out.getvalue()


def test_rollup_monitoring_command_refuses_a_bad_chunk(db):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="chunk must be at least 1"):
        call_command("rollup_monitoring", "--chunk", "0", stdout=StringIO())
