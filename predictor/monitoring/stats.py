"""Live quality, interval coverage and input drift per model version, from the daily rollups.

Every figure is a sum, so a version's figures are its days' rollups
(:class:`~predictor.monitoring.models.DailyRollup`) plus the tail not folded into them yet, read
from the log by the same SQL as the fold (``predictor/monitoring/rollups.py``), all in one
statement and so one snapshot. The cost grows with the version's days and the tail's rows, not
with the log: see docs/monitoring.md for measured times.

Live R² uses sums, not a second pass over the rows, of the outcomes shifted by a constant
``c`` (``OUTCOME_SHIFT``; a shift leaves the spread unchanged)::

    SS_res = Σ (observed - predicted)²
    SS_tot = Σ (observed - c)² - (Σ (observed - c))² / n
    R²     = 1 - SS_res / SS_tot

Live coverage is the share of outcomes inside their prediction's interval (``n_inside / n``).

Drift is the population stability index of served BMIs against the version's training BMIs,
binned on the training deciles (``ModelVersion.training_bmi_histogram``)::

    PSI = Σ_bins (served_share - training_share) · ln(served_share / training_share)

read as < 0.1 stable, 0.1 to 0.25 watch, > 0.25 drift.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date, timedelta

from django.conf import settings
from django.db import connection
from django.db.models import BooleanField, Exists, ExpressionWrapper, OuterRef, Q, QuerySet
from django.utils import timezone

from predictor.monitoring.coverage import coverage_verdict
from predictor.monitoring.models import DailyRollup, RollupWatermark
from predictor.monitoring.rollups import OBSERVED_SQL, OUTCOME_SHIFT, SERVED_SQL, Sums, add_query_rows, watermark
from predictor.predictions.models import PredictionLog
from predictor.registry.models import ModelVersion

# An empty bin would make ln(share) infinite; both shares are floored at this before the PSI sum.
# 1e-4 is one row in ten thousand: small enough not to hide a real shift, large enough that one
# empty bin adds at most about 0.1 * ln(0.1/1e-4) ≈ 0.7 rather than infinity.
PSI_EPSILON = 1e-4
PSI_WATCH = 0.1
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
    n_inside: int = 0  # outcomes inside their prediction's interval
    interval_level: float | None = None  # the version's nominal coverage, e.g. 0.95

    @property
    def coverage(self) -> float | None:
        """Share of outcomes inside their prediction interval; None without outcomes."""
        return self.n_inside / self.n_outcomes if self.n_outcomes else None

    @property
    def served_fractions(self) -> list[float]:
        total = sum(self.served_counts)
        return [c / total for c in self.served_counts] if total else [0.0 for _ in self.served_counts]

    @property
    def psi_reading(self) -> str:
        return psi_reading(self.psi)

    def as_dict(self) -> dict:
        """The API's figures; below the minimum count a PSI is noise, so none is given (the same
        rule as the page and check_model: :func:`judged_psi`)."""
        return {
            "version": self.version,
            "predictions": self.n_predictions,
            "outcomes": self.n_outcomes,
            "live_r2": self.r2,
            "live_mae": self.mae,
            "drift_psi": judged_psi(self),
            "drift_reading": drift_reading(self),
            "live_coverage": self.coverage,
            "interval_level": self.interval_level,
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
    r2_cumulative: float | None  # on all outcomes of the version's predictions up to and including that day


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


def _r2(sums: Sums) -> float | None:
    return r2_from_sums(sums.outcomes, sums.observed_sum, sums.observed_sq_sum, sums.sq_error_sum)


def psi(served_fractions, training_fractions, *, epsilon: float = PSI_EPSILON) -> float:
    """Population stability index of two distributions over the same bins (see module docstring)."""
    value = 0.0
    for actual, expected in zip(served_fractions, training_fractions, strict=True):
        actual = max(actual, epsilon)
        expected = max(expected, epsilon)
        value += (actual - expected) * math.log(actual / expected)
    return value


# Rollups, then the tail above the watermark, in one statement. The watermark is given as a
# value, read just before, so that PostgreSQL plans the tail as the few rows it is (by id, through
# the primary keys) rather than guessing from a subquery (which made it hash the whole log and JIT
# compile the plan: 600 ms for nothing). The statement returns the watermark it sees too: if a fold
# committed in between, the rollups are newer than the value given, and the read is done again.
# Columns: kind, day, bin, predictions, bin_counts, the outcome sums.
_OUTCOME_COLUMNS = ", ".join(Sums.OUTCOME_FIELDS)
_DAYS_SQL = f"""
    SELECT 'mark', NULL::date, NULL::integer, log_id, NULL::bigint[], outcome_id,
        NULL::float8, NULL::float8, NULL::float8, NULL::float8, NULL::float8, NULL::bigint
    FROM {RollupWatermark._meta.db_table}
    UNION ALL
    SELECT 'rollup', day, NULL, predictions, bin_counts, {_OUTCOME_COLUMNS}
    FROM {DailyRollup._meta.db_table} WHERE model_version_id = %(version)s
    UNION ALL
    SELECT 'served', s.day, s.bin, s.n, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL
    FROM ({SERVED_SQL.format(where="log.model_version_id = %(version)s AND log.id > %(log_id)s")})
        AS s(version, day, bin, n)
    UNION ALL
    SELECT 'observed', o.day, NULL, NULL, NULL, o.n, o.s1, o.s2, o.s3, o.s4, o.s5, o.s6
    FROM ({OBSERVED_SQL.format(where="o.id > %(outcome_id)s AND log.model_version_id = %(version)s")})
        AS o(version, day, n, s1, s2, s3, s4, s5, s6)
