"""Writes to the prediction log: record observed outcomes (one, or many from a CSV file), prune.

An outcome observes one prediction: item ``position`` (from 0) of a log entry, 0 for a single
prediction. The API views and the ``import_outcomes`` command call these and repeat none of the
rules. The one-outcome-per-prediction rule is the database's (``(log, position)`` is unique); the
checks here only turn a violation into a clear message before the insert is tried. That a
position lies within its entry the database cannot check: the services do, with the entry's row
locked.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from predictor.ml.data import parse_csv_integer, parse_csv_number
from predictor.ml.ranges import OutOfRange, check_range
from predictor.predictions.models import Outcome, PredictionLog
from predictor.registry.services import user_or_none

# A CSV file's columns, in any order; ``position`` may be left out when every row is a single prediction.
IMPORT_COLUMNS = ("prediction_id", "position", "observed")
_REQUIRED_COLUMNS = ("prediction_id", "observed")
_EXPECTED_HEADER = "'prediction_id,observed' or 'prediction_id,position,observed'"
# Lookups of ids in the file go to the database in chunks of this size (bounded query size).
_LOOKUP_CHUNK = 10_000


class OutcomeError(Exception):
    """An outcome that was refused; the message says why, for a person to read."""


class PredictionNotFound(OutcomeError):
    pass


class OutcomeExists(OutcomeError):
    pass


class InvalidOutcome(OutcomeError, ValueError):
    """A value or position that cannot be recorded; ``field`` names the input at fault."""

    def __init__(self, message: str, *, field: str = "observed"):
        super().__init__(message)
        self.field = field


@dataclass
class ImportReport:
    imported: int


class OutcomeImportError(OutcomeError):
    """The import wrote nothing; ``errors`` lists every bad row ("Row N: ...")."""

    def __init__(self, errors: list[str]):
        self.errors = errors
        super().__init__(f"{len(errors)} bad row(s); nothing was imported.")


def observed_validate(value) -> float:
    """The observed progression as a float, or :class:`InvalidOutcome` saying why not."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidOutcome(f"{value!r} is not a number.")
    try:
        return check_range(value, low=settings.PREDICTOR_OUTCOME_MIN, high=settings.PREDICTOR_OUTCOME_MAX)
    except OutOfRange as exc:
        raise InvalidOutcome(str(exc)) from None


def _position_problem(prediction_id: int, size: int, position: int | None) -> str | None:
    """Why ``position`` does not name a prediction of an entry of ``size`` (None when it does)."""
    if position is None:
        if size == 1:
            return None
        return (
            f"prediction {prediction_id} is a batch of {size}: give the position (0 to {size - 1}) of the one observed"
        )
    if not 0 <= position < size:
        if size == 1:
            return f"prediction {prediction_id} is a single prediction: its only position is 0"
        return f"prediction {prediction_id} is a batch of {size}: its positions are 0 to {size - 1}"
    return None


def outcome_record(
    *, prediction_id: int, observed, position: int | None = None, user=None, source: str = "api"
) -> Outcome:
    """Record the progression observed for prediction ``position`` of log entry ``prediction_id``.

    ``position`` may be left out for a single prediction (an entry of size 1).
    """
    value = observed_validate(observed)
    if not 1 <= prediction_id <= PredictionLog.ID_MAX:
        raise PredictionNotFound(f"Prediction {prediction_id} does not exist.")
    recorded_by = user_or_none(user)
    with transaction.atomic():
        # The lock keeps the entry (and so the size checked) until the outcome is committed: a
        # prune_predictions running at the same time waits instead of deleting it in between.
        size = (
            PredictionLog.objects.select_for_update(no_key=True)
            .filter(pk=prediction_id)
            .values_list("size", flat=True)
            .first()
        )
        if size is None:
            raise PredictionNotFound(f"Prediction {prediction_id} does not exist.")
        problem = _position_problem(prediction_id, size, position)
        if problem is not None:
            raise InvalidOutcome(problem[0].upper() + problem[1:] + ".", field="position")
        position = position or 0
        try:
            # Two clients may record the same prediction at once; the unique constraint makes the loser fail here.
            with transaction.atomic():
                return Outcome.objects.create(
                    log_id=prediction_id, position=position, observed=value, recorded_by=recorded_by, source=source
                )
        except IntegrityError:
            raise OutcomeExists(
                f"{_describe(prediction_id, position, size).capitalize()} already has an observed outcome."
            ) from None


def _describe(prediction_id: int, position: int, size: int) -> str:
    return f"prediction {prediction_id}" if size == 1 else f"prediction {position} of batch {prediction_id}"


