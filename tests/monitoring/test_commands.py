"""check_model's exit codes for a scheduled job, and train --with-outcomes."""

from __future__ import annotations

from io import StringIO

import numpy as np
import pytest
from django.core.management import CommandError, call_command

from predictor.models import ModelVersion


def check(**options) -> str:
    out = StringIO()
    call_command("check_model", stdout=out, **options)
    return out.getvalue()


def test_no_active_version_is_an_alert(db):
    with pytest.raises(CommandError, match="No model version is active"):
        check()


def test_healthy_version_exits_zero_with_a_summary(active_version, log_predictions, record_outcomes, diabetes):
    rows = log_predictions(active_version, diabetes.X_train[:200])  # the training population: no drift
    noise = np.random.default_rng(4).normal(0, 15, len(rows))
    record_outcomes(rows, [r.predictions[0] + e for r, e in zip(rows, noise, strict=True)])  # live R² well above 0.4
    output = check(min_outcomes=30, min_predictions=100)
    assert f"Version {active_version.version}: 200 predictions, 200 outcomes" in output
    assert "is healthy" in output


def test_live_r2_at_or_below_threshold_is_an_alert(active_version, log_predictions, record_outcomes):
    rng = np.random.default_rng(5)
    rows = log_predictions(active_version, rng.uniform(20, 35, 40))
    record_outcomes(rows, rng.uniform(25, 346, 40))  # outcomes unrelated to BMI: R² near or below 0
    with pytest.raises(CommandError, match=r"live R² -?[0-9.]+ is not above the threshold 0\.4"):
        check(min_outcomes=30)


def test_too_few_outcomes_are_not_judged(active_version, log_predictions, record_outcomes):
    rows = log_predictions(active_version, [20.0, 25.0, 30.0, 35.0])
    record_outcomes(rows, [300.0, 30.0, 300.0, 30.0])  # dreadful, but only four
    output = check(min_outcomes=30)
    assert "Live R² not judged: 4 outcomes, at least 30 needed." in output
    assert "is healthy" in output


def test_drift_above_the_alert_level_is_an_alert(active_version, log_predictions):
    log_predictions(active_version, np.random.default_rng(1).normal(40, 2, 150))
    with pytest.raises(CommandError, match=r"BMI drift PSI [0-9.]+ exceeds 0\.25"):
        check(min_predictions=100)


def test_drift_on_too_few_predictions_is_not_judged(active_version, log_predictions):
    log_predictions(active_version, [45.0] * 20)
    output = check(min_predictions=100)
    assert "Drift not judged: 20 predictions, at least 100 needed." in output


def test_train_with_outcomes_adds_the_observed_pairs(active_version, log_predictions, record_outcomes, diabetes):
    rows = log_predictions(active_version, [21.0, 27.5, 33.0])
    record_outcomes(rows[:2], [110.0, 190.0])  # the third prediction has no outcome yet
    out = StringIO()
    call_command("train", "--with-outcomes", "--no-promote", stdout=out)
    version = ModelVersion.objects.order_by("-version").first()
    assert version.version != active_version.version
    assert version.n_outcome_rows == 2
    assert version.n_train == diabetes.n_train + 2
    assert version.n_test == diabetes.n_test
    assert version.dataset_name == "sklearn-diabetes-bmi+2 outcomes"
    assert version.data_fingerprint != active_version.data_fingerprint
    assert "Adding 2 observed outcome(s)" in out.getvalue()


def test_train_without_the_option_ignores_outcomes(active_version, log_predictions, record_outcomes, diabetes):
    rows = log_predictions(active_version, [21.0])
    record_outcomes(rows, [110.0])
    call_command("train", "--no-promote", stdout=StringIO())
    version = ModelVersion.objects.order_by("-version").first()
    assert version.n_outcome_rows == 0
    assert version.n_train == diabetes.n_train


def test_train_with_outcomes_adds_batch_outcomes_too(
    active_version, log_predictions, log_batch, record_outcomes, record_batch_outcomes, diabetes
):
    record_outcomes(log_predictions(active_version, [21.0, 27.5]), [110.0, 190.0])
    batch = log_batch(active_version, [24.0, 30.0, 36.0, 19.0])
    record_batch_outcomes(batch, {0: 130.0, 2: 250.0, 3: 80.0})  # position 1 has no outcome yet
    out = StringIO()
    call_command("train", "--with-outcomes", "--no-promote", stdout=out)
    version = ModelVersion.objects.order_by("-version").first()
    assert version.n_outcome_rows == 5
    assert version.n_train == diabetes.n_train + 5
    assert version.dataset_name == "sklearn-diabetes-bmi+5 outcomes"
    assert "Adding 5 observed outcome(s)" in out.getvalue()


def test_drift_in_batch_items_is_an_alert(active_version, log_batch):
    log_batch(active_version, np.random.default_rng(1).normal(40, 2, 150))
    with pytest.raises(CommandError, match=r"BMI drift PSI [0-9.]+ exceeds 0\.25"):
        check(min_predictions=100)


def test_summary_counts_batch_items_and_outcomes(active_version, log_predictions, log_batch, record_batch_outcomes):
    log_predictions(active_version, [25.0, 26.0])
    batch = log_batch(active_version, [24.0, 27.0, 30.0])
    record_batch_outcomes(batch, {0: 150.0, 2: 170.0})
    output = check()
    assert f"Version {active_version.version}: 5 predictions, 2 outcomes" in output
