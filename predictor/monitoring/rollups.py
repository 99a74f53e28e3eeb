"""Folding the prediction log into daily rollups, from a watermark, without touching the serving path.

Every monitoring figure is additive (counts, per-bin counts, sums of outcomes, of their squares, of
errors, counts inside the interval), so a version's figures are the sum of its days'
(:class:`~predictor.monitoring.models.DailyRollup`) plus what is not folded yet: the log entries
and outcomes whose id is above the :class:`~predictor.monitoring.models.RollupWatermark`, read
from the log by the same SQL (:data:`SERVED_SQL`, :data:`OBSERVED_SQL`). Outcomes are folded by
their own id, whenever they arrive and in whatever order, onto the day of the prediction they
observe.

Nothing is added to a prediction's request: no counter row is updated per prediction. The fold
runs apart (``manage.py rollup_monitoring``, scheduled; and before ``prune_predictions`` deletes).

**Why no row is missed.** Ids are drawn from a sequence before the row commits, so a row with a
lower id can commit after one with a higher id: "the highest id I can see" is not a safe
watermark. The fold reads the sequences' last drawn ids first, then the transactions that may
still write an entry or an outcome, and waits for those to end (:func:`_settled_ids`). Every row
at or below the ids read was drawn by a transaction that was then already holding one of these
locks (every writer takes them before it draws its id: an INSERT or COPY locks its table when the
statement is parsed; the batch path draws its id in the statement that locks its version's row
``FOR SHARE``), so once they have ended, the rows up to those ids are committed or never will be.
Only then does the fold read them. It waits without blocking anyone: a writer that starts later
draws a higher id.

**Why no row is counted twice.** A fold adds its rows to the rollups and moves the watermark in
one transaction, holding the watermark row's lock (``FOR UPDATE``) throughout: a second fold waits
and starts from the committed watermark. A reader reads watermark, rollups and tail in one SQL
statement, hence one snapshot: it sees a fold entirely or not at all.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import date

from django.db import connection, transaction
from django.utils import timezone

from predictor.monitoring.models import DailyRollup, RollupWatermark
from predictor.predictions.models import Outcome, PredictionLog
from predictor.registry.models import ModelVersion

__all__ = ["FoldReport", "RollupError", "Sums", "rollups_fold", "watermark"]

# Outcomes are shifted by this before they are squared. Squaring a tiny outcome (1e-200, a valid
# progression of 0.0…) fails on PostgreSQL, whose float8 multiplication raises "underflow" rather
# than round to 0; doubles near 150 are 3e-14 apart, so a shifted outcome is 0 or far from
# underflowing. Near the diabetes progressions' mean, it also keeps the sums' rounding small.
OUTCOME_SHIFT = 150.0

_LOG = PredictionLog._meta.db_table
_OUTCOME = Outcome._meta.db_table
_VERSION = ModelVersion._meta.db_table
_WATERMARK = RollupWatermark._meta.db_table

# The day a prediction counts on: its UTC date, whatever the session's time zone.
_DAY = "(log.created_at AT TIME ZONE 'UTC')::date"

# Predictions per (version, day, training bin). width_bucket(x, inner) counts the inner edges <= x,
# which is training's np.searchsorted(inner, x, "right"): bins [inner[i-1], inner[i]), the outer
# two open-ended so that out-of-range BMIs still count. The inner edges are read from the version's
# training histogram in SQL, once per version (MATERIALIZED: not once per row), so one statement
# folds every version's entries.
SERVED_SQL = f"""
    WITH edges AS MATERIALIZED (
        SELECT mv.version, ARRAY(
            SELECT e.value::float8
            FROM jsonb_array_elements_text(mv.training_bmi_histogram -> 'edges') WITH ORDINALITY AS e(value, i)
            WHERE e.i > 1 AND e.i < jsonb_array_length(mv.training_bmi_histogram -> 'edges')
            ORDER BY e.i
        ) AS inner_edges
        FROM {_VERSION} AS mv
    )
    SELECT log.model_version_id, {_DAY} AS day, width_bucket(item.bmi, edges.inner_edges) AS bin, count(*)
    FROM {_LOG} AS log
    JOIN edges ON edges.version = log.model_version_id
    CROSS JOIN LATERAL unnest(log.bmi) AS item(bmi)
    WHERE {{where}}
    GROUP BY 1, 2, 3
"""  # noqa: S608 - table names from the models; values are parameters

# Outcome sums per (version, day of the prediction observed). Inside the interval means
# |observed − predicted| <= t · s · √(1 + 1/n + (bmi − x̄)² / Sxx) with the version's stored figures
# (predictor/ml/intervals.py), bmi and predicted being item ``position`` of the outcome's entry.
OBSERVED_SQL = f"""
    SELECT log.model_version_id, {_DAY} AS day, count(*),
        sum(o.observed - %(shift)s), sum((o.observed - %(shift)s) * (o.observed - %(shift)s)),
        sum(item.predicted), sum((o.observed - item.predicted) * (o.observed - item.predicted)),
        sum(abs(o.observed - item.predicted)),
        count(*) FILTER (WHERE abs(o.observed - item.predicted) <= mv.interval_t * mv.residual_std
            * sqrt(1.0 + 1.0 / mv.n_train + (item.bmi - mv.bmi_mean) * (item.bmi - mv.bmi_mean) / mv.bmi_sxx))
    FROM {_OUTCOME} AS o
    JOIN {_LOG} AS log ON log.id = o.log_id
    JOIN {_VERSION} AS mv ON mv.version = log.model_version_id
    CROSS JOIN LATERAL (
        SELECT log.predictions[o.position + 1] AS predicted, log.bmi[o.position + 1] AS bmi
    ) AS item
    WHERE {{where}}
    GROUP BY 1, 2
