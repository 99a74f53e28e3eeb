"""Fixtures of the container test: the images built from the real Dockerfiles (the app's and the
nginx sidecar's), a database of its own, and both run the way ECS runs deploy/ecs/production.json.

Environment: CONTAINER_ENGINE (podman, docker), PYTHON_IMAGE and NGINX_BASE_IMAGE (the base
images; unset: the local Debian stand-ins made by deploy/container/debian-base-image.sh),
CONTAINER_IMAGE and CONTAINER_NGINX_IMAGE (images already built: test them instead of building
them), DATABASE_URL (where PostgreSQL is; the test uses a database of its own next to that one).
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
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg2
import pytest

from tests.container.engine import BUILD_TIMEOUT_SECONDS, Engine, engine_or_skip
from tests.deploy._helpers import (
    DOCKERFILE,
    NGINX_DOCKERFILE,
    ROOT,
    container,
    environment,
    nginx_config,
    rendered_task_definition,
)

# Two or three workers importing Django, NumPy and scikit-learn on a shared 2-core machine.
START_DEADLINE_SECONDS = 120
WORKERS = 2
# The last image built here, kept as the build cache of the next run on this machine.
CACHE_TAG = "localhost/bmi-progression:container-test-cache"
# The single prediction's row in the log: the one place that knows the log's table.
LOG_ROW_SQL = (
    "SELECT bmi[1], predictions[1], size, model_version_id, channel FROM predictor_predictionlog WHERE id = %s"
)
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
    tag, built = _prebuilt_or_build(
        engine, prebuilt="CONTAINER_IMAGE", base_argument="PYTHON_IMAGE", flavour="python", dockerfile=DOCKERFILE
    )
    yield tag
    if not built:
        return
    # This build becomes the next run's layer cache (the virtualenv's 300 MB layer above all) in
    # place of the one before it. rmi without --force leaves an image another run still uses.
    previous = engine.image_id(CACHE_TAG)
    engine("tag", tag, CACHE_TAG)
    engine("rmi", tag)  # only the tag: CACHE_TAG names the image now
    if previous and previous != engine.image_id(CACHE_TAG):
        engine("rmi", previous, check=False)


@pytest.fixture(scope="session")
def nginx_image(engine) -> str:
    """The sidecar's image: CONTAINER_NGINX_IMAGE, or one built now from deploy/nginx (removed afterwards).

    Its build is one COPY on the base, a second on a warm engine, so no cache tag is kept.
    """
    tag, built = _prebuilt_or_build(
        engine,
        prebuilt="CONTAINER_NGINX_IMAGE",
        base_argument="NGINX_BASE_IMAGE",
        flavour="nginx",
        dockerfile=NGINX_DOCKERFILE,
    )
    yield tag
    if built:
        engine("rmi", tag, check=False)


def _prebuilt_or_build(engine: Engine, *, prebuilt: str, base_argument: str, flavour: str, dockerfile: Path):
    """(tag, built now): the image the variable ``prebuilt`` names, or one built from dockerfile.

    The build's base is its build argument base_argument: the environment variable of that name,
    else the local Debian stand-in of that flavour (deploy/container/debian-base-image.sh).
    """
    if os.environ.get(prebuilt):
        return os.environ[prebuilt], False
    base = os.environ.get(base_argument) or _debian_base_image(engine, flavour)
    # A tag of its own: other checkouts on this machine may build theirs at the same time.
    tag = f"localhost/bmi-progression-{flavour}:test-{uuid.uuid4().hex[:12]}"
    engine(
        "build", *engine.build_options(), "--build-arg", f"{base_argument}={base}", "--tag", tag,
        "--file", str(dockerfile), str(dockerfile.parent),
        timeout=BUILD_TIMEOUT_SECONDS,
    )  # fmt: skip
    return tag, True


def _debian_base_image(engine: Engine, flavour: str) -> str:
    script = ROOT / "deploy" / "container" / "debian-base-image.sh"
    result = subprocess.run(
        ["bash", str(script), flavour],
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
    """What ECS takes from the task definition to start its containers, for this machine."""

    definition: dict
    web: dict
    nginx: dict
    env: dict[str, str]  # the web container's; nginx has none

    def run_options(self, engine: Engine, name: str = "web") -> list[str]:
        spec = container(self.definition, name)
        ulimits = {limit["name"]: (limit["softLimit"], limit["hardLimit"]) for limit in spec.get("ulimits", [])}
        options = ["--user", spec["user"], *engine.run_options(ulimits)]
        if spec["readonlyRootFilesystem"]:
            options.append("--read-only")
        # The task volumes (each container's /tmp) become tmpfs; /dev/shm is the engine's tmpfs.
        options += [item for mount in spec["mountPoints"] for item in ("--tmpfs", mount["containerPath"])]
        if spec["linuxParameters"]["initProcessEnabled"]:
            options.append("--init")  # signals reach gunicorn and nginx through an init, as ECS does it
        env = self.env if name == "web" else {item["name"]: item["value"] for item in spec.get("environment", [])}
        options += [item for key, value in env.items() for item in ("--env", f"{key}={value}")]
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
    return Task(definition, web, container(definition, "nginx"), env)


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
    """A running container of the task (web or nginx) and its port on this machine."""

    engine: Engine
    name: str
    url: str
    port: int

    def logs(self) -> str:
        return self.engine("logs", self.name)

    def wait_for_log(self, text: str, deadline_seconds: float = 30) -> str:
        """The container's log once it contains text (a line is written just after its answer)."""
        deadline = time.monotonic() + deadline_seconds
        while time.monotonic() < deadline:
            if text in (logs := self.logs()):
                return logs
            time.sleep(0.1)
        pytest.fail(f"{text!r} not in the container's log within {deadline_seconds} s:\n{self.logs()}")

    def running(self) -> bool:
        return self.engine("inspect", "--format", "{{.State.Running}}", self.name).strip() == "true"

    def request(self, method: str, path: str, *, headers=None, body: bytes | None = None):
        """(status, headers, body) of one request; an error status is an answer, not an exception."""
        request = urllib.request.Request(self.url + path, data=body, headers=headers or {}, method=method)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, response.headers, response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.headers, exc.read()

    def get(self, path: str, headers=None) -> tuple[int, bytes]:
        status, _, body = self.request("GET", path, headers=headers)
        return status, body

    def post_json(self, path: str, payload, headers=None) -> tuple[int, dict]:
        headers = {"Content-Type": "application/json", **(headers or {})}
        status, _, body = self.request("POST", path, headers=headers, body=json.dumps(payload).encode())
        return status, json.loads(body)

    def manage(self, *command: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        """``python manage.py ...`` inside the running container, as ECS Exec runs it."""
        return self.engine.exec(self.name, "python", "manage.py", *command, env=env)


@pytest.fixture(scope="session")
def service(engine, image, task, one_offs) -> Service:
    """The image's own command, detached, answering /readyz (an active model: train ran)."""
    with _started(
        engine, "bmi-container-test", int(task.env["PORT"]), "/readyz", *task.run_options(engine), image
    ) as service:
        yield service


@contextmanager
def _started(engine: Engine, prefix: str, port: int, ready_path: str, *run_options: str):
    """A detached container (a unique name: other checkouts run theirs) once ready_path answers 200."""
    name = f"{prefix}-{uuid.uuid4().hex[:12]}"
    engine("run", "--detach", "--name", name, *run_options)
    started = Service(engine, name, f"http://127.0.0.1:{port}", port)
    try:
        _wait_until_answered(started, ready_path)
        yield started
    finally:
        engine("rm", "--force", name)


def _wait_until_answered(service: Service, path: str) -> None:
    deadline = time.monotonic() + START_DEADLINE_SECONDS
    while time.monotonic() < deadline:
        if not service.running():
            pytest.fail(f"the container exited before answering {path}:\n{service.logs()}")
        try:
            if service.get(path)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.5)
    pytest.fail(f"no 200 from {path} within {START_DEADLINE_SECONDS} s:\n{service.logs()}")


