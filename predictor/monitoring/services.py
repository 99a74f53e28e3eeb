"""Writes of the feedback loop: record one observed outcome, import many from a CSV file.

An outcome observes a single prediction (``Outcome``, keyed by the ``PredictionLog`` row) or one
item of a batch (``BatchOutcome``: the batch and the item's position, from 0). The API views and the
``import_outcomes`` command call these and repeat none of the rules. The one-outcome-per-prediction
rule is the database's (``Outcome.prediction`` is the primary key, ``(batch, position)`` is
unique); the checks here only turn a violation into a clear message before the insert is tried.
That a position lies within its batch the database cannot check: the services do, with the batch
row locked.
"""

from __future__ import annotations

import csv
import io
import math
import uuid
from dataclasses import dataclass

from django.conf import settings
from django.db import IntegrityError, transaction

from predictor.ml.data import parse_csv_integer, parse_csv_number
from predictor.models import BatchOutcome, Outcome, PredictionBatch, PredictionLog
from predictor.services import user_or_none

# The two headers a CSV file may have (columns in any order, one kind of outcome per file).
IMPORT_COLUMNS = ("prediction_id", "observed")
BATCH_IMPORT_COLUMNS = ("batch_id", "position", "observed")
_EXPECTED_HEADERS = "'prediction_id,observed' or 'batch_id,position,observed'"
# Lookups of ids in the file go to the database in chunks of this size (bounded query size).
_LOOKUP_CHUNK = 10_000


class OutcomeError(Exception):
    """An outcome that was refused; the message says why, for a person to read."""


class PredictionNotFound(OutcomeError):
    pass


class OutcomeExists(OutcomeError):
    pass


class InvalidObserved(OutcomeError, ValueError):
    pass


@dataclass
class ImportReport:
    imported: int


class OutcomeImportError(OutcomeError):
    """The import wrote nothing; ``errors`` lists every bad row ("Row N: ...")."""

    def __init__(self, errors: list[str]):
        self.errors = errors
        super().__init__(f"{len(errors)} bad row(s); nothing was imported.")


