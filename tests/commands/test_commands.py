"""Management commands through call_command, and the exit status a shell sees."""

import subprocess
import sys
from io import StringIO
from pathlib import Path

import psycopg2
import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from predictor.models import ModelVersion, PromotionEvent
from tests.deploy.test_gunicorn import database_url

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]


def run(*args):
    out, err = StringIO(), StringIO()
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_train_prints_version_metrics_and_decision_and_promotes():
    out, _ = run("train", "--seed", "4")
    version = ModelVersion.objects.get()
    assert version.status == "active"
    assert f"Version {version.version} trained on sklearn-diabetes-bmi" in out
    assert "R² test 0.47" in out
    assert f"Version {version.version} promoted: held-out R² 0.47" in out
    assert PromotionEvent.objects.get().actor_name.startswith("cli:")


def test_train_options_reach_the_estimator():
    run("train", "--seed", "3", "--learning-rate", "0.02", "--decay", "0.4", "--epochs", "500", "--tol", "1e-7")
    assert ModelVersion.objects.get().hyperparameters == {
        "learning_rate": 0.02,
        "decay": 0.4,
        "max_epochs": 500,
        "tol": 1e-7,
        "n_iter_no_change": 5,
        "random_state": 3,
    }


def test_train_no_promote_keeps_a_candidate():
    out, _ = run("train", "--no-promote")
    assert ModelVersion.objects.get().status == "candidate"
    assert "not promoted" in out
    assert not PromotionEvent.objects.exists()


def test_train_failing_the_gate_stores_a_rejected_version_and_fails():
    with pytest.raises(CommandError, match=r"rejected: held-out R² 0\.47\d+ does not exceed the threshold 0\.9"):
        run("train", "--threshold", "0.9")
    assert ModelVersion.objects.get().status == "rejected"


def test_train_warns_when_sgd_stops_on_the_epoch_limit():
    _, err = run("train", "--epochs", "1", "--no-promote")
    assert "raise max_epochs" in err


def test_train_on_a_csv_file(tmp_path):
    rows = "\n".join(f"{20 + (i % 25)},{30 + 9 * (20 + (i % 25)) + (i * 7) % 23}" for i in range(60))
    path = tmp_path / "clinic.csv"
    path.write_text(f"bmi,progression\n{rows}\n")
    out, _ = run("train", "--data", str(path), "--test-fraction", "0.25", "--seed", "2")
    version = ModelVersion.objects.get()
    assert (version.n_train, version.n_test) == (45, 15)
    # The file name, not the server's path; and no patient's row is kept for the public pages.
    assert version.dataset_name == "csv:clinic.csv"
    assert version.training_sample == []
    assert version.slope == pytest.approx(9.0, abs=0.2)
    assert "promoted" in out


def test_train_on_a_bad_csv_names_the_row_and_saves_nothing(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("bmi,progression\n" + "25,100\n" * 5 + "twenty,100\n" + "26,110\n" * 10)
    with pytest.raises(CommandError, match=r"Row 7, column 'bmi': 'twenty' is not a number"):
        run("train", "--data", str(path))
    assert not ModelVersion.objects.exists()


@pytest.mark.parametrize(
    "args",
    [
        ["--learning-rate", "-1"],
        ["--epochs", "0"],
        ["--test-fraction", "2", "--data", "x"],
        ["--test-fraction", "0.3"],  # the diabetes data's split is fixed; it used to be ignored
        ["--threshold", "nan"],
        ["--threshold", "1"],
    ],
)
def test_train_bad_options_are_command_errors(args, tmp_path):
    with pytest.raises(CommandError):
        run("train", *args)
    assert not ModelVersion.objects.exists()


def test_promote_rollback_retire_and_models_table(train_version):
    v1 = train_version()
    v2 = train_version(promote=False, random_state=1)
    v3 = train_version(promote=False, random_state=2)

    out, _ = run("promote", str(v2.version), "--reason", "weekly retrain")
    assert f"Version {v2.version} is now active" in out
    assert PromotionEvent.objects.filter(reason="weekly retrain").exists()

    out, _ = run("rollback")
    assert f"version {v1.version} is now active" in out

    out, _ = run("retire", str(v3.version))
    assert f"Version {v3.version} retired" in out

    out, _ = run("models")
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["version", "status", "R²"]
    assert lines[1].split()[:2] == [str(v3.version), "retired"]
    assert lines[3].split()[:2] == [str(v1.version), "active"]


def test_registry_commands_report_refusals_as_command_errors(train_version):
    active = train_version()
    with pytest.raises(CommandError, match="already active"):
        run("promote", str(active.version))
    with pytest.raises(CommandError, match="does not exist"):
        run("promote", "424242")
    with pytest.raises(CommandError, match="no earlier active version"):
        run("rollback")
    with pytest.raises(CommandError, match="is active"):
        run("retire", str(active.version))


def test_models_on_an_empty_registry():
    out, _ = run("models")
    assert "No model versions yet" in out


def test_bootstrap_trains_only_when_nothing_is_active():
    out, _ = run("bootstrap")
    assert "training one" in out
    out, _ = run("bootstrap")
    assert "nothing to do" in out
    assert ModelVersion.objects.count() == 1


@pytest.fixture
def empty_database_url():
    """A fresh database beside the test database: the commands below commit, in other processes."""
    db = connection.settings_dict
    name = f"{db['NAME']}_gate"
    server = psycopg2.connect(
        dbname="postgres", user=db["USER"], password=db["PASSWORD"] or None, host=db["HOST"], port=db["PORT"] or 5432
    )
    server.autocommit = True
    try:
        with server.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}"')
            cursor.execute(f'CREATE DATABASE "{name}"')
        yield f"{database_url().rsplit('/', 1)[0]}/{name}"
        with server.cursor() as cursor:
            cursor.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    finally:
        server.close()


def test_a_failing_gate_exits_non_zero_in_a_shell(empty_database_url):
    # A pipeline sees the exit status, not the exception: check it in a real process.
    env = {
        "PATH": "/usr/bin:/bin",
        "DJANGO_SETTINGS_MODULE": "bmiproject.settings_test",
        "DATABASE_URL": empty_database_url,
    }
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
    failed = subprocess.run(
        [sys.executable, "manage.py", "train", "--threshold", "0.9"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert failed.returncode == 1
    assert "does not exceed the threshold 0.9" in failed.stderr
    passed = subprocess.run([sys.executable, "manage.py", "train"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert passed.returncode == 0, passed.stderr
    assert "promoted" in passed.stdout
