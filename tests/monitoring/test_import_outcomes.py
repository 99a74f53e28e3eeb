"""manage.py import_outcomes FILE (single predictions or batch items): every bad row reported, all or nothing."""

from __future__ import annotations

import uuid
from datetime import timedelta
from io import StringIO

import psycopg2
import psycopg2.errors
import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils import timezone

from predictor.models import BatchOutcome, Outcome, PredictionBatch, PredictionLog
from predictor.monitoring import services
from predictor.services import prediction_logs_prune


@pytest.fixture
def rows(active_version, log_predictions):
    return log_predictions(active_version, [22.0, 26.0, 31.0, 35.0])


def write(tmp_path, text: str):
    path = tmp_path / "outcomes.csv"
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_clean_file_imports_every_row(tmp_path, rows):
    path = write(tmp_path, "prediction_id,observed\n" + "".join(f"{r.pk},{100 + i}\n" for i, r in enumerate(rows)))
    out = StringIO()
    call_command("import_outcomes", path, stdout=out)
    assert "Imported 4 outcome(s)" in out.getvalue()
    assert sorted(Outcome.objects.values_list("observed", flat=True)) == [100.0, 101.0, 102.0, 103.0]
    assert set(Outcome.objects.values_list("source", flat=True)) == {"import"}


def test_one_bad_row_imports_nothing(tmp_path, rows):
    path = write(tmp_path, f"prediction_id,observed\n{rows[0].pk},120\n{rows[1].pk},abc\n{rows[2].pk},140\n")
    err = StringIO()
    with pytest.raises(CommandError, match="1 bad row"):
        call_command("import_outcomes", path, stdout=StringIO(), stderr=err)
    assert "Row 3: column 'observed': 'abc' is not a number." in err.getvalue()
    assert not Outcome.objects.exists()


def test_numbers_with_underscores_are_typos_not_numbers(tmp_path, rows):
    # Python's int() and float() read "1_5" as 15; in a clinical file it is a typo.
    path = write(tmp_path, f"prediction_id,observed\n{rows[0].pk},1_20\n1_0,120\n")
    err = StringIO()
    with pytest.raises(CommandError, match="2 bad row"):
        call_command("import_outcomes", path, stdout=StringIO(), stderr=err)
    assert "Row 2: column 'observed': '1_20' is not a number." in err.getvalue()
    assert "Row 3: column 'prediction_id'" in err.getvalue()
    assert not Outcome.objects.exists()


def test_every_kind_of_bad_row_is_reported(tmp_path, rows):
    Outcome.objects.create(prediction=rows[3], observed=90.0, source="api")
    unknown = max(r.pk for r in rows) + 100
    text = (
        "observed,prediction_id\n"  # columns in any order
        f"120,{rows[0].pk}\n"  # row 2: good
        f"130,{unknown}\n"  # row 3: unknown prediction
        f"125,{rows[0].pk}\n"  # row 4: repeated in the file
        f"140,{rows[3].pk}\n"  # row 5: already has an outcome
        f"many,{rows[1].pk}\n"  # row 6: not a number
        f"2000,{rows[2].pk}\n"  # row 7: out of range
        "nan,x\n"  # row 8: neither column usable
    )
    err = StringIO()
    with pytest.raises(CommandError, match="6 bad row"):
        call_command("import_outcomes", write(tmp_path, text), stdout=StringIO(), stderr=err)
    lines = err.getvalue().splitlines()
    assert lines == [
        f"Row 3: prediction {unknown} does not exist.",
        f"Row 4: prediction {rows[0].pk} is repeated (first on row 2).",
        f"Row 5: prediction {rows[3].pk} already has an observed outcome.",
        "Row 6: column 'observed': 'many' is not a number.",
        "Row 7: column 'observed': 2000 is outside the plausible range 0 to 1000.",
        "Row 8: column 'prediction_id': 'x' is not a prediction id (a positive integer); "
        "column 'observed': nan is not a finite number.",
    ]
    assert list(Outcome.objects.values_list("pk", flat=True)) == [rows[3].pk]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "the file is empty"),
        ("id,value\n1,2\n", "missing column 'prediction_id', 'observed'"),
        ("prediction_id,observed\n", "no data rows"),
        ("prediction_id,observed,observed\n1,2,3\n", "column 'observed' appears more than once"),
    ],
)
def test_unusable_files_are_refused(tmp_path, rows, text, message):
    err = StringIO()
    with pytest.raises(CommandError):
        call_command("import_outcomes", write(tmp_path, text), stdout=StringIO(), stderr=err)
    assert message in err.getvalue()
    assert not Outcome.objects.exists()


