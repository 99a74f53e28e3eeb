"""The production image, built from the Dockerfile and run the way ECS runs it.

Read-only root filesystem, tmpfs for /tmp (the task's volume) and /dev/shm, user 10001, an init
forwarding signals, the production task definition's environment with test secrets; migrate and
train as one-off containers, then the service. Skipped on a developer's machine without the
engine, a failure in CI. See docs/deployment.md for the same commands by hand.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.container.conftest import WORKERS

pytestmark = [pytest.mark.container, pytest.mark.slow]

# Measured and explained in docs/deployment.md ("Image size"); decimal MB, as the engines print it.
IMAGE_SIZE_BUDGET_MB = 480

# The single prediction's row in the log: the one place that knows the log's table.
LOG_ROW_SQL = (
    "SELECT bmi[1], predictions[1], size, model_version_id, channel FROM predictor_predictionlog WHERE id = %s"
)

# Run inside the container: every process's real, effective, saved and filesystem uid.
PROCESSES_SCRIPT = """
import json, os
processes = []
for pid in filter(str.isdigit, os.listdir("/proc")):
    try:
        status = open(f"/proc/{pid}/status").read()
        command = open(f"/proc/{pid}/cmdline", "rb").read().replace(b"\\0", b" ").decode().strip()
    except OSError:
        continue  # exited meanwhile
    uids = next(line.split()[1:] for line in status.splitlines() if line.startswith("Uid:"))
    processes.append({"pid": int(pid), "uids": uids, "command": command})
print(json.dumps(processes))
"""

# Run inside the container: try to create a file in each directory; the errno's name, or "ok".
WRITE_SCRIPT = """
import errno, json, os, sys
outcome = {}
for directory in sys.argv[1:]:
    try:
        with open(os.path.join(directory, "container-test-probe"), "w") as probe:
            probe.write("x")
        os.remove(probe.name)
        outcome[directory] = "ok"
    except OSError as exc:
        outcome[directory] = errno.errorcode[exc.errno]
