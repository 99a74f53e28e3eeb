"""Live R², MAE and PSI from the SQL aggregates, against the same figures computed by hand in NumPy."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest
from django.utils import timezone

from predictor.monitoring import stats
from predictor.predictions.selectors import dataset_with_outcomes


def numpy_r2(observed, predicted) -> float:
    observed, predicted = np.asarray(observed), np.asarray(predicted)
    return 1 - np.sum((observed - predicted) ** 2) / np.sum((observed - observed.mean()) ** 2)


def numpy_psi(served_bmi, edges, training_fractions, epsilon=stats.PSI_EPSILON) -> float:
    inner = np.asarray(edges[1:-1])
    counts = np.bincount(np.searchsorted(inner, served_bmi, side="right"), minlength=len(training_fractions))
    actual = np.maximum(counts / len(served_bmi), epsilon)
    expected = np.maximum(np.asarray(training_fractions), epsilon)
    return float(np.sum((actual - expected) * np.log(actual / expected)))


def test_live_r2_and_mae_match_numpy(active_version, log_predictions, record_outcomes):
    rng = np.random.default_rng(7)
    bmis = rng.uniform(18, 42, 40)
    rows = log_predictions(active_version, bmis)
    predicted = np.array([r.predictions[0] for r in rows])
    observed = np.clip(predicted + rng.normal(0, 40, len(rows)), 0, 1000)
    record_outcomes(rows[:30], observed[:30])  # ten predictions have no outcome yet

    quality = stats.version_quality(active_version)

    assert quality.n_predictions == 40
    assert quality.n_outcomes == 30
    assert quality.r2 == pytest.approx(numpy_r2(observed[:30], predicted[:30]), rel=1e-9)
    assert quality.mae == pytest.approx(np.mean(np.abs(observed[:30] - predicted[:30])), rel=1e-9)


def test_psi_matches_numpy_and_reads_drift_for_a_shifted_population(active_version, log_predictions):
    histogram = active_version.training_bmi_histogram
    shifted = np.random.default_rng(3).normal(38, 3, 300)  # an obese clinic; training median is ~25.7
    log_predictions(active_version, shifted)

    quality = stats.version_quality(active_version)

    expected = numpy_psi(shifted, histogram["edges"], histogram["fractions"])
    assert quality.psi == pytest.approx(expected, rel=1e-9)
    assert quality.served_counts == list(
        np.bincount(
            np.searchsorted(histogram["edges"][1:-1], shifted, side="right"), minlength=len(histogram["fractions"])
        )
    )
    assert quality.psi > 0.25
    assert quality.psi_reading == "drift"


def test_training_population_itself_is_stable(active_version, log_predictions, diabetes):
    log_predictions(active_version, diabetes.X_train)
    quality = stats.version_quality(active_version)
    # Served exactly the training BMIs: every bin share equals the training share.
    assert quality.psi == pytest.approx(0.0, abs=1e-12)
    assert quality.psi_reading == "stable"


def test_bmis_outside_the_training_range_fall_in_the_open_outer_bins(active_version, log_predictions):
    edges = active_version.training_bmi_histogram["edges"]
    log_predictions(active_version, [edges[0] - 5, edges[-1] + 5, edges[-1] + 20])
    counts = stats.version_quality(active_version).served_counts
    assert counts[0] == 1
    assert counts[-1] == 2
    assert sum(counts) == 3


def test_figures_are_absent_without_data(active_version):
    quality = stats.version_quality(active_version)
    assert (quality.n_predictions, quality.n_outcomes) == (0, 0)
    assert quality.r2 is None
    assert quality.mae is None
    assert quality.psi is None
    assert quality.psi_reading == "no data"


def test_r2_is_undefined_when_all_outcomes_are_equal(active_version, log_predictions, record_outcomes):
    rows = log_predictions(active_version, [20.0, 25.0, 30.0])
    record_outcomes(rows, [150.0, 150.0, 150.0])
    quality = stats.version_quality(active_version)
    assert quality.r2 is None
    assert quality.mae == pytest.approx(np.mean([abs(150 - r.predictions[0]) for r in rows]))


def test_psi_epsilon_keeps_empty_bins_finite():
    value = stats.psi([1.0, 0.0], [0.5, 0.5])
    expected = (1 - 0.5) * np.log(1 / 0.5) + (1e-4 - 0.5) * np.log(1e-4 / 0.5)
    assert value == pytest.approx(expected)


def test_daily_series_counts_per_day_and_accumulates_r2(active_version, log_predictions, record_outcomes):
    rng = np.random.default_rng(11)
    old = log_predictions(active_version, rng.uniform(20, 35, 6), days_ago=2)
    new = log_predictions(active_version, rng.uniform(20, 35, 4), days_ago=0)
    observed_old = [r.predictions[0] + d for r, d in zip(old, [30, -20, 10, -40, 25, 5], strict=True)]
    observed_new = [r.predictions[0] + d for r, d in zip(new, [-60, 45, 15, -5], strict=True)]
    record_outcomes(old, observed_old)
    record_outcomes(new, observed_new)

    days = stats.daily_series(active_version)

    assert [d.predictions for d in days] == [6, 4]
    assert [d.outcomes for d in days] == [6, 4]
    assert days[0].r2 == pytest.approx(numpy_r2(observed_old, [r.predictions[0] for r in old]))
    assert days[0].r2_cumulative == pytest.approx(days[0].r2)
    assert days[1].r2 == pytest.approx(numpy_r2(observed_new, [r.predictions[0] for r in new]))
    everything = numpy_r2(observed_old + observed_new, [r.predictions[0] for r in old + new])
    assert days[1].r2_cumulative == pytest.approx(everything)
    assert days[1].r2_cumulative == pytest.approx(stats.version_quality(active_version).r2)


def test_monitored_versions_are_the_active_one_and_those_that_served(train_version, log_predictions):
    first = train_version(promote=True)
    log_predictions(first, [25.0])
    idle = train_version(promote=False)
    second = train_version(promote=True)
    listed = [v.version for v in stats.monitored_versions()]
    assert listed == [second.version, first.version]
    assert idle.version not in listed


def test_monitored_versions_keep_an_older_active_version_after_a_rollback(train_version, log_predictions):
    # As after rolling back past several newer versions: the active one is the oldest that served.
    active = train_version(promote=True)
    log_predictions(active, [25.0])
    newer = []
    for seed in range(1, 7):
        version = train_version(promote=False, random_state=seed)
        log_predictions(version, [26.0])
        newer.append(version.version)

    listed = [v.version for v in stats.monitored_versions()[:5]]

    assert listed == [active.version, *sorted(newer, reverse=True)[:4]]


def test_version_health_applies_the_check_model_rules(active_version, log_predictions, record_outcomes, settings):
    settings.PREDICTOR_MONITOR_MIN_OUTCOMES = 2
    settings.PREDICTOR_MONITOR_MIN_PREDICTIONS = 3
    empty = stats.version_health(active_version)
    assert empty.ok and len(empty.not_judged) == 3 and empty.judged_nothing

    # Outcomes far from the predictions: live R² far below the gate, and a BMI population off to one side.
    rows = log_predictions(active_version, [45.0, 46.0, 47.0, 48.0])
    record_outcomes(rows, [50.0, 300.0, 60.0, 290.0])
    health = stats.version_health(active_version)
    assert not health.ok and health.not_judged == []
    assert any(p.startswith("live R²") and "is not above the threshold 0.4" in p for p in health.problems)
    assert any(p.startswith("BMI drift PSI") for p in health.problems)
    # Figures already computed are reused, and every limit can be given.
    assert stats.version_health(active_version, quality=health.quality, threshold=-100, max_psi=100).ok


def test_dataset_with_outcomes_adds_the_pairs_to_training_rows_only(
    active_version, log_predictions, record_outcomes, diabetes
):
    record_outcomes(log_predictions(active_version, [25.0, 30.0]), [140.0, 180.0])
    dataset, n = dataset_with_outcomes(diabetes)
    assert n == 2
    assert dataset.name == "sklearn-diabetes-bmi+2 outcomes"
    assert dataset.n_train == diabetes.n_train + 2
    assert list(dataset.X_test) == list(diabetes.X_test)


# --- Batches: one PredictionLog entry holds many predictions; item i is (bmi[i], predictions[i]) ---


def predicted(version, bmis) -> np.ndarray:
    """What the version served for ``bmis``, computed here: slope * bmi + intercept."""
    return version.slope * np.asarray(bmis, dtype=float) + version.intercept


def test_tiny_outcomes_do_not_break_the_sums(
    active_version, log_predictions, log_batch, record_outcomes, record_batch_outcomes
):
    # 1e-200 is a valid progression (inside 0 to 1000), but its square underflows: PostgreSQL's
    # float8 multiplication raises instead of rounding to 0, which once took monitoring down.
    rows = log_predictions(active_version, [20.0, 25.0, 30.0])
    batch = log_batch(active_version, [22.0, 35.0])
    record_outcomes(rows, [1e-200, 5e-324, 140.0])
    record_batch_outcomes(batch, {0: 1e-200, 1: 210.0})

    quality = stats.version_quality(active_version)
    series = stats.daily_series(active_version)

    observed = [1e-200, 5e-324, 140.0, 1e-200, 210.0]
    served = predicted(active_version, [20.0, 25.0, 30.0, 22.0, 35.0])
    assert quality.n_outcomes == 5
    assert quality.r2 == pytest.approx(numpy_r2(observed, served), rel=1e-9)
    assert quality.mae == pytest.approx(np.mean(np.abs(np.array(observed) - served)), rel=1e-9)
    assert series[-1].r2_cumulative == pytest.approx(quality.r2, rel=1e-9)


def test_live_r2_and_mae_count_single_and_batch_outcomes(
    active_version, log_predictions, log_batch, record_outcomes, record_batch_outcomes
):
    rng = np.random.default_rng(21)
    single_bmis, a_bmis, b_bmis = rng.uniform(18, 42, 12), rng.uniform(18, 42, 8), rng.uniform(18, 42, 5)
    rows = log_predictions(active_version, single_bmis)
    batch_a, batch_b = log_batch(active_version, a_bmis), log_batch(active_version, b_bmis)
    single_obs = predicted(active_version, single_bmis[:9]) + rng.normal(0, 40, 9)
    a_at, b_at = [0, 3, 7], [1, 4]  # the other items have no outcome yet
    a_obs = predicted(active_version, a_bmis[a_at]) + rng.normal(0, 40, 3)
    b_obs = predicted(active_version, b_bmis[b_at]) + rng.normal(0, 40, 2)
    record_outcomes(rows[:9], single_obs)
    record_batch_outcomes(batch_a, dict(zip(a_at, a_obs, strict=True)))
    record_batch_outcomes(batch_b, dict(zip(b_at, b_obs, strict=True)))

    quality = stats.version_quality(active_version)

    observed = np.concatenate([single_obs, a_obs, b_obs])
    served = np.concatenate(
        [
            predicted(active_version, single_bmis[:9]),
            predicted(active_version, a_bmis[a_at]),
            predicted(active_version, b_bmis[b_at]),
        ]
    )
    assert quality.n_predictions == 12 + 8 + 5
    assert quality.n_outcomes == 9 + 3 + 2
    assert quality.r2 == pytest.approx(numpy_r2(observed, served), rel=1e-9)
    assert quality.mae == pytest.approx(np.mean(np.abs(observed - served)), rel=1e-9)


def test_a_batch_outcome_is_compared_with_the_prediction_at_its_position(
    active_version, log_batch, record_batch_outcomes
):
    # Positions count from 0: the outcome of item 2 is compared with the prediction for BMI 40,
    # not for 30 (item 1) nor past the end.
    batch = log_batch(active_version, [20.0, 30.0, 40.0])
    at_40 = active_version.slope * 40.0 + active_version.intercept
    record_batch_outcomes(batch, {2: at_40 + 10.0})
    quality = stats.version_quality(active_version)
    assert quality.n_outcomes == 1
    assert quality.mae == pytest.approx(10.0)
    assert quality.r2 is None  # one outcome: R² undefined


def test_psi_and_bin_counts_include_batch_items(active_version, log_predictions, log_batch):
    histogram = active_version.training_bmi_histogram
    rng = np.random.default_rng(5)
    singles, first, second = rng.normal(30, 4, 50), rng.normal(38, 3, 120), rng.normal(22, 2, 30)
    log_predictions(active_version, singles)
    log_batch(active_version, first)
    log_batch(active_version, second)

    quality = stats.version_quality(active_version)

    served = np.concatenate([singles, first, second])
    bins = np.searchsorted(histogram["edges"][1:-1], served, side="right")
    assert quality.n_predictions == 200
    assert quality.served_counts == list(np.bincount(bins, minlength=len(histogram["fractions"])))
    assert quality.psi == pytest.approx(numpy_psi(served, histogram["edges"], histogram["fractions"]), rel=1e-9)


def test_a_bmi_on_an_inner_edge_opens_the_next_bin_in_batches_as_in_the_log(active_version, log_predictions, log_batch):
    edges = active_version.training_bmi_histogram["edges"]
    inner = edges[1:-1]
    log_batch(active_version, inner)
    log_predictions(active_version, inner)
    counts = stats.version_quality(active_version).served_counts
    # As training bins them (np.searchsorted(..., 'right')): edge i is the first BMI of bin i + 1.
    expected = 2 * np.bincount(np.searchsorted(inner, inner, side="right"), minlength=len(edges) - 1)
    assert counts == list(expected)
    assert counts[0] == 0


def test_batch_bmis_outside_the_training_range_fall_in_the_open_outer_bins(active_version, log_batch):
    edges = active_version.training_bmi_histogram["edges"]
    log_batch(active_version, [edges[0] - 5, edges[-1] + 5, edges[-1] + 20])
    counts = stats.version_quality(active_version).served_counts
    assert counts[0] == 1
    assert counts[-1] == 2
    assert sum(counts) == 3


def test_batch_items_are_counted_without_a_training_histogram(active_version, log_predictions, log_batch):
    active_version.training_bmi_histogram = {}  # as for a version trained before histograms were stored
    log_predictions(active_version, [25.0])
    log_batch(active_version, [20.0, 30.0, 40.0])
    quality = stats.version_quality(active_version)
    assert quality.n_predictions == 4
    assert quality.served_counts == []
    assert quality.psi is None


def test_daily_series_counts_batch_items_and_their_outcomes_on_the_batch_day(
    active_version, log_predictions, log_batch, record_outcomes, record_batch_outcomes
):
    v = active_version
    today = timezone.now().date()
    log_batch(v, [23.0, 29.0], days_ago=5)  # a day with predictions and no outcome
    old_singles = log_predictions(v, [22.0, 27.0, 31.0], days_ago=2)
    old_batch = log_batch(v, [20.0, 25.0, 30.0, 35.0], days_ago=2)
    new_batch = log_batch(v, [24.0, 28.0, 33.0], days_ago=0)
    log_predictions(v, [26.0], days_ago=0)  # no outcome
    old_single_obs = predicted(v, [22.0, 27.0, 31.0]) + np.array([30.0, -20.0, 10.0])
    old_batch_obs = predicted(v, [20.0, 30.0, 35.0]) + np.array([15.0, -35.0, 5.0])  # positions 0, 2, 3
    new_batch_obs = predicted(v, [28.0, 33.0]) + np.array([-50.0, 40.0])  # positions 1, 2
    record_outcomes(old_singles, old_single_obs)
    # Recorded today, but attributed to the day the batch was predicted.
    record_batch_outcomes(old_batch, dict(zip([0, 2, 3], old_batch_obs, strict=True)))
    record_batch_outcomes(new_batch, dict(zip([1, 2], new_batch_obs, strict=True)))

    days = stats.daily_series(v)

    assert [d.day for d in days] == [today - timedelta(days=5), today - timedelta(days=2), today]
    assert [d.predictions for d in days] == [2, 3 + 4, 3 + 1]
    assert [d.outcomes for d in days] == [0, 3 + 3, 2]
    assert (days[0].r2, days[0].r2_cumulative) == (None, None)
    old_obs = np.concatenate([old_single_obs, old_batch_obs])
    old_pred = predicted(v, [22.0, 27.0, 31.0, 20.0, 30.0, 35.0])
    assert days[1].r2 == pytest.approx(numpy_r2(old_obs, old_pred), rel=1e-9)
    assert days[1].r2_cumulative == pytest.approx(days[1].r2, rel=1e-9)
    assert days[2].r2 == pytest.approx(numpy_r2(new_batch_obs, predicted(v, [28.0, 33.0])), rel=1e-9)
    everything = numpy_r2(
        np.concatenate([old_obs, new_batch_obs]), np.concatenate([old_pred, predicted(v, [28.0, 33.0])])
    )
    assert days[2].r2_cumulative == pytest.approx(everything, rel=1e-9)
    assert days[2].r2_cumulative == pytest.approx(stats.version_quality(v).r2, rel=1e-9)


def test_monitored_versions_include_a_version_that_served_only_batches(train_version, log_batch):
    active = train_version(promote=True)
    batches_only = train_version(promote=False, random_state=1)
    log_batch(batches_only, [25.0, 26.0])
    idle = train_version(promote=False, random_state=2)
    listed = [v.version for v in stats.monitored_versions()]
    assert listed == [active.version, batches_only.version]
    assert idle.version not in listed


def test_dataset_with_outcomes_adds_batch_items_by_their_position(
    active_version, log_predictions, log_batch, record_outcomes, record_batch_outcomes, diabetes, settings
):
    settings.PREDICTOR_BMI_MAX = 36.0  # narrowed since the predictions were served
    first = log_predictions(active_version, [25.0])
    older = log_batch(active_version, [21.0, 33.0, 38.0], days_ago=1)
    second = log_predictions(active_version, [30.0])
    newer = log_batch(active_version, [27.0, 29.0])
    record_batch_outcomes(newer, {1: 170.0})
    record_outcomes(second + first, [180.0, 140.0])
    record_batch_outcomes(older, {2: 200.0, 0: 120.0, 1: 160.0})  # BMI 38 is now out of range: left out

    dataset, n = dataset_with_outcomes(diabetes)

    assert n == 5
    assert dataset.name == "sklearn-diabetes-bmi+5 outcomes"
    # In log order (entry id, then position), whatever order the outcomes were recorded in.
    assert list(dataset.X_train[diabetes.n_train :]) == [25.0, 21.0, 33.0, 30.0, 29.0]
    assert list(dataset.y_train[diabetes.n_train :]) == [140.0, 120.0, 160.0, 180.0, 170.0]
    assert list(dataset.X_test) == list(diabetes.X_test)