"""  # noqa: S608 - table names from the models; values are parameters
# A fold commits at most every few seconds or so; three reads in a row overtaken by one are unheard of.
_READ_ATTEMPTS = 5


def version_days(version: ModelVersion) -> dict[date, Sums]:
    """The additive figures of each UTC day ``version`` served: rollups plus tail (one query)."""
    mark = watermark()
    with connection.cursor() as cursor:
        for _ in range(_READ_ATTEMPTS):
            params = {"version": version.version, "shift": OUTCOME_SHIFT, "log_id": mark.log_id}
            cursor.execute(_DAYS_SQL, {**params, "outcome_id": mark.outcome_id})
            rows = cursor.fetchall()
            seen = next(((row[3], row[5]) for row in rows if row[0] == "mark"), (0, 0))
            if seen == (mark.log_id, mark.outcome_id):
                break
            mark = RollupWatermark(log_id=seen[0], outcome_id=seen[1])
        else:
            raise RuntimeError("The monitoring rollups kept changing while being read; try again.")
    days: dict[date, Sums] = {}
    served, observed = [], []
    for kind, day, bin_index, predictions, bin_counts, *outcome_values in rows:
        if kind == "rollup":
            days.setdefault(day, Sums()).add(Sums(predictions, list(bin_counts), *outcome_values))
        elif kind == "served":
            served.append((version.version, day, bin_index, predictions))
        elif kind == "observed":
            observed.append((version.version, day, *outcome_values))
    by_key = {(version.version, day): sums for day, sums in days.items()}
    add_query_rows(by_key, served, observed)
    return {day: sums for (_, day), sums in by_key.items()}


def _histogram(version: ModelVersion) -> tuple[list[float], list[float]] | None:
    """The training histogram's edges and fractions; None when it cannot be used for PSI."""
    histogram = version.training_bmi_histogram or {}
    edges = [float(e) for e in histogram.get("edges", [])]
    fractions = [float(f) for f in histogram.get("fractions", [])]
    return (edges, fractions) if len(edges) >= 2 and len(fractions) == len(edges) - 1 else None


def quality_from_days(version: ModelVersion, days: dict[date, Sums]) -> VersionQuality:
    total = Sums()
    for sums in days.values():
        total.add(sums)
    histogram = _histogram(version)
    edges, training_fractions, served_counts, drift = [], [], [], None
    if histogram is not None:
        edges, training_fractions = histogram
        served_counts = (total.bin_counts + [0] * len(training_fractions))[: len(training_fractions)]
        if total.predictions:
            drift = psi([c / total.predictions for c in served_counts], training_fractions)
    n = total.outcomes
    return VersionQuality(
        version=version.version,
        n_predictions=total.predictions,
        n_outcomes=n,
        r2=_r2(total),
        mae=total.abs_error_sum / n if n else None,
        psi=drift,
        edges=edges,
        training_fractions=training_fractions,
        served_counts=served_counts,
        n_inside=total.n_inside,
        interval_level=version.interval_level,
    )


def series_from_days(days: dict[date, Sums], *, last_days: int | None = None) -> list[DayPoint]:
    """Per day: predictions, outcomes, R² that day and cumulative over the whole history.

    Outcomes count on the day of the prediction they observe, so the cumulative R² at a day is the
    quality of everything the version predicted up to then. ``last_days`` keeps only the points of
    the last so many days (their cumulative R² still counts everything before).
    """
    since = (timezone.now() - timedelta(days=last_days)).date() if last_days is not None else None
    points, running = [], Sums()
    for day in sorted(days):
        sums = days[day]
        running.add(sums)
        if since is not None and day < since:
            continue
        points.append(
            DayPoint(
                day=day,
                predictions=sums.predictions,
                outcomes=sums.outcomes,
                r2=_r2(sums),
                r2_cumulative=_r2(running),
            )
        )
    return points