def test_missing_file_is_a_command_error(tmp_path, db):
    with pytest.raises(CommandError, match="Cannot read"):
        call_command("import_outcomes", str(tmp_path / "nope.csv"), stdout=StringIO())


# --- Races with prune_predictions (real commits, so PostgreSQL checks the deferred foreign keys) ---


def _other_connection():
    db = connection.settings_dict
    return psycopg2.connect(
        dbname=db["NAME"], user=db["USER"], password=db["PASSWORD"] or None, host=db["HOST"], port=db["PORT"] or 5432
    )


def _delete_elsewhere(sql: str, params: list) -> bool:
    """Try ``sql`` from another session, waiting 300 ms for locks; False when a lock held it off.

    Rolled back either way: only whether the import's row locks stop a concurrent delete matters.
    """
    other = _other_connection()
    try:
        with other.cursor() as cursor:
            cursor.execute("SET lock_timeout = '300ms'")
            try:
                cursor.execute(sql, params)
            except psycopg2.errors.LockNotAvailable:
                return False
        return True
    finally:
        other.rollback()
        other.close()


@pytest.fixture
def committed_rows(transactional_db, train_version, log_predictions):
    return log_predictions(train_version(promote=True), [22.0, 26.0])


def test_a_prediction_deleted_during_the_import_is_a_clear_command_error(tmp_path, committed_rows, monkeypatch):
    # The deletion lands after the lookup, as a prune without the lock would; the foreign key then
    # fails at COMMIT, outside any inner handler.
    victim = committed_rows[0].pk
    original = services._existing

    def existing_then_deleted(model, ids, **kwargs):
        found = original(model, ids, **kwargs)
        if model is PredictionLog:
            PredictionLog.objects.filter(pk=victim).delete()
        return found

    monkeypatch.setattr(services, "_existing", existing_then_deleted)
    path = write(tmp_path, "prediction_id,observed\n" + "".join(f"{r.pk},120\n" for r in committed_rows))
    err = StringIO()
    with pytest.raises(CommandError, match="nothing was imported"):
        call_command("import_outcomes", path, stdout=StringIO(), stderr=err)
    assert "deleted while the import ran" in err.getvalue()
    assert not Outcome.objects.exists()


def test_the_import_locks_its_predictions_against_a_concurrent_delete(tmp_path, committed_rows, monkeypatch):
    original = services._existing
    blocked = []

    def existing_then_try_to_delete(model, ids, **kwargs):
        found = original(model, ids, **kwargs)
        deleting = "DELETE FROM predictor_predictionlog WHERE id = %s"
        if model is PredictionLog and not _delete_elsewhere(deleting, [committed_rows[0].pk]):
            blocked.append(True)
        return found

    monkeypatch.setattr(services, "_existing", existing_then_try_to_delete)
    path = write(tmp_path, "prediction_id,observed\n" + "".join(f"{r.pk},120\n" for r in committed_rows))
    call_command("import_outcomes", path, stdout=StringIO())
    assert blocked == [True], "a concurrent DELETE was not held off by the import's row locks"
    assert Outcome.objects.count() == 2


def test_prune_deletes_imported_outcomes_with_their_predictions(committed_rows):
    PredictionLog.objects.update(created_at=timezone.now() - timedelta(days=400))
    services.outcomes_import(source="prediction_id,observed\n" + "".join(f"{r.pk},120\n" for r in committed_rows))
    assert prediction_logs_prune(older_than_days=365).predictions == 2
    assert not Outcome.objects.exists()


# --- Batch items: header 'batch_id,position,observed' ---


@pytest.fixture
def batches(active_version, log_batch):
    return log_batch(active_version, [22.0, 26.0, 31.0]), log_batch(active_version, [35.0, 28.0])


def test_clean_batch_file_imports_every_row(tmp_path, batches):
    first, second = batches
    text = (
        "position,observed,batch_id\n"  # columns in any order
        f"0,100,{first.pk}\n"
        f"2,102,{first.pk}\n"
        f"1,103,{str(second.pk).upper()}\n"
    )
    out = StringIO()
    call_command("import_outcomes", write(tmp_path, text), stdout=out)
    assert "Imported 3 outcome(s)" in out.getvalue()
    assert sorted(BatchOutcome.objects.values_list("batch_id", "position", "observed")) == sorted(
        [(first.pk, 0, 100.0), (first.pk, 2, 102.0), (second.pk, 1, 103.0)]
    )
    assert set(BatchOutcome.objects.values_list("source", flat=True)) == {"import"}
    assert not Outcome.objects.exists()