"""  # noqa: S608

# How many log entries (or outcomes) one fold transaction takes at most: a first fold over a long
# log commits as it goes rather than in one transaction of hours.
CHUNK = 500_000


class RollupError(Exception):
    """A fold could not run (writers did not finish in time)."""


@dataclass
class Sums:
    """The additive figures of some predictions: one day's, a version's, a fold's."""

    predictions: int = 0
    bin_counts: list[int] = field(default_factory=list)
    outcomes: int = 0
    observed_sum: float = 0.0  # Σ (observed − OUTCOME_SHIFT)
    observed_sq_sum: float = 0.0  # Σ (observed − OUTCOME_SHIFT)²
    predicted_sum: float = 0.0
    sq_error_sum: float = 0.0
    abs_error_sum: float = 0.0
    n_inside: int = 0

    OUTCOME_FIELDS = (
        "outcomes",
        "observed_sum",
        "observed_sq_sum",
        "predicted_sum",
        "sq_error_sum",
        "abs_error_sum",
        "n_inside",
    )

    def add_served(self, bin_index: int, count: int) -> None:
        if bin_index >= len(self.bin_counts):
            self.bin_counts.extend([0] * (bin_index + 1 - len(self.bin_counts)))
        self.bin_counts[bin_index] += count
        self.predictions += count

    def add_observed(self, values) -> None:
        """Add one row of :data:`OBSERVED_SQL`'s sums (in :attr:`OUTCOME_FIELDS` order)."""
        for name, value in zip(self.OUTCOME_FIELDS, values, strict=True):
            setattr(self, name, getattr(self, name) + value)

    def add(self, other: Sums) -> None:
        self.predictions += other.predictions
        for index, count in enumerate(other.bin_counts):
            if index >= len(self.bin_counts):
                self.bin_counts.append(0)
            self.bin_counts[index] += count
        self.add_observed([getattr(other, name) for name in self.OUTCOME_FIELDS])

    @classmethod
    def of_rollup(cls, row: DailyRollup) -> Sums:
        return cls(
            predictions=row.predictions,
            bin_counts=list(row.bin_counts),
            **{name: getattr(row, name) for name in cls.OUTCOME_FIELDS},
        )


def add_query_rows(sums_by_key: dict, served_rows, observed_rows) -> None:
    """Add the rows of :data:`SERVED_SQL` and :data:`OBSERVED_SQL` to ``sums_by_key[(version, day)]``."""
    for version, day, bin_index, count in served_rows:
        sums_by_key.setdefault((version, day), Sums()).add_served(bin_index, count)
    for version, day, *values in observed_rows:
        sums_by_key.setdefault((version, day), Sums()).add_observed(values)


@dataclass(frozen=True)
class FoldReport:
    entries: int  # log entries folded by this call
    outcomes: int  # outcomes folded by this call
    log_id: int  # the watermark afterwards
    outcome_id: int
    seconds: float


def watermark() -> RollupWatermark:
    """The committed watermark (zeros before the first fold)."""
    return RollupWatermark.objects.filter(pk=1).first() or RollupWatermark(log_id=0, outcome_id=0)


def _settled_ids(*, wait_seconds: float) -> tuple[int, int]:
    """The highest log and outcome ids below which every row is committed or never will be.

    See the module docstring: sequences first, then the writers that may hold a lower id, then
    wait (polling, bounded) until those transactions have ended.
    """
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_sequence_last_value(pg_get_serial_sequence(%s, 'id')), "
            "pg_sequence_last_value(pg_get_serial_sequence(%s, 'id'))",
            [_LOG, _OUTCOME],
        )
        log_hi, outcome_hi = (value or 0 for value in cursor.fetchone())
        # Writers of entries and outcomes (INSERT, COPY, DELETE: RowExclusiveLock), and the batch
        # path, which draws its id while holding its version's row FOR SHARE (RowShareLock).
        # Our own transaction is left out: its rows are visible to us.
        cursor.execute(
            "SELECT DISTINCT virtualtransaction FROM pg_locks "
            "WHERE locktype = 'relation' AND granted AND pid IS DISTINCT FROM pg_backend_pid() "
            "AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) AND ("
            "  (relation IN (%s::regclass, %s::regclass) AND mode = 'RowExclusiveLock')"
            "  OR (relation = %s::regclass AND mode = 'RowShareLock'))",
            [_LOG, _OUTCOME, _VERSION],
        )
        writers = [row[0] for row in cursor.fetchall()]
        deadline = time.monotonic() + wait_seconds
        delay = 0.002
        while writers:
            cursor.execute(
                "SELECT array_agg(virtualxid) FROM pg_locks WHERE locktype = 'virtualxid' AND virtualxid = ANY(%s)",
                [writers],
            )
            writers = cursor.fetchone()[0] or []
            if not writers:
                break
            if time.monotonic() > deadline:
                raise RollupError(
                    f"{len(writers)} transaction(s) writing the prediction log or outcomes did not finish within "
                    f"{wait_seconds:g} s (long-running or idle in transaction?); nothing was folded. Run it again."
                )
            time.sleep(delay)
            delay = min(delay * 2, 0.1)
    return log_hi, outcome_hi


