"""The image's own command, gunicorn with bmiproject/gunicorn.conf.py, run against the test database.

The command is read from the Dockerfile's CMD (they cannot drift) and started as a subprocess,
outside a container, with the production task definition's environment, the way ECS starts the
container: fast, on the test database, and with its failure paths. tests/container runs the same
command inside the built image. The smoke test then checks it end to end, and SIGTERM (what ECS sends to stop a
task) must end it cleanly.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from io import StringIO
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command

from predictor.management.commands.smoke_test import BATCH_BMI, SINGLE_BMI
from predictor.models import PredictionLog
from tests.conftest import token_for
from tests.deploy._helpers import ROOT, environment, image_command, rendered_task_definition

pytestmark = [pytest.mark.gunicorn, pytest.mark.slow]

# Generous: two workers import Django and NumPy on a shared 2-core machine.
START_DEADLINE_SECONDS = 60


@pytest.fixture(scope="session")
def collected_static(tmp_path_factory) -> Path:
    # As the image build does: the manifest storage needs it, or {% static %} fails with DEBUG off.
    root = tmp_path_factory.mktemp("staticfiles")
    env = {**os.environ, "STATIC_ROOT": str(root), "DJANGO_SETTINGS_MODULE": "bmiproject.settings"}
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--no-input", "-v", "0"],
        cwd=ROOT,
        env=env,
        check=True,
    )
    return root


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def database_url() -> str:
    db = settings.DATABASES["default"]
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    return f"postgres://{db['USER']}{password}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


class Server:
    def __init__(self, process: subprocess.Popen, url: str, log: Path):
        self.process, self.url, self.log = process, url, log

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def get(self, path: str, headers: dict | None = None):
        request = urllib.request.Request(self.url + path, headers=headers or {})
        opener = urllib.request.build_opener(_NoRedirect)
        try:
            with opener.open(request, timeout=10) as response:
                return response.status, response.headers, response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.headers, exc.read()

    def stop(self) -> int:
        """SIGTERM, as ECS sends it; returns gunicorn's exit status."""
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=60)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


@contextmanager
def image_server(tmp_path: Path, static_root: Path, *, ready_path: str = "/readyz", **overrides: str):
    port = free_port()
    command = image_command()
    # The image's PATH puts its virtualenv first; here that is the interpreter running the tests.
    command[0] = str(Path(sys.executable).with_name(command[0]))
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "DJANGO_SETTINGS_MODULE": "bmiproject.settings",  # the Dockerfile's ENV
        "PYTHONUNBUFFERED": "1",
        **environment(rendered_task_definition("production")),
        # What differs from ECS: secrets, the test database, this machine's address and size.
        "SECRET_KEY": "gunicorn-test-" + "k" * 50,
        "DATABASE_URL": database_url(),
        "ALLOWED_HOSTS": "127.0.0.1,bmi.example.com",
        "PORT": str(port),
        "WEB_CONCURRENCY": "2",
        "STATIC_ROOT": str(static_root),
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prometheus"),
        **overrides,
    }
    log = tmp_path / "gunicorn.log"
    with log.open("wb") as log_file:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log_file, stderr=subprocess.STDOUT)
    server = Server(process, f"http://127.0.0.1:{port}", log)
    try:
        _wait_until_answering(server, ready_path)
        yield server
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=30)


def _wait_until_answering(server: Server, path: str) -> None:
    deadline = time.monotonic() + START_DEADLINE_SECONDS
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            pytest.fail(f"gunicorn exited with {server.process.returncode}:\n{server.output()}")
        try:
            if server.get(path)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    pytest.fail(f"gunicorn did not answer {path} with 200 within {START_DEADLINE_SECONDS} s:\n{server.output()}")


def assert_graceful_exit(server: Server) -> None:
    status = server.stop()
    output = server.output()
    assert status == 0, output
    assert "Handling signal: term" in output and "Shutting down: Master" in output
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", int(server.url.rsplit(":", 1)[1])), timeout=2).close()


