"""The prediction interval of a one-feature least-squares line, and what it needs from the training data.

For a new BMI ``x`` the interval at level ``1 − α`` is the ordinary least-squares one::

    ŷ ± t(1 − α/2, n − 2) · s · √(1 + 1/n + (x − x̄)² / Sxx)

with ``s`` the residual standard error on the ``n`` training rows, ``x̄`` their mean BMI and
``Sxx = Σ (x − x̄)²``. It widens away from ``x̄``: the further from the data, the less is known.
NumPy only at import time; SciPy (for the t quantile) is imported by :func:`interval_figures`,
which runs at training time, never on the serving path.

Calibration is measured, not assumed: :func:`coverage` is the share of rows whose observed value
lies inside its interval, and :func:`cross_validated_coverage` measures it on rows the line did
not see, refitting the same estimator on every fold.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "CV_FOLDS",
    "IntervalFigures",
    "coverage",
    "cross_validated_coverage",
    "interval_figures",
    "prediction_interval",
]

# Ten folds, the usual choice: each refit sees 90 % of the rows, and ten estimates of the coverage
# are averaged. Fewer rows than folds get one fold per row (leave-one-out).
CV_FOLDS = 10


@dataclass(frozen=True)
class IntervalFigures:
    """What a version stores so that any of its predictions' intervals can be reproduced."""

    level: float  # nominal coverage, e.g. 0.95
    t: float  # Student's t quantile at (1 + level) / 2, n − 2 degrees of freedom
    residual_std: float  # s, progression units
    n: int  # training rows
    bmi_mean: float  # x̄, kg/m²
    bmi_sxx: float  # Σ (x − x̄)², (kg/m²)²

    def half_width(self, bmi):
        """The interval's half-width at ``bmi`` (a float or an array)."""
        bmi = np.asarray(bmi, dtype=np.float64)
        return self.t * self.residual_std * np.sqrt(1.0 + 1.0 / self.n + (bmi - self.bmi_mean) ** 2 / self.bmi_sxx)


def interval_figures(X, y, predicted, *, level: float) -> IntervalFigures:
    """The figures of the interval at ``level`` for a line whose predictions on ``X`` are ``predicted``."""
    from scipy.stats import t as student_t  # training only: SciPy stays off the serving path

    X = np.asarray(X, dtype=np.float64)
    residuals = np.asarray(y, dtype=np.float64) - np.asarray(predicted, dtype=np.float64)
    n = int(X.shape[0])
    if n < 3:
        raise ValueError(f"A prediction interval needs at least 3 training rows, got {n}.")
    if not 0.0 < level < 1.0:
        raise ValueError(f"The interval level must lie strictly between 0 and 1, got {level!r}.")
    dof = n - 2
    mean = float(X.mean())
    return IntervalFigures(
        level=float(level),
        t=float(student_t.ppf((1.0 + level) / 2.0, dof)),
        residual_std=float(np.sqrt(np.sum(residuals**2) / dof)),
        n=n,
        bmi_mean=mean,
        bmi_sxx=float(np.sum((X - mean) ** 2)),
    )


def prediction_interval(bmi, prediction, figures: IntervalFigures):
    """(low, high) around ``prediction`` at ``bmi``: floats, or arrays for arrays."""
    half = figures.half_width(bmi)
    prediction = np.asarray(prediction, dtype=np.float64)
    return prediction - half, prediction + half


def coverage(X, y, predicted, figures: IntervalFigures) -> float:
    """The share of rows whose observed ``y`` lies inside its interval around ``predicted``.

    Inside means ``|y − ŷ| ≤ half-width``, ends included, as the live coverage counts it
    (predictor/monitoring/stats.py).
    """
    residuals = np.abs(np.asarray(y, dtype=np.float64) - np.asarray(predicted, dtype=np.float64))
    return float(np.mean(residuals <= figures.half_width(X)))


def cross_validated_coverage(estimator, X, y, *, level: float, n_splits: int = CV_FOLDS, random_state=None) -> float:
    """The interval's coverage on rows held out in turn: ``n_splits``-fold cross-validation.

    The rows are shuffled with ``numpy.random.default_rng(random_state)`` and cut into
    ``n_splits`` nearly equal folds (``numpy.array_split``). For each fold, a fresh estimator with
    ``estimator``'s parameters (``type(estimator)(**estimator.get_params())``, scikit-learn's
    ``clone``) is fitted on the other folds, the interval figures are computed from those rows,
    and the fold's rows inside their intervals are counted. Returns inside / rows over all folds.

    Refitting the same SGD estimator, rather than the closed-form least-squares line, measures
    the line actually served, stopping rule and all; a fit of ~400 rows takes about a millisecond.
    """
    import warnings

    from predictor.ml.sgd import ConvergenceWarning

    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    n = int(X.shape[0])
    n_splits = min(int(n_splits), n)
    # Every refit needs the 3 rows an interval needs.
    if n_splits < 2 or n - -(-n // n_splits) < 3:
        raise ValueError(f"Cross-validated coverage needs at least 4 training rows, got {n}.")
    order = np.random.default_rng(random_state).permutation(n)
    inside = 0
    for held in np.array_split(order, n_splits):
        kept = np.setdiff1d(order, held, assume_unique=True)
        fold = type(estimator)(**estimator.get_params())
        with warnings.catch_warnings():
            # The version's own fit reports non-convergence; its folds would only repeat it.
            warnings.simplefilter("ignore", ConvergenceWarning)
            fold.fit(X[kept], y[kept])
        figures = interval_figures(X[kept], y[kept], fold.predict(X[kept]), level=level)
        inside += int(np.sum(np.abs(y[held] - fold.predict(X[held])) <= figures.half_width(X[held])))
    return inside / n