def outcomes_import(*, source, user=None) -> ImportReport:
    """Import outcomes from CSV text or a file object: all or nothing.

    The header is ``prediction_id,observed``, with a ``position`` column (from 0) for batch items.
    Every row is checked first (values well-formed, prediction known, position within its entry,
    not repeated in the file, no outcome recorded yet) and every bad row is reported in one
    :class:`OutcomeImportError`. Only a clean file is written, in one transaction with bulk inserts.
    """
    text = source.read() if hasattr(source, "read") else source
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise OutcomeImportError([f"The file is not UTF-8 text (byte {exc.start})."]) from None
    rows, errors = _parse_import(text)
    try:
        with transaction.atomic():
            outcomes = _checked_outcomes(rows, errors, recorded_by=user_or_none(user))
            if errors:
                raise OutcomeImportError([message for _, message in sorted(errors)])
            try:
                with transaction.atomic():
                    Outcome.objects.bulk_create(outcomes, batch_size=5_000)
            except IntegrityError:
                raise OutcomeImportError(
                    ["Another client recorded outcomes for some of these predictions during the import; run it again."]
                ) from None
    except IntegrityError:
        # PostgreSQL checks the (deferred) foreign keys at COMMIT, outside the inner handler. The
        # row locks make this unreachable for prune_predictions; it stays as a clear message for
        # anything else that deletes predictions.
        raise OutcomeImportError(
            ["A prediction in the file was deleted while the import ran (prune_predictions?); run it again."]
        ) from None
    return ImportReport(imported=len(outcomes))


def _checked_outcomes(rows, errors, *, recorded_by) -> list[Outcome]:
    """The outcomes of the parsed ``rows``; what the database's state refuses is added to ``errors``."""
    ids = sorted({prediction_id for _, (prediction_id, _), _ in rows})
    # FOR NO KEY UPDATE on the entries: a concurrent prune_predictions (which takes FOR UPDATE
    # before deleting) waits for this import to commit, and the sizes hold until then.
    sizes = _locked_sizes(ids)
    # A concurrent insert of the same outcome is caught by the unique (log, position) at the insert.
    recorded = _recorded(ids)
    outcomes = []
    resolved: dict[tuple[int, int], int] = {}
    for row_number, (prediction_id, position), observed in rows:
        size = sizes.get(prediction_id)
        if size is None:
            errors.append((row_number, f"Row {row_number}: prediction {prediction_id} does not exist."))
            continue
        problem = _position_problem(prediction_id, size, position)
        if problem is not None:
            errors.append((row_number, f"Row {row_number}: {problem}."))
            continue
        position = position or 0
        first = resolved.setdefault((prediction_id, position), row_number)
        if first != row_number:
            errors.append(
                (row_number, f"Row {row_number}: prediction {prediction_id} is repeated (first on row {first}).")
            )
            continue
        if (prediction_id, position) in recorded:
            described = _describe(prediction_id, position, size)
            errors.append((row_number, f"Row {row_number}: {described} already has an observed outcome."))
            continue
        outcomes.append(
            Outcome(
                log_id=prediction_id, position=position, observed=observed, recorded_by=recorded_by, source="import"
            )
        )
    return outcomes


def _parse_import(text: str) -> tuple[list[tuple], list[tuple[int, str]]]:
    """(good rows as (row number, (prediction id, position or None), observed), errors as (row number, message))."""
    reader = csv.reader(io.StringIO(text))
    try:
        header = next(reader)
    except StopIteration:
        return [], [(1, f"Row 1: the file is empty; expected a header {_EXPECTED_HEADER}.")]
    except csv.Error as exc:
        return [], [(1, f"Row 1: not valid CSV ({exc}).")]
    names = [h.strip().lstrip("\ufeff").lower() for h in header]
    repeated = [c for c in IMPORT_COLUMNS if names.count(c) > 1]
    if repeated:
        return [], [(1, f"Row 1 (header): column {repeated[0]!r} appears more than once.")]
    missing = [c for c in _REQUIRED_COLUMNS if c not in names]
    if missing:
        return [], [
            (1, f"Row 1 (header): missing column {', '.join(map(repr, missing))}; expected {_EXPECTED_HEADER}.")
        ]
    at = {column: names.index(column) for column in IMPORT_COLUMNS if column in names}
    rows: list[tuple] = []
    errors: list[tuple[int, str]] = []
    first_seen: dict = {}
    row_number = 1
    try:
        for row_number, row in enumerate(reader, start=2):
            if not row or all(not cell.strip() for cell in row):
                continue  # blank lines (often a trailing newline) carry no data
            cells = {column: row[i].strip() if i < len(row) else "" for column, i in at.items()}
            key, problems = _parse_key(cells)
            raw_observed = cells["observed"]
            try:
                observed = observed_validate(parse_csv_number(raw_observed))
            except InvalidOutcome as exc:
                problems.append(f"column 'observed': {str(exc).rstrip('.')}")
            except ValueError:
                problems.append(f"column 'observed': {raw_observed[:40]!r} is not a number")
            if key is not None:
                # As written; a single prediction given once with position 0 and once without is
                # caught when the positions are resolved against the log (_checked_outcomes).
                if key in first_seen:
                    problems.append(f"{_key_text(key)} is repeated (first on row {first_seen[key]})")
                else:
                    first_seen[key] = row_number
            if problems:
                errors.append((row_number, f"Row {row_number}: {'; '.join(problems)}."))
            else:
                rows.append((row_number, key, observed))
    except csv.Error as exc:
        errors.append((row_number + 1, f"Row {row_number + 1}: not valid CSV ({exc})."))
    if not rows and not errors:
        errors.append((1, "The file has a header but no data rows."))
    return rows, errors


