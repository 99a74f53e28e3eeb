"""Fixtures of the container test: the image built from the real Dockerfile, a database of its
own, and the image run the way ECS runs deploy/ecs/production.json.

Environment: CONTAINER_ENGINE (podman, docker), PYTHON_IMAGE (the base image; unset: the local
Debian base made by deploy/container/debian-base-image.sh), CONTAINER_IMAGE (an image already built:
test it instead of building one), DATABASE_URL (where PostgreSQL is; the test uses a database of
its own next to that one).
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import psycopg2
import pytest

from tests.container.engine import BUILD_TIMEOUT_SECONDS, Engine, engine_or_skip
from tests.deploy._helpers import ROOT, container, environment, rendered_task_definition

# Two or three workers importing Django, NumPy and scikit-learn on a shared 2-core machine.
START_DEADLINE_SECONDS = 120
WORKERS = 2
# The last image built here, kept as the build cache of the next run on this machine.
CACHE_TAG = "localhost/bmi-progression:container-test-cache"
# The one-off tasks' and the service's secrets (SSM in ECS), by name: a new secret in the task
# definition fails here until the test gives it a value.
SECRET_VALUES = {
    "SECRET_KEY": "container-test-" + "k" * 50,
    "PREDICTOR_METRICS_TOKEN": "container-test-metrics-token",
}


@pytest.fixture(scope="session")
def engine() -> Engine:
    return engine_or_skip()


@pytest.fixture(scope="session")
def image(engine) -> str:
    """The image under test: CONTAINER_IMAGE, or one built now from the Dockerfile (removed afterwards)."""
    if os.environ.get("CONTAINER_IMAGE"):
        yield os.environ["CONTAINER_IMAGE"]
        return
    base = os.environ.get("PYTHON_IMAGE") or _debian_base_image(engine)
    # A tag of its own: other checkouts on this machine may build theirs at the same time.
    tag = f"localhost/bmi-progression:test-{uuid.uuid4().hex[:12]}"
    engine(
        "build", *engine.build_options(), "--build-arg", f"PYTHON_IMAGE={base}", "--tag", tag, str(ROOT),
        timeout=BUILD_TIMEOUT_SECONDS,
    )  # fmt: skip
    yield tag
    # This build becomes the next run's layer cache (the virtualenv's 300 MB layer above all) in
    # place of the one before it. rmi without --force leaves an image another run still uses.
    previous = engine.image_id(CACHE_TAG)
    engine("tag", tag, CACHE_TAG)
    engine("rmi", tag)  # only the tag: CACHE_TAG names the image now
    if previous and previous != engine.image_id(CACHE_TAG):
        engine("rmi", previous, check=False)


def _debian_base_image(engine: Engine) -> str:
    script = ROOT / "deploy" / "container" / "debian-base-image.sh"
    result = subprocess.run(
        ["bash", str(script)],
        env={**os.environ, "CONTAINER_ENGINE": engine.name},
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT_SECONDS,
        check=False,
    )
    if result.returncode != 0:
        pytest.fail(f"{script.name} exited {result.returncode}:\n{result.stderr[-6000:]}")
    return result.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="session")
def database_url() -> str:
    """A database of this test's own, created empty and dropped afterwards, on DATABASE_URL's server."""
    server = urlsplit(os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/bmi"))
    name = (server.path.strip("/") or "bmi") + "_container"
    with _admin_connection(server) as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        cursor.execute(f'CREATE DATABASE "{name}"')
    url = urlunsplit(server._replace(path=f"/{name}"))
    yield url
    with _admin_connection(server) as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def _admin_connection(server):
    connection = psycopg2.connect(
        host=server.hostname or "127.0.0.1",
        port=server.port or 5432,
        user=server.username or "postgres",
        password=server.password or None,
        dbname="postgres",
    )
    connection.autocommit = True  # CREATE/DROP DATABASE refuse to run in a transaction
    try:
        yield connection.cursor()
    finally:
        connection.close()


@pytest.fixture
def query(database_url):
    """``query(sql, params)``: rows from the container's database, as the test sees PostgreSQL."""

    def _query(sql: str, params: tuple = ()) -> list[tuple]:
        with psycopg2.connect(database_url) as connection, connection.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchall()

    return _query


