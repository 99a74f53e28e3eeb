"""manage.py import_outcomes FILE (single predictions and batch items): every bad row reported, all or nothing.

The header is 'prediction_id,observed', with a 'position' column (from 0) for items of batches.
"""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import psycopg2
import psycopg2.errors
import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils import timezone

from predictor.models import Outcome, PredictionLog
from predictor.predictions import services
from predictor.predictions.services import predictions_prune


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
    Outcome.objects.create(log=rows[3], observed=90.0, source="api")
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
    assert list(Outcome.objects.values_list("log_id", "observed")) == [(rows[3].pk, 90.0)]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "the file is empty"),
        ("id,value\n1,2\n", "missing column 'prediction_id', 'observed'; expected 'prediction_id,observed' or "),
        ("position,observed\n0,2\n", "missing column 'prediction_id'"),
        ("prediction_id,observed\n", "no data rows"),
        ("prediction_id,observed,observed\n1,2,3\n", "column 'observed' appears more than once"),
        ("prediction_id,position,position,observed\n1,0,0,3\n", "column 'position' appears more than once"),
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


@pytest.fixture
def committed_batch(transactional_db, train_version, log_batch):
    return log_batch(train_version(promote=True), [22.0, 26.0])


def _single_file(entries) -> str:
    return "prediction_id,observed\n" + "".join(f"{e.pk},120\n" for e in entries)


def _batch_file(entry) -> str:
    return f"prediction_id,position,observed\n{entry.pk},0,120\n{entry.pk},1,130\n"


def _victim_and_file(kind: str, rows, batch) -> tuple[int, str]:
    """The entry a concurrent delete goes for, and a file with outcomes for it: single predictions or a batch."""
    return (rows[0].pk, _single_file(rows)) if kind == "single" else (batch.pk, _batch_file(batch))


@pytest.mark.parametrize("kind", ["single", "batch"])
def test_an_entry_deleted_during_the_import_is_a_clear_command_error(
    tmp_path, committed_rows, committed_batch, monkeypatch, kind
):
    # The deletion lands after the lookup, as a prune without the lock would; the foreign key then
    # fails at COMMIT, outside any inner handler.
    victim, text = _victim_and_file(kind, committed_rows, committed_batch)
    original = services._locked_sizes

    def sizes_then_deleted(ids):
        found = original(ids)
        PredictionLog.objects.filter(pk=victim).delete()
        return found

    monkeypatch.setattr(services, "_locked_sizes", sizes_then_deleted)
    err = StringIO()
    with pytest.raises(CommandError, match="nothing was imported"):
        call_command("import_outcomes", write(tmp_path, text), stdout=StringIO(), stderr=err)
    assert "A prediction in the file was deleted while the import ran" in err.getvalue()
    assert not Outcome.objects.exists()
    assert PredictionLog.objects.filter(pk=victim).exists()  # the whole import, the delete too, rolled back


@pytest.mark.parametrize("kind", ["single", "batch"])
def test_the_import_locks_its_entries_against_a_concurrent_delete(
    tmp_path, committed_rows, committed_batch, monkeypatch, kind
):
    victim, text = _victim_and_file(kind, committed_rows, committed_batch)
    original = services._locked_sizes
    blocked = []

    def sizes_then_try_to_delete(ids):
        found = original(ids)
        if not _delete_elsewhere("DELETE FROM predictor_predictionlog WHERE id = %s", [victim]):
            blocked.append(True)
        return found

    monkeypatch.setattr(services, "_locked_sizes", sizes_then_try_to_delete)
    call_command("import_outcomes", write(tmp_path, text), stdout=StringIO())
    assert blocked == [True], "a concurrent DELETE was not held off by the import's row locks"
    assert Outcome.objects.count() == 2


def test_prune_deletes_imported_outcomes_with_their_entries(committed_rows, committed_batch):
    PredictionLog.objects.update(created_at=timezone.now() - timedelta(days=400))
    services.outcomes_import(source=_single_file(committed_rows))
    services.outcomes_import(source=_batch_file(committed_batch))
    assert Outcome.objects.count() == 4
    assert predictions_prune(older_than_days=365) == 3  # two single predictions and one batch
    assert not Outcome.objects.exists()
    assert not PredictionLog.objects.exists()


# --- Batch items: the same file, with a 'position' column ---


@pytest.fixture
def batches(active_version, log_batch):
    return log_batch(active_version, [22.0, 26.0, 31.0]), log_batch(active_version, [35.0, 28.0])


