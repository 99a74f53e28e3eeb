"""The prediction interval of a one-feature least-squares line, and what it needs from the training data.

For a new BMI ``x`` the interval at level ``1 − α`` is the ordinary least-squares one::

    ŷ ± t(1 − α/2, n − 2) · s · √(1 + 1/n + (x − x̄)² / Sxx)

with ``s`` the residual standard error on the ``n`` training rows, ``x̄`` their mean BMI and
``Sxx = Σ (x − x̄)²``. It widens away from ``x̄``: the further from the data, the less is known.
NumPy only at import time; SciPy (for the t quantile) is imported by :func:`interval_figures`,
which runs at training time, never on the serving path.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["IntervalFigures", "interval_figures", "prediction_interval"]


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