@dataclass(frozen=True)
class Task:
    """What ECS takes from the task definition to start the web container, for this machine."""

    definition: dict
    web: dict
    env: dict[str, str]

    def run_options(self, engine: Engine) -> list[str]:
        web = self.web
        options = ["--user", web["user"], *engine.run_options()]
        if web["readonlyRootFilesystem"]:
            options.append("--read-only")
        # The task volumes (the Prometheus files' /tmp) become tmpfs; /dev/shm is the engine's tmpfs.
        options += [item for mount in web["mountPoints"] for item in ("--tmpfs", mount["containerPath"])]
        if web["linuxParameters"]["initProcessEnabled"]:
            options.append("--init")  # signals reach gunicorn through an init, as ECS does it
        options += [item for name, value in self.env.items() for item in ("--env", f"{name}={value}")]
        return options


@pytest.fixture(scope="session")
def task(database_url) -> Task:
    definition = rendered_task_definition("production")
    web = container(definition)
    secrets = {item["name"]: (database_url if item["name"] == "DATABASE_URL" else SECRET_VALUES[item["name"]])
               for item in web["secrets"]}  # fmt: skip
    env = {
        **environment(definition),
        **secrets,
        # What differs from ECS: this machine's address, a free port and its size. TLS ends at the
        # load balancer; here the server is reached over plain HTTP, so no redirect to https.
        "ALLOWED_HOSTS": environment(definition)["ALLOWED_HOSTS"] + ",127.0.0.1",
        "PORT": str(_free_port()),
        "WEB_CONCURRENCY": str(WORKERS),
        "SECURE_SSL_REDIRECT": "0",
    }
    return Task(definition, web, env)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def one_offs(engine, image, task) -> dict[str, str]:
    """migrate, then train, each a container of its own that exits (deploy/ecs/run-task.sh); their output."""
    outputs = {}
    for name, command in (("migrate", ["migrate", "--no-input"]), ("train", ["train"])):
        outputs[name] = engine("run", "--rm", *task.run_options(engine), image, "python", "manage.py", *command)
    return outputs


@dataclass
class Service:
    engine: Engine
    name: str
    url: str
    port: int

    def logs(self) -> str:
        return self.engine("logs", self.name)

    def running(self) -> bool:
        return self.engine("inspect", "--format", "{{.State.Running}}", self.name).strip() == "true"

    def get(self, path: str) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(self.url + path, timeout=10) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def post_json(self, path: str, payload) -> tuple[int, dict]:
        request = urllib.request.Request(
            self.url + path, data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    def manage(self, *command: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        """``python manage.py ...`` inside the running container, as ECS Exec runs it."""
        return self.engine.exec(self.name, "python", "manage.py", *command, env=env)


@pytest.fixture(scope="session")
def service(engine, image, task, one_offs) -> Service:
    """The image's own command, detached, answering /readyz (an active model: train ran)."""
    name = f"bmi-container-test-{uuid.uuid4().hex[:12]}"
    port = int(task.env["PORT"])
    engine("run", "--detach", "--name", name, *task.run_options(engine), image)
    service = Service(engine, name, f"http://127.0.0.1:{port}", port)
    try:
        _wait_until_ready(service)
        yield service
    finally:
        engine("rm", "--force", name)


def _wait_until_ready(service: Service) -> None:
    deadline = time.monotonic() + START_DEADLINE_SECONDS
    while time.monotonic() < deadline:
        if not service.running():
            pytest.fail(f"the container exited before answering /readyz:\n{service.logs()}")
        try:
            if service.get("/readyz")[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.5)
    pytest.fail(f"no 200 from /readyz within {START_DEADLINE_SECONDS} s:\n{service.logs()}")


@pytest.fixture(scope="session")
def service_mounts(engine, service) -> list[tuple[str, str, list[str]]]:
    """(mount point, filesystem type, options) inside the running container, from /proc/mounts."""
    result = engine.exec(service.name, "cat", "/proc/mounts")
    assert result.returncode == 0, result.stderr
    mounts = []
    for line in result.stdout.splitlines():
        _, target, fstype, options, *_ = line.split()
        mounts.append((re.sub(r"\\040", " ", target), fstype, options.split(",")))
    return mounts
