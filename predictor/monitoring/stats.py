"""Live quality and input drift per model version, computed in the database.

Every figure is an aggregate query (COUNT, SUM, a filtered COUNT per BMI bin), so the cost grows
with the rows PostgreSQL scans, never with rows shipped to Python: a version with millions of
logged predictions costs two scans (see docs/monitoring.md for measured times).

A version's predictions are the items of its log entries (one for a single prediction, many for
a batch), read in SQL from the entries' arrays: ``unnest(bmi)`` for the served BMIs,
``predictions[position + 1]`` for the prediction an outcome observes.

Live R² uses sums, not a second pass over the rows, of the outcomes shifted by a constant
``c`` (``OUTCOME_SHIFT``; a shift leaves the spread unchanged)::

    SS_res = Σ (observed - predicted)²
    SS_tot = Σ (observed - c)² - (Σ (observed - c))² / n
    R²     = 1 - SS_res / SS_tot

Drift is the population stability index of served BMIs against the version's training BMIs,
binned on the training deciles (``ModelVersion.training_bmi_histogram``)::

    PSI = Σ_bins (served_share - training_share) · ln(served_share / training_share)

read as < 0.1 stable, 0.1 to 0.25 watch, > 0.25 drift.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date, timedelta
from itertools import chain

from django.conf import settings
from django.db import connection
from django.db.models import BooleanField, Count, Exists, ExpressionWrapper, F, FloatField, OuterRef, Q, Sum, Value
from django.db.models.functions import Abs, TruncDate
from django.utils import timezone

from predictor.predictions.models import ArrayItem, Outcome, PredictionLog
from predictor.registry.models import ModelVersion

# An empty bin would make ln(share) infinite; both shares are floored at this before the PSI sum.
# 1e-4 is one row in ten thousand: small enough not to hide a real shift, large enough that one
# empty bin adds at most about 0.1 * ln(0.1/1e-4) ≈ 0.7 rather than infinity.
PSI_EPSILON = 1e-4
PSI_WATCH = 0.1
# Outcomes are shifted by this before they are squared. Squaring a tiny outcome (1e-200, a valid
# progression of 0.0…) fails on PostgreSQL, whose float8 multiplication raises "underflow" rather
# than round to 0; doubles near 150 are 3e-14 apart, so a shifted outcome is 0 or far from
# underflowing. Near the diabetes progressions' mean, it also keeps the sums' rounding small.
OUTCOME_SHIFT = 150.0
PSI_DRIFT = 0.25


@dataclass(frozen=True)
class VersionQuality:
    """What the logs say about one version: traffic, quality on observed outcomes, input drift."""

    version: int
    n_predictions: int
    n_outcomes: int
    r2: float | None  # None until there are two outcomes that differ
    mae: float | None  # None until there is an outcome
    psi: float | None  # None until a prediction was served (or no training histogram)
    edges: list[float] = field(default_factory=list)
    training_fractions: list[float] = field(default_factory=list)
    served_counts: list[int] = field(default_factory=list)

    @property
    def served_fractions(self) -> list[float]:
        total = sum(self.served_counts)
        return [c / total for c in self.served_counts] if total else [0.0 for _ in self.served_counts]

    @property
    def psi_reading(self) -> str:
        return psi_reading(self.psi)

    def as_dict(self) -> dict:
        return {
            "version": self.version,
            "predictions": self.n_predictions,
            "outcomes": self.n_outcomes,
            "live_r2": self.r2,
            "live_mae": self.mae,
            "drift_psi": self.psi,
            "drift_reading": self.psi_reading,
            "bmi_histogram": {
                "edges": self.edges,
                "training_fractions": self.training_fractions,
                "served_counts": self.served_counts,
                "served_fractions": self.served_fractions,
            },
        }


@dataclass(frozen=True)
class DayPoint:
    day: date
    predictions: int
    outcomes: int
    r2: float | None  # on the outcomes of that day's predictions
    r2_cumulative: float | None  # on all outcomes of predictions up to and including that day


def psi_reading(psi: float | None) -> str:
    if psi is None:
        return "no data"
    if psi < PSI_WATCH:
        return "stable"
    if psi <= PSI_DRIFT:
        return "watch"
    return "drift"


def r2_from_sums(n: int, total: float, total_sq: float, ss_res: float) -> float | None:
    """R² from running sums of the (shifted) outcomes and their squares, and of the squared
    residuals; None when it is undefined (fewer than two outcomes, or all equal)."""
    if n < 2:
        return None
    ss_tot = total_sq - total * total / n
    # Rounding can leave a tiny positive SS_tot for identical outcomes; that is still "all equal".
    if ss_tot <= 1e-12 * max(total_sq, 1.0):
        return None
    return 1.0 - ss_res / ss_tot


def psi(served_fractions, training_fractions, *, epsilon: float = PSI_EPSILON) -> float:
    """Population stability index of two distributions over the same bins (see module docstring)."""
    value = 0.0
    for actual, expected in zip(served_fractions, training_fractions, strict=True):
        actual = max(actual, epsilon)
        expected = max(expected, epsilon)
        value += (actual - expected) * math.log(actual / expected)
    return value


def _bin_bounds(edges: list[float]) -> list[tuple[float | None, float | None]]:
    """(low, high) of each training bin, None where open. Bins match training
    (np.searchsorted(inner, bmi, 'right')): [inner[i-1], inner[i]); the first and last are
    open-ended, so out-of-range BMIs still count."""
    inner = edges[1:-1]
    n_bins = len(edges) - 1
    return [(inner[i - 1] if i > 0 else None, inner[i] if i < n_bins - 1 else None) for i in range(n_bins)]


def _served(version: ModelVersion, bounds) -> tuple[int, list[int]]:
    """Predictions of ``version``: how many, and how many per bin (one scan of the unnested BMIs)."""
    columns, params = ["COUNT(*)"], []
    for low, high in bounds:
        conditions = []
        if low is not None:
            conditions.append("item.bmi >= %s")
            params.append(low)
        if high is not None:
            conditions.append("item.bmi < %s")
            params.append(high)
        columns.append(f"COUNT(*) FILTER (WHERE {' AND '.join(conditions)})" if conditions else "COUNT(*)")
    sql = (
        f"SELECT {', '.join(columns)} FROM {PredictionLog._meta.db_table} AS log "  # noqa: S608
        "CROSS JOIN LATERAL unnest(log.bmi) AS item(bmi) WHERE log.model_version_id = %s"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [*params, version.version])
        n, *counts = cursor.fetchone()
    return n, counts


def _outcome_sums(observed: str, predicted) -> dict:
    """The sums live R² and MAE are computed from; ``observed`` may be NULL (a LEFT JOIN) and then counts nothing."""
    residual = F(observed) - predicted
    shifted = F(observed) - Value(OUTCOME_SHIFT, output_field=FloatField())
    return {
        "outcomes": Count(observed),
        "total": Sum(shifted, output_field=FloatField()),
        "total_sq": Sum(shifted * shifted, output_field=FloatField()),
        "ss_res": Sum(residual * residual, output_field=FloatField()),
        "abs_res": Sum(Abs(residual), output_field=FloatField()),
    }


# The prediction an outcome observes, read from its entry's array.
_PREDICTED = ArrayItem("log__predictions", "position")


def version_quality(version: ModelVersion) -> VersionQuality:
    """Traffic, live R²/MAE and PSI of ``version``: two aggregate queries."""
    histogram = version.training_bmi_histogram or {}
    edges = [float(e) for e in histogram.get("edges", [])]
    training_fractions = [float(f) for f in histogram.get("fractions", [])]
    usable_histogram = len(edges) >= 2 and len(training_fractions) == len(edges) - 1
    bounds = _bin_bounds(edges) if usable_histogram else []

    n_predictions, served_counts = _served(version, bounds)
    # Observed outcomes, each against the prediction it observes.
    sums = Outcome.objects.filter(log__model_version_id=version.version).aggregate(
        **_outcome_sums("observed", _PREDICTED)
    )
    n_outcomes = sums["outcomes"]
    r2 = r2_from_sums(n_outcomes, sums["total"] or 0.0, sums["total_sq"] or 0.0, sums["ss_res"] or 0.0)
    mae = sums["abs_res"] / n_outcomes if n_outcomes else None

    drift = None
    if usable_histogram and n_predictions:
        drift = psi([c / n_predictions for c in served_counts], training_fractions)
    return VersionQuality(
        version=version.version,
        n_predictions=n_predictions,
        n_outcomes=n_outcomes,
        r2=r2,
        mae=mae,
        psi=drift,
        edges=edges,
        training_fractions=training_fractions,
        served_counts=served_counts,
    )


def daily_series(version: ModelVersion, *, days: int = 90) -> list[DayPoint]:
    """Per UTC day over the last ``days`` days: predictions, outcomes, R² that day and cumulative.

    Outcomes are attributed to the day of the prediction they observe, so the cumulative R² at a day
    is the quality of everything the version predicted up to then.
    """
    since = timezone.now() - timedelta(days=days)
    # Predictions and outcomes per day apart: a join would repeat an entry's size once per outcome.
    served = (
        PredictionLog.objects.filter(model_version_id=version.version, created_at__gte=since)
        .annotate(day=TruncDate("created_at"))
        .values("day")
        .annotate(predictions=Sum("size"))
    )
    observed = (
        Outcome.objects.filter(log__model_version_id=version.version, log__created_at__gte=since)
        .annotate(day=TruncDate("log__created_at"))
        .values("day")
        .annotate(**_outcome_sums("observed", _PREDICTED))
    )
    # A missing figure (no outcomes that day, say) reads as 0 from a Counter; NULL sums are left out.
    by_day: defaultdict[date, Counter] = defaultdict(Counter)
    for row in chain(served, observed):
        day = row.pop("day")
        by_day[day].update({key: value for key, value in row.items() if value is not None})

    points = []
    run_n, run_total, run_sq, run_res = 0, 0.0, 0.0, 0.0
    for day in sorted(by_day):
        row = by_day[day]
        n = row["outcomes"]
        run_n += n
        run_total += row["total"]
        run_sq += row["total_sq"]
        run_res += row["ss_res"]
        points.append(
            DayPoint(
                day=day,
                predictions=row["predictions"],
                outcomes=n,
                r2=r2_from_sums(n, row["total"], row["total_sq"], row["ss_res"]),
                r2_cumulative=r2_from_sums(run_n, run_total, run_sq, run_res),
            )
        )
    return points


def monitored_versions(*, limit: int = 5) -> list[ModelVersion]:
    """The active version first, then the newest versions that served: at most ``limit``.

    After a rollback the active version is older than the ones it replaced, so it is picked out
    first rather than left to the "newest" cut.
    """
    served = Exists(PredictionLog.objects.filter(model_version_id=OuterRef("pk")))
    is_active = Q(status=ModelVersion.Status.ACTIVE)
    return list(
        ModelVersion.objects.filter(is_active | Q(served))
        .defer("training_sample", "loss_curve")
        # ACTIVE sorts first by the boolean; Q() in order_by needs an expression wrapper.
        .order_by(ExpressionWrapper(is_active, output_field=BooleanField()).desc(), "-version")[:limit]
    )


@dataclass(frozen=True)
class VersionHealth:
    """The alert rules' verdict on one version (what ``check_model`` exits non-zero on)."""

    quality: VersionQuality
    problems: list[str]  # alerts: live R² not above the threshold, drift above the alert level
    not_judged: list[str]  # figures with too little data to judge (not an alert)

    @property
    def ok(self) -> bool:
        return not self.problems