def observed_validate(value) -> float:
    """The observed progression as a float, or :class:`InvalidObserved` saying why not."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidObserved(f"{value!r} is not a number.")
    value = float(value)
    if not math.isfinite(value):
        raise InvalidObserved(f"{value!r} is not a finite number.")
    low, high = settings.PREDICTOR_OUTCOME_MIN, settings.PREDICTOR_OUTCOME_MAX
    if not low <= value <= high:
        raise InvalidObserved(f"{value:g} is outside the plausible range {low:g} to {high:g}.")
    return value


def outcome_record(*, prediction_id: int, observed, user=None, source: str = "api") -> Outcome:
    """Record the progression observed for logged prediction ``prediction_id``."""
    value = observed_validate(observed)
    # Beyond the 64-bit id column no prediction can exist (and SQLite cannot bind the number).
    if not 1 <= prediction_id < 2**63 or not PredictionLog.objects.filter(pk=prediction_id).exists():
        raise PredictionNotFound(f"Prediction {prediction_id} does not exist.")
    recorded_by = user_or_none(user)
    try:
        # Two clients may record the same prediction at once; the primary key makes the loser fail here.
        with transaction.atomic():
            return Outcome.objects.create(
                prediction_id=prediction_id, observed=value, recorded_by=recorded_by, source=source
            )
    except IntegrityError:
        if Outcome.objects.filter(pk=prediction_id).exists():
            raise OutcomeExists(f"Prediction {prediction_id} already has an observed outcome.") from None
        # The prediction was pruned between the check and the insert.
        raise PredictionNotFound(f"Prediction {prediction_id} does not exist.") from None


def batch_outcome_record(
    *, batch_id: uuid.UUID | str, position: int, observed, user=None, source: str = "api"
) -> BatchOutcome:
    """Record the progression observed for prediction ``position`` (from 0) of logged batch ``batch_id``."""
    value = observed_validate(observed)
    try:
        batch_id = batch_id if isinstance(batch_id, uuid.UUID) else uuid.UUID(str(batch_id))
    except ValueError:
        raise PredictionNotFound(f"Batch {batch_id!r} does not exist (a batch id is a UUID).") from None
    recorded_by = user_or_none(user)
    with transaction.atomic():
        # The lock keeps the batch (and so the size checked) until the outcome is committed: a
        # prune_predictions running at the same time waits instead of deleting it in between.
        size = (
            PredictionBatch.objects.select_for_update(no_key=True)
            .filter(pk=batch_id)
            .values_list("size", flat=True)
            .first()
        )
        if size is None:
            raise PredictionNotFound(f"Batch {batch_id} does not exist.")
        if not 0 <= position < size:
            raise PredictionNotFound(
                f"Batch {batch_id} has no prediction at position {position}: "
                f"it holds {size}, at positions 0 to {size - 1}."
            )
        try:
            # Two clients may record the same item at once; the unique constraint makes the loser fail here.
            with transaction.atomic():
                return BatchOutcome.objects.create(
                    batch_id=batch_id, position=position, observed=value, recorded_by=recorded_by, source=source
                )
        except IntegrityError:
            raise OutcomeExists(f"Prediction {position} of batch {batch_id} already has an observed outcome.") from None


def outcomes_import(*, source, user=None) -> ImportReport:
    """Import outcomes from CSV text or a file object: all or nothing.

    The header is ``prediction_id,observed`` (single predictions) or ``batch_id,position,observed``
    (batch items, positions from 0). Every row is checked first (values well-formed, prediction
    known, position within its batch, not repeated in the file, no outcome recorded yet) and every
    bad row is reported in one :class:`OutcomeImportError`. Only a clean file is written, in one
    transaction with bulk inserts.
    """
    text = source.read() if hasattr(source, "read") else source
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise OutcomeImportError([f"The file is not UTF-8 text (byte {exc.start})."]) from None
    columns, rows, errors = _parse_import(text)
    recorded_by = user_or_none(user)
    check = _checked_batch_outcomes if columns == BATCH_IMPORT_COLUMNS else _checked_outcomes
    try:
        return _import_rows(check, rows, errors, recorded_by=recorded_by)
    except IntegrityError:
        # PostgreSQL checks the (deferred) foreign keys at COMMIT, outside the inner handler. The
        # row locks below make this unreachable for prune_predictions; it stays as a clear message
        # for anything else that deletes predictions.
        what = "batch" if columns == BATCH_IMPORT_COLUMNS else "prediction"
        raise OutcomeImportError(
            [f"A {what} in the file was deleted while the import ran (prune_predictions?); run it again."]
        ) from None


def _import_rows(check, rows, errors, *, recorded_by) -> ImportReport:
    with transaction.atomic():
        # ``check`` adds the rows the database refuses to ``errors`` and builds the outcomes of the others.
        outcomes = check(rows, errors, recorded_by=recorded_by)
        if errors:
            raise OutcomeImportError([message for _, message in sorted(errors)])
        try:
            with transaction.atomic():
                type(outcomes[0]).objects.bulk_create(outcomes, batch_size=5_000)
        except IntegrityError:
            raise OutcomeImportError(
                ["Another client recorded outcomes for some of these predictions during the import; run it again."]
            ) from None
    return ImportReport(imported=len(outcomes))


def _checked_outcomes(rows, errors, *, recorded_by) -> list[Outcome]:
    ids = [prediction_id for _, prediction_id, _ in rows]
    # FOR NO KEY UPDATE on the predictions: a concurrent prune_predictions (which takes FOR UPDATE
    # before deleting) waits for this import to commit instead of deleting rows it refers to.
    known = _existing(PredictionLog, ids, lock=True)
    # FOR UPDATE is not possible on rows that do not exist yet; a concurrent insert of the same
    # outcome is caught by the primary key at the insert and rolls the whole import back.
    recorded = _existing(Outcome, ids)
    for row_number, prediction_id, _ in rows:
        if prediction_id not in known:
            errors.append((row_number, f"Row {row_number}: prediction {prediction_id} does not exist."))
        elif prediction_id in recorded:
            errors.append(
                (row_number, f"Row {row_number}: prediction {prediction_id} already has an observed outcome.")
            )
    return [
        Outcome(prediction_id=prediction_id, observed=observed, recorded_by=recorded_by, source="import")
        for _, prediction_id, observed in rows
    ]


def _checked_batch_outcomes(rows, errors, *, recorded_by) -> list[BatchOutcome]:
    batch_ids = sorted({batch_id for _, (batch_id, _), _ in rows})
    # Locked as the predictions above (FOR NO KEY UPDATE), so the sizes hold until the import commits.
    sizes = _batch_sizes(batch_ids)
    # A concurrent insert of the same outcome is caught by the unique (batch, position) at the insert.
    recorded = _recorded_batch_items(batch_ids)
    for row_number, (batch_id, position), _ in rows:
        size = sizes.get(batch_id)
        if size is None:
            errors.append((row_number, f"Row {row_number}: batch {batch_id} does not exist."))
        elif position >= size:
            errors.append(
                (
                    row_number,
                    f"Row {row_number}: batch {batch_id} has no prediction at position {position} "
                    f"(it holds {size}, at positions 0 to {size - 1}).",
                )
            )
        elif (batch_id, position) in recorded:
            errors.append(
                (row_number, f"Row {row_number}: {_describe((batch_id, position))} already has an observed outcome.")
            )
    return [
        BatchOutcome(batch_id=batch_id, position=position, observed=observed, recorded_by=recorded_by, source="import")
        for _, (batch_id, position), observed in rows
    ]


def _parse_import(text: str) -> tuple[tuple[str, ...], list[tuple], list[tuple[int, str]]]:
    """(the header's columns, good rows as (row number, key, observed), errors as (row number, message)).

    The key is the prediction id, or (batch id, position) under a ``batch_id,position,observed`` header.
    """
    reader = csv.reader(io.StringIO(text))
    try:
        header = next(reader)
    except StopIteration:
        return IMPORT_COLUMNS, [], [(1, f"Row 1: the file is empty; expected a header {_EXPECTED_HEADERS}.")]
    except csv.Error as exc:
        return IMPORT_COLUMNS, [], [(1, f"Row 1: not valid CSV ({exc}).")]
    names = [h.strip().lstrip("\ufeff").lower() for h in header]
    batches = "batch_id" in names or "position" in names
    columns = BATCH_IMPORT_COLUMNS if batches else IMPORT_COLUMNS
    if batches and "prediction_id" in names:
        return columns, [], [(1, f"Row 1 (header): one kind of outcome per file; expected {_EXPECTED_HEADERS}.")]
    repeated = [c for c in columns if names.count(c) > 1]
    if repeated:
        return columns, [], [(1, f"Row 1 (header): column {repeated[0]!r} appears more than once.")]
    missing = [c for c in columns if c not in names]
    if missing:
        expected = "'batch_id,position,observed'" if batches else _EXPECTED_HEADERS
        return (
            columns,
            [],
            [(1, f"Row 1 (header): missing column {', '.join(map(repr, missing))}; expected {expected}.")],
        )
    at = {column: names.index(column) for column in columns}
    parse_key = _batch_key if batches else _prediction_key
    rows: list[tuple] = []
    errors: list[tuple[int, str]] = []
    first_seen: dict = {}
    row_number = 1
    try:
        for row_number, row in enumerate(reader, start=2):
            if not row or all(not cell.strip() for cell in row):
                continue  # blank lines (often a trailing newline) carry no data
            cells = {column: row[i].strip() if i < len(row) else "" for column, i in at.items()}
            key, problems = parse_key(cells)
            raw_observed = cells["observed"]
            try:
                observed = parse_csv_number(raw_observed)
            except ValueError:
                problems.append(f"column 'observed': {raw_observed!r} is not a number")
            else:
                try:
                    observed = observed_validate(observed)
                except InvalidObserved as exc:
                    problems.append(f"column 'observed': {str(exc).rstrip('.')}")
            if key is not None:
                if key in first_seen:
                    problems.append(f"{_describe(key)} is repeated (first on row {first_seen[key]})")
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
    return columns, rows, errors


def _prediction_key(cells: dict[str, str]) -> tuple[int | None, list[str]]:
    raw = cells["prediction_id"]
    try:
        prediction_id = parse_csv_integer(raw)
    except ValueError:
        prediction_id = None
    if prediction_id is None or prediction_id < 1:
        return None, [f"column 'prediction_id': {raw!r} is not a prediction id (a positive integer)"]
    return prediction_id, []


def _batch_key(cells: dict[str, str]) -> tuple[tuple[uuid.UUID, int] | None, list[str]]:
    raw_batch, raw_position = cells["batch_id"], cells["position"]
    problems = []
    try:
        batch_id = uuid.UUID(raw_batch)
    except ValueError:
        problems.append(f"column 'batch_id': {raw_batch!r} is not a batch id (a UUID)")
    try:
        position = parse_csv_integer(raw_position)
    except ValueError:
        position = None
    if position is None or position < 0:
        problems.append(f"column 'position': {raw_position!r} is not a position (an integer from 0)")
    return (None, problems) if problems else ((batch_id, position), [])


def _describe(key) -> str:
    if isinstance(key, tuple):
        batch_id, position = key
        return f"prediction {position} of batch {batch_id}"
    return f"prediction {key}"


def _existing(model, ids: list[int], *, lock: bool = False) -> set[int]:
    found: set[int] = set()
    for start in range(0, len(ids), _LOOKUP_CHUNK):
        chunk = ids[start : start + _LOOKUP_CHUNK]
        queryset = model.objects.filter(pk__in=chunk)
        if lock:
            queryset = queryset.select_for_update(no_key=True).order_by("pk")  # one lock order: no deadlocks
        found.update(queryset.values_list("pk", flat=True))
    return found


def _batch_sizes(batch_ids: list[uuid.UUID]) -> dict[uuid.UUID, int]:
    """The size of each known batch, its row locked FOR NO KEY UPDATE until the transaction ends."""
    sizes: dict[uuid.UUID, int] = {}
    for start in range(0, len(batch_ids), _LOOKUP_CHUNK):
        chunk = batch_ids[start : start + _LOOKUP_CHUNK]
        queryset = PredictionBatch.objects.filter(pk__in=chunk).select_for_update(no_key=True).order_by("pk")
        sizes.update(queryset.values_list("pk", "size"))
    return sizes


def _recorded_batch_items(batch_ids: list[uuid.UUID]) -> set[tuple[uuid.UUID, int]]:
    recorded: set[tuple[uuid.UUID, int]] = set()
    for start in range(0, len(batch_ids), _LOOKUP_CHUNK):
        chunk = batch_ids[start : start + _LOOKUP_CHUNK]
        recorded.update(BatchOutcome.objects.filter(batch_id__in=chunk).values_list("batch_id", "position"))
    return recorded