def test_image_command_serves_the_app_and_passes_the_smoke_test(
    transactional_db, active_version, staff_user, tmp_path, collected_static
):
    token = token_for(staff_user)
    # TLS is the load balancer's job; locally the server is reached over plain HTTP.
    with image_server(tmp_path, collected_static, SECURE_SSL_REDIRECT="0") as server:
        out = StringIO()
        call_command("smoke_test", url=server.url, token=token, stdout=out)
        report = out.getvalue()
        assert len(re.findall(r"^PASS ", report, flags=re.M)) == 6, report
        assert "Smoke test passed: 6 of 6 checks." in report

        # The server wrote to the test database: one single prediction and the batch, one entry each.
        single = PredictionLog.objects.get(channel="api")
        assert (single.model_version_id, single.bmi) == (active_version.version, [SINGLE_BMI])
        batch = PredictionLog.objects.get(channel="batch")
        assert (batch.model_version_id, batch.bmi) == (active_version.version, list(BATCH_BMI))

        # A chunked body (no Content-Length) would reach Django as an empty one: 411, naming why.
        raw = http.client.HTTPConnection(*server.url.removeprefix("http://").split(":"), timeout=10)
        raw.request(
            "POST", "/api/v1/predict", body=iter([b'{"bmi": ', b"27.4}"]), headers={"Content-Type": "application/json"}
        )
        chunked = raw.getresponse()
        assert chunked.status == 411
        assert "Content-Length" in json.loads(chunked.read())["error"]["message"]
        raw.close()
        assert PredictionLog.objects.count() == 2  # the chunked request logged nothing

        # Behind the load balancer (X-Forwarded-Proto: https) the security headers are all there.
        status, headers, _ = server.get("/", {"X-Forwarded-Proto": "https", "Host": "bmi.example.com"})
        assert status == 200
        assert headers["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains; preload"
        assert headers["X-Frame-Options"] == "DENY"
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["Referrer-Policy"] == "same-origin"
        cookies = headers.get_all("Set-Cookie") or []
        assert cookies and all("Secure" in cookie for cookie in cookies), cookies

        # Static files come from whitenoise, hashed and compressed, with a far-future cache.
        status, headers, _ = server.get("/docs")
        static_path = re.search(rb'(/static/[^"\']+\.js)', _).group(1).decode()
        status, headers, _ = server.get(static_path, {"Accept-Encoding": "gzip"})
        assert status == 200 and "max-age=315360000" in headers["Cache-Control"]

        assert_graceful_exit(server)
    output = server.output()
    # In ECS the nginx sidecar writes each request's access line; the task definition turns
    # gunicorn's off (GUNICORN_ACCESS_LOG), so a request is logged once.
    assert "/api/v1/predict HTTP/1.1" not in output, "no access line from gunicorn with the task's environment"
    assert "Using worker: gthread" in output


def test_image_command_redirects_to_https_except_health_probes(
    transactional_db, active_version, tmp_path, collected_static
):
    token = "per-task-scrape-token"
    # Access lines on, as for a container run without nginx in front (the default outside ECS).
    with image_server(tmp_path, collected_static, PREDICTOR_METRICS_TOKEN=token, GUNICORN_ACCESS_LOG="1") as server:
        for probe in ("/healthz", "/readyz"):
            assert server.get(probe)[0] == 200, probe
        # Prometheus scrapes each task by its IP over HTTP: neither ALLOWED_HOSTS nor the redirect apply.
        task = {"Host": "10.0.3.17:8000"}
        status, _, body = server.get("/metrics", {**task, "Authorization": f"Bearer {token}"})
        assert status == 200 and b"bmi_model_active_version" in body
        assert server.get("/metrics", task)[0] == 400  # no token: the normal stack, which refuses the host
        status, headers, _ = server.get("/api/v1/models/active", {"Host": "bmi.example.com"})
        assert status == 301 and headers["Location"] == "https://bmi.example.com/api/v1/models/active"
        status, headers, _ = server.get(
            "/api/v1/models/active", {"Host": "bmi.example.com", "X-Forwarded-Proto": "https"}
        )
        assert status == 200 and "Strict-Transport-Security" in headers
        # Each answer's access line on stdout: the client, the request, status, size and duration.
        assert re.search(r'^- 127\.0\.0\.1 "GET /api/v1/models/active HTTP/1\.1" 301 0 \d+ms "', server.output(), re.M)

        # The smoke test pointed at the wrong scheme says so, and fails.
        out = StringIO()
        with pytest.raises(CommandError, match=r"Smoke test failed: 4 of 6 checks"):
            call_command("smoke_test", url=server.url, token="unused", stdout=out)
        report = out.getvalue()
        assert re.search(r"^PASS\s+healthz", report, flags=re.M)
        assert re.search(
            r"^FAIL\s+predict\s+.*-> 301 redirect to 'https://127\.0\.0\.1:\d+/api/v1/predict'", report, flags=re.M
        ), report
        assert_graceful_exit(server)


def test_smoke_test_fails_readably_without_an_active_model(transactional_db, tmp_path, collected_static):
    with image_server(tmp_path, collected_static, ready_path="/healthz", SECURE_SSL_REDIRECT="0") as server:
        out = StringIO()
        with pytest.raises(
            CommandError, match=r"Smoke test failed: 4 of 6 checks \(readyz, predict, batch, prediction log\)"
        ):
            call_command("smoke_test", url=server.url, skip_log_check=False, stdout=out)
        report = out.getvalue()
        assert re.search(
            r"^FAIL\s+readyz\s+GET /readyz -> 503, expected 200: .*no model version is active", report, flags=re.M
        ), report
        assert re.search(r"^FAIL\s+predict\s+.*-> 503", report, flags=re.M), report
        assert re.search(r"^PASS\s+docs", report, flags=re.M), report
        assert re.search(r"^FAIL\s+prediction log\s+no staff token", report, flags=re.M), report
        assert_graceful_exit(server)
    assert PredictionLog.objects.count() == 0


def test_smoke_test_fails_readably_against_a_dead_port():
    out = StringIO()
    with pytest.raises(CommandError, match=r"Smoke test failed: 5 of 5 checks"):
        call_command("smoke_test", url=f"http://127.0.0.1:{free_port()}", skip_log_check=True, stdout=out)
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("Smoke test of http://127.0.0.1:")
    assert len(lines) == 6 and all("cannot connect to http://127.0.0.1:" in line for line in lines[1:]), lines


def test_smoke_test_refuses_a_url_that_is_not_http():
    with pytest.raises(CommandError, match="must start with http:// or https://"):
        call_command("smoke_test", url="file:///etc/passwd", stdout=StringIO())
