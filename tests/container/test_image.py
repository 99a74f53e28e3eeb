"""The production image, built from the Dockerfile and run the way ECS runs it.

Read-only root filesystem, tmpfs for /tmp (the task's volume) and /dev/shm, user 10001, an init
forwarding signals, the production task definition's environment with test secrets; migrate and
train as one-off containers, then the service (the nginx sidecar in front of it: test_nginx.py;
stopping both: test_stop.py). Skipped on a developer's machine without the engine, a failure in
CI. See docs/deployment.md for the same commands by hand.
"""

from __future__ import annotations

import json
import re

import pytest

from tests.container.conftest import LOG_ROW_SQL, WORKERS

pytestmark = [pytest.mark.container, pytest.mark.slow]

# Measured and explained in docs/deployment.md ("Image size"); decimal MB, as the engines print it.
IMAGE_SIZE_BUDGET_MB = 480

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
