"""The processes of the parallel rollup test (tests/monitoring/test_rollup_race.py).

    python -m tests.monitoring.rollup_race writer VERSION COUNT SEED
    python -m tests.monitoring.rollup_race folder STOP_FILE
    python -m tests.monitoring.rollup_race reader VERSION STOP_FILE

A writer logs predictions through the serving path (single ones and batches) and records outcomes
for earlier ones, in random order; a folder folds until the stop file exists; a reader checks,
until then, that the figures (rollups plus tail) equal a count of the raw rows in the same
snapshot. Each prints one line "<role> <count>" and exits 0, or exits 1 naming the mismatch.
"""

from __future__ import annotations

import os
import random
import sys
import time
from pathlib import Path

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bmiproject.settings")


def writer(count: int, seed: int) -> int:
    from django.db import transaction

    from predictor.predictions import services, serving

    rng = random.Random(seed)
    logged: list[tuple[int, int]] = []  # (entry id, size)
    outcomes = 0
    for i in range(count):
        # Now and then the write commits late, as a big batch or an outcome import on a busy
        # database does: its id is drawn while later ids commit. A fold must wait for it.
        slow = i % 5 == 0
        with transaction.atomic():
            if i % 7 == 0:
                result = serving.predict([rng.uniform(18, 42) for _ in range(rng.randint(2, 30))], channel="batch")
            else:
                result = serving.predict([rng.uniform(18, 42)], channel="api")
            if slow:
                time.sleep(rng.uniform(0.005, 0.05))
        logged.append((result.log_id, len(result.predictions)))
        if rng.random() < 0.6:
            # Outcomes of earlier predictions, in no order; a taken position is simply refused.
            log_id, size = rng.choice(logged)
            try:
                with transaction.atomic():
                    services.outcome_record(
                        prediction_id=log_id, position=rng.randrange(size), observed=rng.uniform(25, 346), source="race"
                    )
                    if slow:
                        time.sleep(rng.uniform(0.005, 0.05))
                outcomes += 1
            except services.OutcomeExists:
                pass
    return len(logged) + outcomes


def folder(stop: Path) -> int:
    from predictor.monitoring import rollups

    folds = 0
    deadline = time.monotonic() + 300
    while not stop.exists() and time.monotonic() < deadline:
        rollups.rollups_fold(wait_seconds=20)
        folds += 1
        time.sleep(0.01)
    return folds


def reader(version_number: int, stop: Path) -> int:
    from django.db import connection, transaction

    from predictor.monitoring import stats
    from predictor.registry.models import ModelVersion

    version = ModelVersion.objects.get(pk=version_number)
    reads = 0
    deadline = time.monotonic() + 300
    while not stop.exists() and time.monotonic() < deadline:
        with transaction.atomic(), connection.cursor() as cursor:
            # One snapshot for both: the figures and the raw rows they must add up to.
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            quality = stats.version_quality(version)
            cursor.execute(
                "SELECT coalesce(sum(size), 0), count(*) FROM predictor_predictionlog WHERE model_version_id = %s",
                [version_number],
            )
            predictions, _ = cursor.fetchone()
            cursor.execute(
                "SELECT count(*) FROM predictor_outcome AS o JOIN predictor_predictionlog AS log ON log.id = o.log_id "
                "WHERE log.model_version_id = %s",
                [version_number],
            )
            (outcomes,) = cursor.fetchone()
        found = (quality.n_predictions, sum(quality.served_counts), quality.n_outcomes)
        if found != (predictions, predictions, outcomes):
            print(f"reader mismatch: figures {found}, raw rows {(predictions, predictions, outcomes)}", flush=True)
            sys.exit(1)
        reads += 1
    return reads


def main(argv: list[str]) -> None:
    import django

    django.setup()
    role = argv[0]
    if role == "writer":
        done = writer(int(argv[2]), int(argv[3]))
    elif role == "folder":
        done = folder(Path(argv[1]))
    elif role == "reader":
        done = reader(int(argv[1]), Path(argv[2]))
    else:
        raise SystemExit(f"unknown role {role!r}")
    print(f"{role} {done}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