def _fold_chunk(*, log_hi: int, outcome_hi: int, chunk: int) -> tuple[int, int, bool]:
    """Fold up to ``chunk`` entries and outcomes above the watermark (and at most the settled ids)
    in one transaction; returns (entries, outcomes, done)."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"INSERT INTO {_WATERMARK} (id, log_id, outcome_id) VALUES (1, 0, 0) ON CONFLICT DO NOTHING")  # noqa: S608
        # Another fold waits here, then starts from what this one committed.
        mark = RollupWatermark.objects.select_for_update().get(pk=1)
        log_to = min(log_hi, mark.log_id + chunk)
        outcome_to = min(outcome_hi, mark.outcome_id + chunk)
        served_rows, observed_rows = [], []
        if log_to > mark.log_id:
            cursor.execute(
                SERVED_SQL.format(where="log.id > %(low)s AND log.id <= %(high)s"),
                {"low": mark.log_id, "high": log_to},
            )
            served_rows = cursor.fetchall()
        if outcome_to > mark.outcome_id:
            cursor.execute(
                OBSERVED_SQL.format(where="o.id > %(low)s AND o.id <= %(high)s"),
                {"low": mark.outcome_id, "high": outcome_to, "shift": OUTCOME_SHIFT},
            )
            observed_rows = cursor.fetchall()
        sums_by_key: dict[tuple[int, date], Sums] = {}
        add_query_rows(sums_by_key, served_rows, observed_rows)
        _add_to_rollups(sums_by_key)
        entries = outcomes = 0
        if log_to > mark.log_id:
            entries = PredictionLog.objects.filter(pk__gt=mark.log_id, pk__lte=log_to).count()
        if outcome_to > mark.outcome_id:
            outcomes = Outcome.objects.filter(pk__gt=mark.outcome_id, pk__lte=outcome_to).count()
        mark.log_id = max(mark.log_id, log_to)
        mark.outcome_id = max(mark.outcome_id, outcome_to)
        mark.folded_at = timezone.now()
        mark.save()
    return entries, outcomes, log_to >= log_hi and outcome_to >= outcome_hi


def _add_to_rollups(sums_by_key: dict[tuple[int, date], Sums]) -> None:
    """Add ``sums_by_key`` to the day rows (the watermark lock is held: no other fold writes them)."""
    if not sums_by_key:
        return
    versions = {version for version, _ in sums_by_key}
    days = {day for _, day in sums_by_key}
    existing = {
        (row.model_version_id, row.day): row
        for row in DailyRollup.objects.filter(model_version_id__in=versions, day__in=days)
    }
    rows = []
    for (version, day), sums in sums_by_key.items():
        row = existing.get((version, day))
        total = Sums.of_rollup(row) if row is not None else Sums()
        total.add(sums)
        rows.append(
            DailyRollup(
                model_version_id=version,
                day=day,
                predictions=total.predictions,
                bin_counts=total.bin_counts,
                **{name: getattr(total, name) for name in Sums.OUTCOME_FIELDS},
            )
        )
    DailyRollup.objects.bulk_create(
        rows,
        update_conflicts=True,
        unique_fields=["model_version", "day"],
        update_fields=["predictions", "bin_counts", *Sums.OUTCOME_FIELDS],
    )


def rollups_fold(*, wait_seconds: float = 30.0, chunk: int = CHUNK) -> FoldReport:
    """Fold every settled log entry and outcome above the watermark into the daily rollups.

    Safe to run at any time and from several processes at once (they take turns); each call folds
    what was committed before it started, in transactions of at most ``chunk`` entries and outcomes.
    """
    if chunk < 1:
        raise ValueError(f"chunk must be at least 1, got {chunk}.")
    started = time.perf_counter()
    log_hi, outcome_hi = _settled_ids(wait_seconds=wait_seconds)
    entries = outcomes = 0
    # Bounded: each pass moves a watermark by up to ``chunk`` towards ids fixed above.
    for _ in range(max(log_hi, outcome_hi) // chunk + 2):
        folded_entries, folded_outcomes, done = _fold_chunk(log_hi=log_hi, outcome_hi=outcome_hi, chunk=chunk)
        entries += folded_entries
        outcomes += folded_outcomes
        if done:
            break
    mark = watermark()
    return FoldReport(
        entries=entries,
        outcomes=outcomes,
        log_id=mark.log_id,
        outcome_id=mark.outcome_id,
        seconds=time.perf_counter() - started,
    )
