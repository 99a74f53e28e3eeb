"""manage.py import_outcomes FILE: every bad row reported, all or nothing."""

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


@pytest.fixture
def committed_rows(transactional_db, train_version, log_predictions):
    return log_predictions(train_version(promote=True), [22.0, 26.0])


@pytest.mark.postgres
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


@pytest.mark.postgres
def test_the_import_locks_its_predictions_against_a_concurrent_delete(tmp_path, committed_rows, monkeypatch):
    original = services._existing
    blocked = []

    def existing_then_try_to_delete(model, ids, **kwargs):
        found = original(model, ids, **kwargs)
        if model is PredictionLog:
            other = _other_connection()
            try:
                with other.cursor() as cursor:
                    cursor.execute("SET lock_timeout = '300ms'")
                    try:
                        cursor.execute("DELETE FROM predictor_predictionlog WHERE id = %s", [committed_rows[0].pk])
                    except psycopg2.errors.LockNotAvailable:
                        blocked.append(True)
                other.rollback()
            finally:
                other.close()
        return found

    monkeypatch.setattr(services, "_existing", existing_then_try_to_delete)
    path = write(tmp_path, "prediction_id,observed\n" + "".join(f"{r.pk},120\n" for r in committed_rows))
    call_command("import_outcomes", path, stdout=StringIO())
    assert blocked == [True], "a concurrent DELETE was not held off by the import's row locks"
    assert Outcome.objects.count() == 2


@pytest.mark.postgres
def test_prune_deletes_imported_outcomes_with_their_predictions(committed_rows):
    PredictionLog.objects.update(created_at=timezone.now() - timedelta(days=400))
    services.outcomes_import(source="prediction_id,observed\n" + "".join(f"{r.pk},120\n" for r in committed_rows))
    assert prediction_logs_prune(older_than_days=365) == 2
    assert not Outcome.objects.exists()
