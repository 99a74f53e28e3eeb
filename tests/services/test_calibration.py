"""The calibration a version stores at training time, recomputed here from the data by hand."""

import math

import numpy as np
import pytest
from scipy import stats

from predictor.ml.sgd import SGDLinearRegression


def _inside(X_fit, y_fit, predict, X_new, y_new, level=0.95) -> np.ndarray:
    """Which new rows lie inside the least-squares prediction interval of a line fitted on X_fit."""
    n = len(X_fit)
    s = math.sqrt(np.sum((y_fit - predict(X_fit)) ** 2) / (n - 2))
    t = stats.t.ppf((1 + level) / 2, n - 2)
    sxx = np.sum((X_fit - X_fit.mean()) ** 2)
    half = t * s * np.sqrt(1 + 1 / n + (X_new - X_fit.mean()) ** 2 / sxx)
    return np.abs(y_new - predict(X_new)) <= half


def test_held_out_coverage_is_the_share_of_test_rows_inside(train_version, diabetes):
    version = train_version()

    def line(x):
        return version.slope * x + version.intercept

    inside = _inside(diabetes.X_train, diabetes.y_train, line, diabetes.X_test, diabetes.y_test)
    assert version.coverage_test == inside.mean() == 1.0  # all 20 held-out patients on the standard split
    assert version.interval_level == 0.95


@pytest.mark.parametrize("seed", [0, 7])
def test_cross_validated_coverage_is_ten_refitted_seeded_folds(train_version, diabetes, seed):
    version = train_version(random_state=seed)
    X, y = diabetes.X_train, diabetes.y_train
    order = np.random.default_rng(seed).permutation(len(X))
    inside = 0
    for held in np.array_split(order, 10):
        kept = np.array(sorted(set(order) - set(held)))
        fold = SGDLinearRegression(**version.hyperparameters).fit(X[kept], y[kept])
        inside += _inside(X[kept], y[kept], fold.predict, X[held], y[held]).sum()

    assert version.hyperparameters["random_state"] == seed
    assert version.coverage_cv == inside / len(X)
    assert 0.93 < version.coverage_cv < 0.99  # calibrated: close to the nominal 95 %


def test_the_scale_is_the_training_scores_range(train_version, diabetes):
    version = train_version()
    assert (version.progression_min, version.progression_max) == (diabetes.y_train.min(), diabetes.y_train.max())
    assert (version.progression_min, version.progression_max) == (25.0, 346.0)
    assert version.training_bmi_range == (diabetes.X_train.min(), diabetes.X_train.max()) == (18.0, 42.2)