def test_clean_batch_file_imports_every_row(tmp_path, batches):
    first, second = batches
    text = (
        "position,observed,prediction_id\n"  # columns in any order
        f"0,100,{first.pk}\n"
        f"2,102,{first.pk}\n"
        f"1,103,{second.pk}\n"
    )
    out = StringIO()
    call_command("import_outcomes", write(tmp_path, text), stdout=out)
    assert "Imported 3 outcome(s)" in out.getvalue()
    assert sorted(Outcome.objects.values_list("log_id", "position", "observed")) == sorted(
        [(first.pk, 0, 100.0), (first.pk, 2, 102.0), (second.pk, 1, 103.0)]
    )
    assert set(Outcome.objects.values_list("source", flat=True)) == {"import"}


def test_one_file_may_hold_single_predictions_and_batch_items(tmp_path, rows, batches):
    first, _ = batches
    # A single prediction's position may be left empty or given as 0.
    text = f"prediction_id,position,observed\n{rows[0].pk},,110\n{rows[1].pk},0,111\n{first.pk},1,112\n"
    out = StringIO()
    call_command("import_outcomes", write(tmp_path, text), stdout=out)
    assert "Imported 3 outcome(s)" in out.getvalue()
    assert sorted(Outcome.objects.values_list("log_id", "position", "observed")) == [
        (rows[0].pk, 0, 110.0),
        (rows[1].pk, 0, 111.0),
        (first.pk, 1, 112.0),
    ]


def test_every_kind_of_bad_batch_row_is_reported_and_nothing_is_imported(tmp_path, rows, batches):
    first, second = batches
    Outcome.objects.create(log=second, position=1, observed=90.0, source="api")
    unknown = max(first.pk, second.pk, *(r.pk for r in rows)) + 100
    text = (
        "prediction_id,position,observed\n"
        f"{first.pk},0,120\n"  # row 2: good
        f"{unknown},0,130\n"  # row 3: unknown entry
        f"{first.pk},3,125\n"  # row 4: past the end of a batch of 3
        f"{first.pk},0,140\n"  # row 5: repeated in the file
        f"{second.pk},1,150\n"  # row 6: already has an outcome
        "not-a-number,-1,abc\n"  # row 7: no column usable
        f"{second.pk},x,2000\n"  # row 8: position and value bad
        f"{second.pk},0,135\n"  # row 9: good
        f"{first.pk},1,136\n"  # row 10: good
        f"{rows[0].pk},1,137\n"  # row 11: a single prediction has only position 0
        f"{rows[1].pk},0,138\n"  # row 12: good
        f"{rows[1].pk},,139\n"  # row 13: the same single prediction, position left out
    )
    err = StringIO()
    with pytest.raises(CommandError, match="8 bad row"):
        call_command("import_outcomes", write(tmp_path, text), stdout=StringIO(), stderr=err)
    assert err.getvalue().splitlines() == [
        f"Row 3: prediction {unknown} does not exist.",
        f"Row 4: prediction {first.pk} is a batch of 3: its positions are 0 to 2.",
        f"Row 5: prediction {first.pk} position 0 is repeated (first on row 2).",
        f"Row 6: prediction 1 of batch {second.pk} already has an observed outcome.",
        "Row 7: column 'prediction_id': 'not-a-number' is not a prediction id (a positive integer); "
        "column 'position': '-1' is not a position (an integer from 0); column 'observed': 'abc' is not a number.",
        "Row 8: column 'position': 'x' is not a position (an integer from 0); "
        "column 'observed': 2000 is outside the plausible range 0 to 1000.",
        f"Row 11: prediction {rows[0].pk} is a single prediction: its only position is 0.",
        f"Row 13: prediction {rows[1].pk} is repeated (first on row 12).",
    ]
    assert list(Outcome.objects.values_list("log_id", "position", "observed")) == [(second.pk, 1, 90.0)]


def test_a_batch_item_without_its_position_is_reported_as_such_not_as_a_repeat(tmp_path, batches):
    # Row 3 leaves out the position of an item of a batch of 2. It is not a repeat of row 2's
    # position 0 (an empty position means 0 only for a single prediction); what it lacks is its position.
    _, second = batches
    text = f"prediction_id,position,observed\n{second.pk},0,135\n{second.pk},,136\n"
    err = StringIO()
    with pytest.raises(CommandError, match="1 bad row"):
        call_command("import_outcomes", write(tmp_path, text), stdout=StringIO(), stderr=err)
    assert err.getvalue().splitlines() == [
        f"Row 3: prediction {second.pk} is a batch of 2: give the position (0 to 1) of the one observed.",
    ]
    assert not Outcome.objects.exists()


def test_a_file_without_the_position_column_cannot_name_a_batch_item(tmp_path, batches):
    first, _ = batches
    err = StringIO()
    with pytest.raises(CommandError, match="1 bad row"):
        call_command("import_outcomes", write(tmp_path, f"prediction_id,observed\n{first.pk},120\n"), stderr=err)
    assert f"Row 2: prediction {first.pk} is a batch of 3: give the position (0 to 2)" in err.getvalue()
    assert not Outcome.objects.exists()