def _fmt(value: float | None, digits: int = 4) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


NOT_ENOUGH_DATA = "not enough data"


def drift_judged(quality: VersionQuality, *, min_predictions: int | None = None) -> bool:
    """Whether ``quality`` has served enough predictions to read drift from (``PREDICTOR_MONITOR_MIN_PREDICTIONS``).

    The one rule for the API, the monitoring page and ``check_model``: a PSI of a handful of BMIs
    (one prediction gives PSI 8 or so) is noise, not drift.
    """
    min_predictions = settings.PREDICTOR_MONITOR_MIN_PREDICTIONS if min_predictions is None else min_predictions
    return quality.psi is not None and quality.n_predictions >= min_predictions


def judged_psi(quality: VersionQuality) -> float | None:
    """The drift PSI to show, or None below the minimum count (:func:`drift_judged`)."""
    return quality.psi if drift_judged(quality) else None


def drift_reading(quality: VersionQuality) -> str:
    """stable / watch / drift, "no data" without predictions, "not enough data" below the minimum."""
    if quality.psi is not None and not drift_judged(quality):
        return NOT_ENOUGH_DATA
    return quality.psi_reading


def version_health(
    version: ModelVersion,
    *,
    quality: VersionQuality | None = None,
    threshold: float | None = None,
    min_outcomes: int | None = None,
    min_predictions: int | None = None,
    max_psi: float | None = None,
) -> VersionHealth:
    """Judge ``version`` by the alert rules; each limit defaults to its setting.

    Live R² must exceed ``threshold`` (default ``PREDICTOR_PROMOTION_THRESHOLD``, the promotion gate)
    once there are ``min_outcomes`` outcomes; drift PSI must not exceed ``max_psi`` once
    ``min_predictions`` predictions were served. Fewer are noise, not evidence, and are not judged.
    Pass ``quality`` when it is already computed, to save its queries.
    """
    threshold = settings.PREDICTOR_PROMOTION_THRESHOLD if threshold is None else float(threshold)
    min_outcomes = settings.PREDICTOR_MONITOR_MIN_OUTCOMES if min_outcomes is None else min_outcomes
    min_predictions = settings.PREDICTOR_MONITOR_MIN_PREDICTIONS if min_predictions is None else min_predictions
    max_psi = settings.PREDICTOR_MONITOR_PSI_ALERT if max_psi is None else max_psi
    quality = quality if quality is not None else version_quality(version)

    problems, not_judged = [], []
    if quality.n_outcomes < min_outcomes:
        not_judged.append(f"Live R² not judged: {quality.n_outcomes} outcomes, at least {min_outcomes} needed.")
    elif quality.r2 is None or not quality.r2 > threshold:
        problems.append(f"live R² {_fmt(quality.r2)} is not above the threshold {threshold:g}")
    if not drift_judged(quality, min_predictions=min_predictions):
        not_judged.append(f"Drift not judged: {quality.n_predictions} predictions, at least {min_predictions} needed.")
    elif quality.psi is not None and quality.psi > max_psi:
        problems.append(f"BMI drift PSI {quality.psi:.4f} exceeds {max_psi:g}")
    return VersionHealth(quality=quality, problems=problems, not_judged=not_judged)