def version_report(version: ModelVersion, *, last_days: int | None = None) -> tuple[VersionQuality, list[DayPoint]]:
    """Quality and the daily series of ``version`` from one query."""
    days = version_days(version)
    return quality_from_days(version, days), series_from_days(days, last_days=last_days)


def version_quality(version: ModelVersion) -> VersionQuality:
    """Traffic, live R²/MAE/coverage and PSI of ``version`` (one query)."""
    return quality_from_days(version, version_days(version))


def daily_series(version: ModelVersion, *, last_days: int | None = None) -> list[DayPoint]:
    """The daily series of ``version``'s whole history (or its last ``last_days`` days)."""
    return series_from_days(version_days(version), last_days=last_days)


def monitored_versions() -> QuerySet[ModelVersion]:
    """The active version first, then every version that served, newest first (paginate it).

    A version served if it has rollups (which outlive the raw rows) or entries not folded yet.
    After a rollback the active version is older than the ones it replaced, so it is picked out
    first rather than left to the "newest" order.
    """
    rolled_up = Exists(DailyRollup.objects.filter(model_version_id=OuterRef("pk")))
    logged = Exists(PredictionLog.objects.filter(model_version_id=OuterRef("pk")))
    is_active = Q(status=ModelVersion.Status.ACTIVE)
    return (
        ModelVersion.objects.filter(is_active | Q(rolled_up) | Q(logged))
        .defer("training_sample", "loss_curve")
        # ACTIVE sorts first by the boolean; Q() in order_by needs an expression wrapper.
        .order_by(ExpressionWrapper(is_active, output_field=BooleanField()).desc(), "-version")
    )


@dataclass(frozen=True)
class VersionHealth:
    """The alert rules' verdict on one version (what ``check_model`` exits non-zero on)."""

    quality: VersionQuality
    problems: list[str]  # alerts: live R² not above the threshold, coverage clearly low, drift above the alert level
    not_judged: list[str]  # figures with too little data to judge (not an alert)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def judged_nothing(self) -> bool:
        """Every rule lacked data (live R², live coverage and drift): "not judged yet"."""
        return len(self.not_judged) == 3


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
    coverage_alpha: float | None = None,
) -> VersionHealth:
    """Judge ``version`` by the alert rules; each limit defaults to its setting.

    Live R² must exceed ``threshold`` (default ``PREDICTOR_PROMOTION_THRESHOLD``, the promotion gate)
    once there are ``min_outcomes`` outcomes; drift PSI must not exceed ``max_psi`` once
    ``min_predictions`` predictions were served; live coverage must not be clearly below the
    interval's level (predictor/monitoring/coverage.py, at ``coverage_alpha``, default
    ``PREDICTOR_MONITOR_COVERAGE_ALPHA``) once there are ``min_outcomes`` outcomes. Fewer are
    noise, not evidence, and are not judged.
    Pass ``quality`` when it is already computed, to save its queries.
    """
    threshold = settings.PREDICTOR_PROMOTION_THRESHOLD if threshold is None else float(threshold)
    min_outcomes = settings.PREDICTOR_MONITOR_MIN_OUTCOMES if min_outcomes is None else min_outcomes
    min_predictions = settings.PREDICTOR_MONITOR_MIN_PREDICTIONS if min_predictions is None else min_predictions
    max_psi = settings.PREDICTOR_MONITOR_PSI_ALERT if max_psi is None else max_psi
    coverage_alpha = settings.PREDICTOR_MONITOR_COVERAGE_ALPHA if coverage_alpha is None else coverage_alpha
    quality = quality if quality is not None else version_quality(version)

    problems, not_judged = [], []
    if quality.n_outcomes < min_outcomes:
        not_judged.append(f"Live R² not judged: {quality.n_outcomes} outcomes, at least {min_outcomes} needed.")
    elif quality.r2 is None or not quality.r2 > threshold:
        problems.append(f"live R² {_fmt(quality.r2)} is not above the threshold {threshold:g}")
    calibration = coverage_verdict(quality, min_outcomes=min_outcomes, alpha=coverage_alpha)
    problems += [calibration.problem] if calibration.problem else []
    not_judged += [calibration.not_judged] if calibration.not_judged else []
    if not drift_judged(quality, min_predictions=min_predictions):
        not_judged.append(f"Drift not judged: {quality.n_predictions} predictions, at least {min_predictions} needed.")
    elif quality.psi is not None and quality.psi > max_psi:
        problems.append(f"BMI drift PSI {quality.psi:.4f} exceeds {max_psi:g}")
    return VersionHealth(quality=quality, problems=problems, not_judged=not_judged)