def _parse_key(cells: dict[str, str]) -> tuple[tuple[int, int | None] | None, list[str]]:
    problems = []
    raw_id = cells["prediction_id"]
    try:
        prediction_id = parse_csv_integer(raw_id)
    except ValueError:
        prediction_id = None
    if prediction_id is None or not 1 <= prediction_id <= PredictionLog.ID_MAX:
        problems.append(f"column 'prediction_id': {raw_id[:40]!r} is not a prediction id (a positive integer)")
    position = None
    raw_position = cells.get("position", "")
    if raw_position:
        try:
            position = parse_csv_integer(raw_position)
        except ValueError:
            position = -1
        if not 0 <= position <= 2**31 - 1:
            problems.append(f"column 'position': {raw_position[:40]!r} is not a position (an integer from 0)")
    return (None, problems) if problems else ((prediction_id, position), [])


def _key_text(key: tuple[int, int | None]) -> str:
    prediction_id, position = key
    return f"prediction {prediction_id}" if position is None else f"prediction {prediction_id} position {position}"


def _locked_sizes(ids: list[int]) -> dict[int, int]:
    """The size of each known entry, its row locked FOR NO KEY UPDATE until the transaction ends."""
    sizes: dict[int, int] = {}
    for start in range(0, len(ids), _LOOKUP_CHUNK):
        chunk = ids[start : start + _LOOKUP_CHUNK]
        # One lock order (by id) for every import and prune: no deadlocks.
        queryset = PredictionLog.objects.filter(pk__in=chunk).select_for_update(no_key=True).order_by("pk")
        sizes.update(queryset.values_list("pk", "size"))
    return sizes


def _recorded(ids: list[int]) -> set[tuple[int, int]]:
    recorded: set[tuple[int, int]] = set()
    for start in range(0, len(ids), _LOOKUP_CHUNK):
        chunk = ids[start : start + _LOOKUP_CHUNK]
        recorded.update(Outcome.objects.filter(log_id__in=chunk).values_list("log_id", "position"))
    return recorded


def predictions_prune(*, older_than_days: int, chunk_size: int = 1_000) -> int:
    """Delete log entries (and their outcomes) older than ``older_than_days``; returns how many.

    The monitoring rollups keep what they add up to: the log is folded into them first, and only
    entries at or below the rollups' watermark whose outcomes are all folded too are deleted (one
    whose outcome arrived after the fold stays until the next prune). Deletes in chunks of ids so a
    large purge never holds one huge transaction or lock: up to ``chunk_size`` entries per
    transaction (a batch entry holds up to 10,000 predictions, 160 kB of arrays, so a chunk is at
    most about 160 MB of rows to delete).
    """
    # Imported here: the rollups read this package's models, and only pruning needs them.
    from predictor.monitoring import rollups

    if older_than_days < 1:
        raise ValueError(f"older_than_days must be at least 1, got {older_than_days}.")
    try:
        cutoff = timezone.now() - timedelta(days=older_than_days)
    except OverflowError:
        # Older than the calendar goes (year 1): nothing is, so nothing is deleted.
        return 0
    rollups.rollups_fold()
    # Read once: a fold running meanwhile only moves it up, and an older mark deletes less, never more.
    mark = rollups.watermark()
    deleted, after = 0, 0
    # Bounded: every pass moves ``after`` past the ids it looked at.
    while True:
        ids = list(
            PredictionLog.objects.filter(created_at__lt=cutoff, pk__gt=after, pk__lte=mark.log_id)
            .order_by("pk")
            .values_list("pk", flat=True)[:chunk_size]
        )
        if not ids:
            return deleted
        after = ids[-1]
        with transaction.atomic():
            # Lock the rows first: an outcome being recorded or imported for one of them commits
            # before its outcomes are deleted here, or waits and then finds no prediction.
            locked = PredictionLog.objects.filter(pk__in=ids).select_for_update().order_by("pk")
            ids = set(locked.values_list("pk", flat=True))
            # A statement of its own, after the locks: it sees an outcome committed while we waited.
            ids -= set(Outcome.objects.filter(log_id__in=ids, pk__gt=mark.outcome_id).values_list("log_id", flat=True))
            Outcome.objects.filter(log_id__in=ids).delete()
            # only("pk"): the delete collects the rows as objects, and must not load their arrays.
            _, per_model = PredictionLog.objects.filter(pk__in=ids).only("pk").delete()
        deleted += per_model.get(PredictionLog._meta.label, 0)
