"""Writes of the feedback loop: record one observed outcome, import many from a CSV file.

The API view and the ``import_outcomes`` command call these and repeat none of the rules. The
one-outcome-per-prediction rule is the database's (``Outcome.prediction`` is the primary key);
the checks here only turn a violation into a clear message before the insert is tried.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass

from django.conf import settings
from django.db import IntegrityError, transaction

from predictor.models import Outcome, PredictionLog
from predictor.services import user_or_none

IMPORT_COLUMNS = ("prediction_id", "observed")
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


def outcomes_import(*, source, user=None) -> ImportReport:
    """Import ``prediction_id,observed`` rows from CSV text or a file object: all or nothing.

    Every row is checked first (id and value well-formed, id known, not repeated in the file, no
    outcome recorded yet) and every bad row is reported in one :class:`OutcomeImportError`. Only a
    clean file is written, in one transaction with bulk inserts.
    """
    text = source.read() if hasattr(source, "read") else source
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise OutcomeImportError([f"The file is not UTF-8 text (byte {exc.start})."]) from None
    rows, errors = _parse_import(text)
    recorded_by = user_or_none(user)
    try:
        return _import_rows(rows, errors, recorded_by=recorded_by)
    except IntegrityError:
        # PostgreSQL checks the (deferred) foreign keys at COMMIT, outside the inner handler. The
        # row locks below make this unreachable for prune_predictions; it stays as a clear message
        # for anything else that deletes predictions.
        raise OutcomeImportError(
            ["A prediction in the file was deleted while the import ran (prune_predictions?); run it again."]
        ) from None


def _import_rows(rows, errors, *, recorded_by) -> ImportReport:
    with transaction.atomic():
        ids = [prediction_id for _, prediction_id, _ in rows]
        # FOR NO KEY UPDATE on the predictions: a concurrent prune_predictions (which takes FOR UPDATE
        # before deleting) waits for this import to commit instead of deleting rows it refers to.
        known = _existing(PredictionLog, ids, lock=True)
        # FOR UPDATE is not possible on rows that do not exist yet; a concurrent insert of the same
        # outcome is caught by the primary key below and rolls the whole import back.
        recorded = _existing(Outcome, ids)
        for row_number, prediction_id, _ in rows:
            if prediction_id not in known:
                errors.append((row_number, f"Row {row_number}: prediction {prediction_id} does not exist."))
            elif prediction_id in recorded:
                errors.append(
                    (row_number, f"Row {row_number}: prediction {prediction_id} already has an observed outcome.")
                )
        if errors:
            raise OutcomeImportError([message for _, message in sorted(errors)])
        outcomes = [
            Outcome(prediction_id=prediction_id, observed=observed, recorded_by=recorded_by, source="import")
            for _, prediction_id, observed in rows
        ]
        try:
            with transaction.atomic():
                Outcome.objects.bulk_create(outcomes, batch_size=5_000)
        except IntegrityError:
            raise OutcomeImportError(
                ["Another client recorded outcomes for some of these predictions during the import; run it again."]
            ) from None
    return ImportReport(imported=len(outcomes))


def _parse_import(text: str) -> tuple[list[tuple[int, int, float]], list[tuple[int, str]]]:
    """(good rows as (row number, prediction id, observed), errors as (row number, message))."""
    reader = csv.reader(io.StringIO(text))
    try:
        header = next(reader)
    except StopIteration:
        return [], [(1, "Row 1: the file is empty; expected a header 'prediction_id,observed'.")]
    except csv.Error as exc:
        return [], [(1, f"Row 1: not valid CSV ({exc}).")]
    names = [h.strip().lstrip("\ufeff").lower() for h in header]
    missing = [c for c in IMPORT_COLUMNS if c not in names]
    if missing:
        return [], [
            (1, f"Row 1 (header): missing column {', '.join(map(repr, missing))}; expected 'prediction_id,observed'.")
        ]
    id_at, observed_at = names.index("prediction_id"), names.index("observed")
    rows: list[tuple[int, int, float]] = []
    errors: list[tuple[int, str]] = []
    first_seen: dict[int, int] = {}
    row_number = 1
    try:
        for row_number, row in enumerate(reader, start=2):
            if not row or all(not cell.strip() for cell in row):
                continue  # blank lines (often a trailing newline) carry no data
            raw_id = row[id_at].strip() if id_at < len(row) else ""
            raw_observed = row[observed_at].strip() if observed_at < len(row) else ""
            problems = []
            prediction_id = None
            try:
                prediction_id = int(raw_id)
                if prediction_id < 1:
                    raise ValueError
            except ValueError:
                problems.append(f"column 'prediction_id': {raw_id!r} is not a prediction id (a positive integer)")
                prediction_id = None
            try:
                observed = float(raw_observed)
            except ValueError:
                problems.append(f"column 'observed': {raw_observed!r} is not a number")
            else:
                try:
                    observed = observed_validate(observed)
                except InvalidObserved as exc:
                    problems.append(f"column 'observed': {str(exc).rstrip('.')}")
            if prediction_id is not None:
                if prediction_id in first_seen:
                    first = first_seen[prediction_id]
                    problems.append(f"prediction {prediction_id} is repeated (first on row {first})")
                else:
                    first_seen[prediction_id] = row_number
            if problems:
                errors.append((row_number, f"Row {row_number}: {'; '.join(problems)}."))
            else:
                rows.append((row_number, prediction_id, observed))
    except csv.Error as exc:
        errors.append((row_number + 1, f"Row {row_number + 1}: not valid CSV ({exc})."))
    if not rows and not errors:
        errors.append((1, "The file has a header but no data rows."))
    return rows, errors


def _existing(model, ids: list[int], *, lock: bool = False) -> set[int]:
    found: set[int] = set()
    for start in range(0, len(ids), _LOOKUP_CHUNK):
        chunk = ids[start : start + _LOOKUP_CHUNK]
        queryset = model.objects.filter(pk__in=chunk)
        if lock:
            queryset = queryset.select_for_update(no_key=True).order_by("pk")  # one lock order: no deadlocks
        found.update(queryset.values_list("pk", flat=True))
    return found
