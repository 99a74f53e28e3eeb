"""Writers, folders and readers in parallel processes on PostgreSQL: no row missed, none counted twice.

Writers log through the real serving path (single INSERTs, batches drawing their id before their
COPY) and record outcomes of earlier predictions in random order; two folders fold as fast as they
can; a reader checks in REPEATABLE READ that the figures (rollups plus tail) equal the raw rows of
the same snapshot. A fold that moved its watermark past a row still being written would leave that
row out for good, which the reader sees at its next read and the final comparison sees at the end.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from predictor.models import DailyRollup, Outcome, PredictionLog
from predictor.monitoring import rollups
from tests.deploy.test_gunicorn import database_url
from tests.monitoring.test_rollups import assert_matches_scan

ROOT = Path(__file__).resolve().parents[2]


def _spawn(env: dict, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.monitoring.rollup_race", *map(str, args)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_parallel_writers_folders_and_readers_never_miss_or_double_count(transactional_db, train_version, tmp_path):
    version = train_version(promote=True)
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "bmiproject.settings",
        "DEBUG": "1",
        # The test database, password included (the embedded PostgreSQL has one).
        "DATABASE_URL": database_url(),
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    stop = tmp_path / "stop"
    folders = [_spawn(env, "folder", stop) for _ in range(2)]
    reader = _spawn(env, "reader", version.version, stop)
    writers = [_spawn(env, "writer", version.version, 150, seed) for seed in range(3)]
    try:
        written = [w.communicate(timeout=240) for w in writers]
    finally:
        stop.touch()
    others = [p.communicate(timeout=120) for p in [*folders, reader]]
    outputs = [out for out, _ in [*written, *others]]
    assert [p.returncode for p in [*writers, *folders, reader]] == [0] * 6, outputs
    folds = sum(int(out.split()[-1]) for out in outputs[3:5])
    reads = int(outputs[5].split()[-1])
    assert folds >= 2 and reads >= 1, outputs

    rollups.rollups_fold()
    mark = rollups.watermark()
    assert mark.log_id == PredictionLog.objects.order_by("-pk").first().pk
    assert mark.outcome_id == Outcome.objects.order_by("-pk").first().pk
    assert DailyRollup.objects.filter(model_version=version).exists()
    assert PredictionLog.objects.filter(model_version=version).count() == 3 * 150
    assert_matches_scan(version)
