"""The nginx sidecar's image (deploy/nginx), built and run as ECS runs it in front of the service.

Read-only root filesystem with a tmpfs for its /tmp volume, user 101, an init, the task
definition's nofile limit, started once the web container answers (dependsOn HEALTHY). What
tests/deploy/test_nginx.py shows with Debian's nginx outside containers (slow clients, every error
shape), this shows for the image: its configuration, health check and user, and the path a
request takes through it to the app container. Stopping it: test_stop.py.
"""

from __future__ import annotations

import json
import re

import pytest

from tests.container.conftest import LOG_ROW_SQL
from tests.deploy._helpers import NGINX_CONF

pytestmark = [pytest.mark.container, pytest.mark.slow]

HEALTH_URL = "http://127.0.0.1:8080/nginx-health"
# The load balancer's request: its Host, https, and the client's address it appends.
FROM_THE_BALANCER = {"Host": "bmi.example.com", "X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.7"}


def test_nginx_image_carries_the_config_and_its_nginx_accepts_it(engine, nginx_image, task):
    """The image's own /etc/nginx/nginx.conf (the proxy fixture mounts a port-substituted copy over it)."""
    run = ["run", "--rm", *task.run_options(engine, "nginx"), "--entrypoint"]
    assert engine(*run, "cat", nginx_image, "/etc/nginx/nginx.conf") == NGINX_CONF.read_text()
    # As uid 101 on the read-only root: an error fails the run; -q leaves only warnings to print.
    assert engine(*run, "nginx", nginx_image, "-t", "-q") == ""


def test_nginx_image_healthcheck_command_passes_in_the_sidecar(engine, nginx_image, task, proxy):
    kind, *command = engine.image_healthcheck(nginx_image)["Test"]
    # The build kept the HEALTHCHECK, and ECS runs the same command.
    assert [kind, *command] == task.nginx["healthCheck"]["command"]
    # The same command on the test's port: the one change, checked to happen once.
    assert command.count(HEALTH_URL) == 1, command

    def asking(url: str) -> list[str]:
        return [url if arg == HEALTH_URL else arg for arg in command]

    result = engine.exec(proxy.name, *asking(f"http://127.0.0.1:{proxy.port}/nginx-health"))
    assert result.returncode == 0, result.stdout + result.stderr
    # And it fails on an error status (a 404 from the app), so it is not a command that always passes.
    assert engine.exec(proxy.name, *asking(f"http://127.0.0.1:{proxy.port}/no-such-health")).returncode != 0


def test_every_nginx_process_runs_as_uid_101(engine, proxy, task):
    # No Python in this image: the status files through the shell both bases have.
    result = engine.exec(proxy.name, "sh", "-c", "cat /proc/[0-9]*/status")
    assert result.returncode == 0, result.stderr
    uids = [line.split()[1:] for line in result.stdout.splitlines() if line.startswith("Uid:")]
    uid = task.nginx["user"].split(":")[0]
    assert uid == "101"
    # The init, nginx's master and at least one worker (and the shell and cat of this check).
    assert len(uids) >= 3 and all(found == [uid] * 4 for found in uids), uids


def test_a_prediction_through_nginx_is_answered_and_logged(service, proxy, query):
    status, body = proxy.post_json("/api/v1/predict?through-nginx", {"bmi": 27.2}, headers=FROM_THE_BALANCER)
    assert status == 200, body
    assert query(LOG_ROW_SQL, (body["prediction_id"],)) == [
        (27.2, pytest.approx(body["prediction"]), 1, body["model_version"], "api")
    ]
    # nginx's access line has it, with the balancer's X-Forwarded-For unchanged (nginx's peer address
    # second, from its log format) and gunicorn's status and time. It is the request's only access
    # line: the task definition turns gunicorn's off (GUNICORN_ACCESS_LOG).
    line = '203.0.113.7 127.0.0.1 "POST /api/v1/predict?through-nginx HTTP/1.1" 200'
    assert re.search(re.escape(line) + r" \d+ [\d.]+s upstream=200 [\d.]+s ", proxy.wait_for_log(line))


def test_x_forwarded_proto_from_the_balancer_reaches_django_unchanged(service, proxy):
    # HSTS is sent on secure requests only: Django took the balancer's https as the scheme.
    status, headers, body = proxy.request("GET", "/api/v1/models/active", headers=FROM_THE_BALANCER)
    assert status == 200, body
    assert headers["Strict-Transport-Security"].startswith("max-age=")
    # And plain http stays http (nginx does not put its own scheme, or https, in its place).
    status, headers, body = proxy.request(
        "GET", "/api/v1/models/active", headers={**FROM_THE_BALANCER, "X-Forwarded-Proto": "http"}
    )
    assert status == 200 and "Strict-Transport-Security" not in headers, (status, dict(headers))


def test_errors_nginx_makes_under_api_are_json_and_pages_elsewhere(proxy):
    # Above client_max_body_size (Django's limit): refused by nginx before gunicorn sees it.
    too_big = b"[" + b"27.4," * 210_000 + b"27.4]"
    assert len(too_big) > 1024 * 1024
    headers = {**FROM_THE_BALANCER, "Content-Type": "application/json"}
    status, answer_headers, body = proxy.request("POST", "/api/v1/predict/batch", headers=headers, body=too_big)
    assert status == 413 and answer_headers["Content-Type"].startswith("application/json"), (status, body)
    assert json.loads(body)["error"] == {
        "status": 413,
        "code": "payload_too_large",
        "message": "Request body is too large.",
    }
    status, answer_headers, body = proxy.request("POST", "/", headers=FROM_THE_BALANCER, body=too_big)
    assert status == 413 and answer_headers["Content-Type"].startswith("text/html") and b"<html>" in body
