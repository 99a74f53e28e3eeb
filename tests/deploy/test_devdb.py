"""The embedded PostgreSQL (bmiproject/devdb.py): one server per data folder, shared, and stopped
by the last process that used it.

Each test runs a server of its own in a fresh folder (not the repository's .pgdata/), started from
real processes, as `make run` and `make test` start it.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import psycopg2
import pytest

from bmiproject.devdb import EmbeddedPostgres
from tests.deploy._helpers import ROOT

pytestmark = pytest.mark.slow

# Prints the URL, then waits for a line on stdin (or its end) before exiting.
USER = (
    "import sys; from pathlib import Path; from bmiproject.devdb import EmbeddedPostgres; "
    "print(EmbeddedPostgres(Path(sys.argv[1])).url(), flush=True); sys.stdin.readline()"
)


@pytest.fixture
def folder():
    # Not pytest's tmp_path: as root the server runs as an unprivileged user, who must be able to
    # enter the folder, and pytest's base folder is private to its owner.
    path = Path(tempfile.mkdtemp(prefix="devdb-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path)


def start_user(folder: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", USER, str(folder)], cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )


def server_pid(folder: Path) -> int | None:
    pid_file = folder / "data" / "postmaster.pid"
    return int(pid_file.read_text().split()[0]) if pid_file.exists() else None


def is_alive(pid: int) -> bool:
    # A stopped server's process may linger as a zombie until whoever adopted it reaps it.
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state not in {"Z", "X"}


def database_of(url: str) -> str:
    with psycopg2.connect(url) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT current_database()")
        return cursor.fetchone()[0]


def test_starting_is_idempotent_the_url_connects_and_the_last_user_stops_the_server(folder):
    server = EmbeddedPostgres(folder)
    url = server.url()
    assert server.url() == url
    assert url.startswith("postgres://postgres:") and "@127.0.0.1:" in url
    assert database_of(url) == "bmi"
    pid = server_pid(folder)
    server.release()
    assert server_pid(folder) is None and not is_alive(pid)


def test_processes_starting_at_once_share_one_server_which_stops_when_the_last_leaves(folder):
    users = [start_user(folder) for _ in range(4)]
    urls = {user.stdout.readline().strip() for user in users}
    assert len(urls) == 1 and database_of(urls.pop()) == "bmi"
    pid = server_pid(folder)
    for user in users[:-1]:
        user.communicate("\n", timeout=30)
    assert is_alive(pid)  # the last user still holds it
    users[-1].communicate("\n", timeout=30)
    assert server_pid(folder) is None and not is_alive(pid)


def test_a_killed_user_leaves_the_server_to_the_next_which_reuses_and_stops_it(folder):
    killed = start_user(folder)
    url = killed.stdout.readline().strip()
    killed.send_signal(signal.SIGKILL)
    killed.wait(timeout=30)
    pid = server_pid(folder)
    assert is_alive(pid)
    server = EmbeddedPostgres(folder)
    assert server.url() == url and server_pid(folder) == pid
    server.release()
    assert not is_alive(pid)