@pytest.fixture(scope="session")
def proxy(engine, nginx_image, task, service, tmp_path_factory) -> Service:
    """The nginx sidecar in front of the running service, started once web is healthy (its dependsOn).

    ECS gives the task one localhost: nginx listens on 8080 and reaches gunicorn at 127.0.0.1:8000.
    On this shared machine's network both ports are free ones instead: the image's nginx.conf with
    only those two replaced, mounted read-only over it (test_nginx.py shows that the image's own
    file is the repository's).
    """
    port = _free_port()
    config = tmp_path_factory.mktemp("nginx") / "nginx.conf"
    config.write_text(nginx_config(port=port, upstream_port=service.port))
    config.chmod(0o644)  # read by uid 101
    options = [
        *task.run_options(engine, "nginx"),
        # The image's health check asks port 8080; the test runs it itself, on the test port.
        # (podman's run options leave health checks out already.)
        *([] if engine.is_podman else ["--no-healthcheck"]),
        "--volume", f"{config}:/etc/nginx/nginx.conf:ro",
    ]  # fmt: skip
    with _started(engine, "bmi-container-test-nginx", port, "/nginx-health", *options, nginx_image) as proxy:
        yield proxy


def _mounts(engine: Engine, name: str) -> list[tuple[str, str, list[str]]]:
    """(mount point, filesystem type, options) inside a running container, from /proc/mounts."""
    result = engine.exec(name, "cat", "/proc/mounts")
    assert result.returncode == 0, result.stderr
    mounts = []
    for line in result.stdout.splitlines():
        _, target, fstype, options, *_ = line.split()
        mounts.append((re.sub(r"\\040", " ", target), fstype, options.split(",")))
    return mounts


@pytest.fixture(scope="session")
def service_mounts(engine, service) -> list[tuple[str, str, list[str]]]:
    return _mounts(engine, service.name)


@pytest.fixture(scope="session")
def proxy_mounts(engine, proxy) -> list[tuple[str, str, list[str]]]:
    return _mounts(engine, proxy.name)


def changes_outside(engine: Engine, name: str, mounts, writable: tuple[str, ...]) -> list[list[str]]:
    """The container's filesystem changes (engine diff) outside its writable directories.

    A mount point the engine made (/etc/hosts and its directory, say) is not a write either.
    """
    changes = [line.split(None, 1) for line in engine("diff", name).splitlines() if line.strip()]
    mount_points = {target for target, _, _ in mounts}

    def allowed(path: str) -> bool:
        inside = path in writable or path.startswith(tuple(directory + "/" for directory in writable))
        return inside or path in mount_points or any(point.startswith(path + "/") for point in mount_points)

    return [change for change in changes if not allowed(change[1])]
