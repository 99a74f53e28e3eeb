"""Registry changes from several processes at once: `manage.py promote/rollback/train` on PostgreSQL.

tests/services/test_concurrency.py races threads of one process; here each call is its own
process, as when two operators (or a deploy job and an operator) run commands at the same moment.
Each waits until all have loaded Django (a barrier of files), so the commands really overlap.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from pathlib import Path

import pytest

from predictor.models import ModelVersion, PromotionEvent
from tests.deploy.test_gunicorn import database_url

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
# Load Django first, then wait until every process has (a barrier of files), then run the command.
LAUNCHER = """
import os, sys, time, django
django.setup()
from django.core.management import call_command
from django.core.management.base import CommandError
barrier, count = sys.argv[1], int(sys.argv[2])
open(os.path.join(barrier, str(os.getpid())), "w").close()
deadline = time.monotonic() + 120
while len(os.listdir(barrier)) < count and time.monotonic() < deadline:
    time.sleep(0.005)
try:
    call_command(*sys.argv[3:])
except CommandError as exc:
    print(f"refused: {exc}", file=sys.stderr)
    sys.exit(3)
"""


def _run_all_at_once(commands: list[list[str]], barrier: Path) -> list[tuple[list[str], int, str]]:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "bmiproject.settings_test",
        "DATABASE_URL": database_url(),
        "CONN_MAX_AGE": "0",
    }
    processes = [
        (
            command,
            subprocess.Popen(
                [sys.executable, "-c", LAUNCHER, str(barrier), str(len(commands)), *command],
                cwd=ROOT,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            ),
        )
        for command in commands
    ]
    results = []
    for command, process in processes:
        out, err = process.communicate(timeout=120)
        results.append((command, process.returncode, out + err))
    return results


def test_concurrent_commands_from_many_processes_leave_one_active_version_and_an_exact_audit_trail(
    train_version, tmp_path
):
    first = train_version(promote=True)
    candidates = [train_version(promote=False, random_state=seed).version for seed in range(1, 5)]
    events_before = PromotionEvent.objects.count()

    commands = [["promote", str(v)] for v in candidates]
    commands += [["promote", str(candidates[0])]]  # a duplicate: at most one of the two can win
    commands += [["rollback"]] * 4
    commands += [["train", "--seed", str(seed)] for seed in (11, 12)]
    results = _run_all_at_once(commands, tmp_path)

    crashed = [r for r in results if r[1] not in (0, 3)]
    assert crashed == [], crashed  # every process either succeeded or was refused with a reason
    succeeded = [command for command, code, _ in results if code == 0]
    refused = [(command, output) for command, code, output in results if code == 3]
    assert all("refused: " in output for _, output in refused)

    assert ModelVersion.objects.filter(status=ModelVersion.Status.ACTIVE).count() == 1
    # One event per successful promote/rollback/promoting train, none for the refused ones.
    events = list(PromotionEvent.objects.order_by("id")[events_before:])
    promotes = sum(1 for c in succeeded if c[0] == "promote")
    rollbacks = sum(1 for c in succeeded if c[0] == "rollback")
    trained = ModelVersion.objects.exclude(version__in=[first.version, *candidates])
    assert trained.count() == 2  # both trainings stored a version, promoted or not
    promoted_by_training = PromotionEvent.objects.filter(action="promote", to_version__in=trained).count()
    assert sum(e.action == "promote" for e in events) == promotes + promoted_by_training
    assert sum(e.action == "rollback" for e in events) == rollbacks
    assert len(events) == promotes + rollbacks + promoted_by_training
    # The trail is one unbroken chain: each change started from the previous change's result.
    for before, after in itertools.pairwise(events):
        assert after.from_version_id == before.to_version_id, (before, after)
    assert ModelVersion.objects.get(status="active").version == events[-1].to_version_id
    assert all(e.actor_name.startswith("cli:") for e in events), [e.actor_name for e in events]
