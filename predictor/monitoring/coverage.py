"""The live-coverage alert: does the interval cover clearly fewer outcomes than its level promises?

If a version's interval really held ``level`` of patients, the outcomes inside it among ``n``
recorded would follow Binomial(n, level). "Clearly below" is a one-sided exact binomial test
(``scipy.stats.binomtest``, alternative "less"): the alert fires when so few outcomes inside
would happen by chance less often than ``PREDICTOR_MONITOR_COVERAGE_ALPHA`` (default 0.01, one
false alarm in a hundred checks of a well-calibrated version). "Enough" is
``PREDICTOR_MONITOR_MIN_OUTCOMES`` outcomes (default 30), the same minimum live R² waits for.
At 95 % this fires at 24 or fewer inside of 30 (80 %), 88 of 100, 932 of 1,000.

Kept apart from predictor/monitoring/stats.py, which only has to provide ``VersionQuality``'s
``n_outcomes``, ``n_inside`` and ``interval_level``.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["CoverageVerdict", "coverage_pvalue", "coverage_verdict"]


def coverage_pvalue(n_inside: int, n_outcomes: int, level: float) -> float:
    """P(at most ``n_inside`` of ``n_outcomes`` inside) for an interval that holds ``level``."""
    from scipy.stats import binomtest  # monitoring only: SciPy stays off the serving path

    return float(binomtest(n_inside, n_outcomes, level, alternative="less").pvalue)


@dataclass(frozen=True)
class CoverageVerdict:
    problem: str | None  # an alert, in words
    not_judged: str | None  # too few outcomes to judge


def coverage_verdict(quality, *, min_outcomes: int, alpha: float) -> CoverageVerdict:
    """Judge the live coverage of ``quality`` (a ``stats.VersionQuality``)."""
    n, inside, level = quality.n_outcomes, quality.n_inside, quality.interval_level
    if level is None or n < min_outcomes:
        return CoverageVerdict(None, f"Live coverage not judged: {n} outcomes, at least {min_outcomes} needed.")
    p = coverage_pvalue(inside, n, level)
    if p < alpha:
        return CoverageVerdict(
            f"live coverage {inside / n:.1%} ({inside} of {n} outcomes inside their interval) is clearly below the "
            f"nominal {level:.0%} (one-sided binomial test p = {p:.2g} < {alpha:g})",
            None,
        )
    return CoverageVerdict(None, None)