def test_every_kind_of_bad_batch_row_is_reported_and_nothing_is_imported(tmp_path, batches):
    first, second = batches
    BatchOutcome.objects.create(batch=second, position=1, observed=90.0, source="api")
    unknown = uuid.uuid4()
    text = (
        "batch_id,position,observed\n"
        f"{first.pk},0,120\n"  # row 2: good
        f"{unknown},0,130\n"  # row 3: unknown batch
        f"{first.pk},3,125\n"  # row 4: past the end of a batch of 3
        f"{first.pk},0,140\n"  # row 5: repeated in the file
        f"{second.pk},1,150\n"  # row 6: already has an outcome
        "not-a-uuid,-1,abc\n"  # row 7: no column usable
        f"{second.pk},x,2000\n"  # row 8: position and value bad
        f"{second.pk},0,135\n"  # row 9: good
    )
    err = StringIO()
    with pytest.raises(CommandError, match="6 bad row"):
        call_command("import_outcomes", write(tmp_path, text), stdout=StringIO(), stderr=err)
    assert err.getvalue().splitlines() == [
        f"Row 3: batch {unknown} does not exist.",
        f"Row 4: batch {first.pk} has no prediction at position 3 (it holds 3, at positions 0 to 2).",
        f"Row 5: prediction 0 of batch {first.pk} is repeated (first on row 2).",
        f"Row 6: prediction 1 of batch {second.pk} already has an observed outcome.",
        "Row 7: column 'batch_id': 'not-a-uuid' is not a batch id (a UUID); "
        "column 'position': '-1' is not a position (an integer from 0); column 'observed': 'abc' is not a number.",
        "Row 8: column 'position': 'x' is not a position (an integer from 0); "
        "column 'observed': 2000 is outside the plausible range 0 to 1000.",
    ]
    assert list(BatchOutcome.objects.values_list("batch_id", "position", "observed")) == [(second.pk, 1, 90.0)]


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("prediction_id,batch_id,position,observed", "one kind of outcome per file"),
        ("batch_id,observed", "missing column 'position'; expected 'batch_id,position,observed'"),
        ("position,observed", "missing column 'batch_id'"),
    ],
)
def test_mixed_or_incomplete_batch_headers_are_refused(tmp_path, batches, header, message):
    text = f"{header}\n{batches[0].pk},0,120\n"
    err = StringIO()
    with pytest.raises(CommandError):
        call_command("import_outcomes", write(tmp_path, text), stdout=StringIO(), stderr=err)
    assert message in err.getvalue()
    assert not BatchOutcome.objects.exists()
    assert not Outcome.objects.exists()


@pytest.fixture
def committed_batch(transactional_db, train_version, log_batch):
    return log_batch(train_version(promote=True), [22.0, 26.0])


def test_the_import_locks_its_batches_against_a_concurrent_delete(tmp_path, committed_batch, monkeypatch):
    original = services._batch_sizes
    blocked = []

    def sizes_then_try_to_delete(batch_ids):
        found = original(batch_ids)
        if not _delete_elsewhere("DELETE FROM predictor_predictionbatch WHERE id = %s", [str(committed_batch.pk)]):
            blocked.append(True)
        return found

    monkeypatch.setattr(services, "_batch_sizes", sizes_then_try_to_delete)
    path = write(tmp_path, f"batch_id,position,observed\n{committed_batch.pk},0,120\n{committed_batch.pk},1,130\n")
    call_command("import_outcomes", path, stdout=StringIO())
    assert blocked == [True], "a concurrent DELETE was not held off by the import's row locks"
    assert BatchOutcome.objects.count() == 2


def test_a_batch_deleted_during_the_import_is_a_clear_command_error(tmp_path, committed_batch, monkeypatch):
    original = services._batch_sizes

    def sizes_then_deleted(batch_ids):
        found = original(batch_ids)
        PredictionBatch.objects.filter(pk=committed_batch.pk).delete()
        return found

    monkeypatch.setattr(services, "_batch_sizes", sizes_then_deleted)
    path = write(tmp_path, f"batch_id,position,observed\n{committed_batch.pk},0,120\n")
    err = StringIO()
    with pytest.raises(CommandError, match="nothing was imported"):
        call_command("import_outcomes", path, stdout=StringIO(), stderr=err)
    assert "A batch in the file was deleted while the import ran" in err.getvalue()
    assert not BatchOutcome.objects.exists()


def test_prune_deletes_imported_batch_outcomes_with_their_batch(committed_batch):
    PredictionBatch.objects.update(created_at=timezone.now() - timedelta(days=400))
    services.outcomes_import(
        source=f"batch_id,position,observed\n{committed_batch.pk},0,120\n{committed_batch.pk},1,130\n"
    )
    assert BatchOutcome.objects.count() == 2
    assert prediction_logs_prune(older_than_days=365).batches == 1
    assert not BatchOutcome.objects.exists()