print(json.dumps(outcome))
"""

# Run in the image: what the final stage must not carry (build and test tools, packages' test suites).
CONTENTS_SCRIPT = """
import importlib.util, json, os, sys
tools = [name for name in ("pip", "setuptools", "pytest", "hypothesis") if importlib.util.find_spec(name)]
tests = [root for root, dirs, _ in os.walk(sys.prefix) if os.path.basename(root) == "tests"]
print(json.dumps({"tools": tools, "tests": tests}))
"""


def test_migrate_and_train_run_as_one_off_containers(one_offs, service):
    assert "Applying predictor." in one_offs["migrate"], one_offs["migrate"]
    promoted = re.search(r"Version (\d+) promoted", one_offs["train"])
    assert promoted, one_offs["train"]
    # The service, a third container, serves the version the train container promoted.
    status, body = service.get("/readyz")
    assert status == 200 and json.loads(body)["model_version"] == int(promoted.group(1))


def test_image_healthcheck_command_passes_in_the_service(engine, image, service, task):
    kind, *command = engine.image_healthcheck(image)["Test"]
    # The build kept the HEALTHCHECK, and ECS runs the same command.
    assert [kind, *command] == task.web["healthCheck"]["command"]
    result = engine.exec(service.name, *command)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_process_runs_as_uid_10001(engine, service, task):
    result = engine.exec(service.name, "python", "-c", PROCESSES_SCRIPT)
    assert result.returncode == 0, result.stderr
    processes = json.loads(result.stdout)
    uid = task.web["user"].split(":")[0]
    assert uid == "10001"
    assert all(p["uids"] == [uid] * 4 for p in processes), processes
    # The master and its workers (the init's own command line names gunicorn too).
    gunicorns = [p for p in processes if "/bin/gunicorn " in p["command"]]
    assert len(gunicorns) == 1 + WORKERS, processes


def test_root_filesystem_is_read_only_and_only_tmp_and_shm_are_writable(engine, service, service_mounts):
    by_target = {target: (fstype, options) for target, fstype, options in service_mounts}
    assert "ro" in by_target["/"][1]
    for path in ("/tmp", "/dev/shm"):  # noqa: S108 - paths inside the container
        assert by_target[path][0] == "tmpfs" and "rw" in by_target[path][1], by_target[path]
    directories = ["/", "/app", "/app/staticfiles", "/opt/venv", "/etc", "/var/tmp", "/run", "/tmp", "/dev/shm"]  # noqa: S108
    result = engine.exec(service.name, "python", "-c", WRITE_SCRIPT, *directories)
    assert result.returncode == 0, result.stderr
    outcome = json.loads(result.stdout)
    assert {d for d, what in outcome.items() if what == "ok"} == {"/tmp", "/dev/shm"}, outcome  # noqa: S108
    assert {outcome[d] for d in directories[:-2]} <= {"EROFS", "EACCES"}, outcome


def test_smoke_test_passes_inside_the_container_with_a_staff_token(service):
    created = service.manage(
        "createsuperuser", "--no-input", "--username", "smoke", "--email", "smoke@example.com",
        env={"DJANGO_SUPERUSER_PASSWORD": "container-test-password-91"},
    )  # fmt: skip
    assert created.returncode == 0, created.stdout + created.stderr
    issued = service.manage("create_token", "smoke", "--name", "container-test")
    token = re.fullmatch(r"(bmi_[0-9a-f]{64})\n", issued.stdout)  # the secret alone on stdout
    assert token, issued.stdout + issued.stderr
    result = service.manage("smoke_test", "--url", service.url, "--token", token.group(1))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Smoke test passed: 6 of 6 checks." in result.stdout, result.stdout


def test_a_prediction_is_in_the_postgresql_log(service, query):
    status, body = service.post_json("/api/v1/predict", {"bmi": 33.3})
    assert status == 200, body
    assert query(LOG_ROW_SQL, (body["prediction_id"],)) == [
        (33.3, pytest.approx(body["prediction"]), 1, body["model_version"], "api")
    ]


def test_image_fits_its_size_budget_and_carries_no_build_tools(engine, image, task, record_testsuite_property):
    size = engine.image_size(image)
    record_testsuite_property("image_size_bytes", size)  # in the JUnit report: measured, run by run
    assert size <= IMAGE_SIZE_BUDGET_MB * 1_000_000, f"{size / 1e6:.0f} MB > {IMAGE_SIZE_BUDGET_MB} MB"
    output = engine("run", "--rm", *task.run_options(engine), image, "python", "-c", CONTENTS_SCRIPT)
    assert json.loads(output.strip().splitlines()[-1]) == {"tools": [], "tests": []}


# --- Stopping: what ECS does on a deploy or scale-in -------------------------------------------


@dataclass(frozen=True)
class Drained:
    status: int
    body: dict
    exit_code: int
    logs: str


@pytest.fixture(scope="session")
def drained(engine, service, task, service_mounts) -> Drained:
    """SIGTERM (``stop`` with the task's stopTimeout, then SIGKILL) while a request is in flight.

    The request's body is sent in two parts: the server reads the headers and the first part and
    waits for the rest inside the view; the rest is sent only once gunicorn has logged the signal.
    (service_mounts is read before the container stops.)
    """
    body = json.dumps({"bmi": 29.1}).encode()
    head = (
        f"POST /api/v1/predict HTTP/1.1\r\nHost: 127.0.0.1:{service.port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", service.port), timeout=60) as client:
        client.sendall(head + body[:4])
        _wait_until_server_read(service.port, client.getsockname()[1])
        stop_timeout = task.web["stopTimeout"]
        stopping = subprocess.Popen(
            engine.argv("stop", "-t", str(stop_timeout), service.name),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        _wait_for_log(service, "Handling signal: term")
        client.sendall(body[4:])
        response = _read_until_closed(client)
    stopped, _ = stopping.communicate(timeout=stop_timeout + 60)
    assert stopping.returncode == 0, stopped
    head_bytes, _, payload = response.partition(b"\r\n\r\n")
    status = int(head_bytes.split(b" ", 2)[1]) if head_bytes else 0
    exit_code = int(engine("inspect", "--format", "{{.State.ExitCode}}", service.name).strip())
    answer = json.loads(payload) if status == 200 else {"raw": response.decode(errors="replace")}
    return Drained(status, answer, exit_code, service.logs())


def _wait_until_server_read(port: int, client_port: int, deadline_seconds: float = 30) -> None:
    """Until the server's end of the connection has nothing left unread (/proc/net/tcp's rx_queue)."""
    deadline = time.monotonic() + deadline_seconds
    while time.monotonic() < deadline:
        for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
            _, local, remote, _, queues, *_ = line.split()
            ours = int(local.split(":")[1], 16) == port and int(remote.split(":")[1], 16) == client_port
            if ours and int(queues.split(":")[1], 16) == 0:
                return
        time.sleep(0.05)
    pytest.fail(f"the server did not read the request on port {port} within {deadline_seconds} s")


def _wait_for_log(service, text: str, deadline_seconds: float = 30) -> None:
    deadline = time.monotonic() + deadline_seconds
    while time.monotonic() < deadline:
        if text in service.logs():
            return
        time.sleep(0.1)
    pytest.fail(f"{text!r} not in the container's log within {deadline_seconds} s:\n{service.logs()}")


def _read_until_closed(client: socket.socket) -> bytes:
    chunks = []
    while chunk := client.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def test_sigterm_lets_the_in_flight_request_finish_and_the_container_exit_0(drained, query):
    assert drained.status == 200, drained.body
    (row,) = query(LOG_ROW_SQL, (drained.body["prediction_id"],))
    assert row[0] == 29.1
    # In flight when the signal came: its access log line follows gunicorn's "Handling signal".
    logs = drained.logs
    assert logs.rfind('"POST /api/v1/predict HTTP/1.1" 200') > logs.index("Handling signal: term"), logs
    assert drained.exit_code == 0, logs  # 137 would be the engine's SIGKILL at stopTimeout
    # Each worker finished and left on its own, inside gunicorn's graceful timeout (after which
    # the master kills the workers left and logs it).
    assert logs.count("Worker exiting") == WORKERS, logs
    assert "SIGKILL" not in logs and "Shutting down: Master" in logs, logs


def test_nothing_was_written_outside_tmp_and_dev_shm(engine, service, drained, service_mounts):
    changes = [line.split(None, 1) for line in engine("diff", service.name).splitlines() if line.strip()]
    mount_points = {target for target, _, _ in service_mounts}

    def allowed(path: str) -> bool:
        # Writable tmpfs, or a mount point the engine made (/etc/hosts and its directory, say).
        inside = path.startswith(("/tmp/", "/dev/shm/")) or path in ("/tmp", "/dev/shm")  # noqa: S108
        return inside or path in mount_points or any(point.startswith(path + "/") for point in mount_points)

    assert [change for change in changes if not allowed(change[1])] == [], changes
