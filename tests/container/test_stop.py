"""Stopping the task, what ECS does on a deploy or scale-in: nginx first, then web.

ECS stops a task's containers in the reverse order of their dependencies (nginx dependsOn web),
each with its image's stop signal and the task's stopTimeout before SIGKILL. Each gets a request
in flight when the signal comes, which must be answered, and each must exit 0. Runs after
test_image.py and test_nginx.py (file order), which need both containers running.
"""

from __future__ import annotations

import json
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.container.conftest import LOG_ROW_SQL, WORKERS, changes_outside

pytestmark = [pytest.mark.container, pytest.mark.slow]

# The query string is ignored by the API and tells this request's access log line from the others'.
IN_FLIGHT = "/api/v1/predict?in-flight"


@dataclass(frozen=True)
class Drained:
    status: int
    body: dict
    exit_code: int
    logs: str


def _stop_with_a_request_in_flight(engine, container, stop_timeout: int, bmi: float, signal_received) -> Drained:
    """``stop`` (the image's stop signal, SIGKILL after stop_timeout) while a prediction is in flight.

    The request (IN_FLIGHT, a path of its own in nginx's access log) is sent in two parts: the server
    reads the headers and the body's first bytes and waits for the rest, which is sent only once
    signal_received() says the server is stopping.
    """
    body = json.dumps({"bmi": bmi}).encode()
    head = (
        f"POST {IN_FLIGHT} HTTP/1.1\r\nHost: 127.0.0.1:{container.port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", container.port), timeout=60) as client:
        client.sendall(head + body[:4])
        _wait_until_server_read(container.port, client.getsockname()[1])
        stopping = subprocess.Popen(
            engine.argv("stop", "-t", str(stop_timeout), container.name),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        signal_received()
        client.sendall(body[4:])
        response = _read_until_closed(client)
    stopped, _ = stopping.communicate(timeout=stop_timeout + 60)
    assert stopping.returncode == 0, stopped
    head_bytes, _, payload = response.partition(b"\r\n\r\n")
    status = int(head_bytes.split(b" ", 2)[1]) if head_bytes else 0
    exit_code = int(engine("inspect", "--format", "{{.State.ExitCode}}", container.name).strip())
    answer = json.loads(payload) if status == 200 else {"raw": response.decode(errors="replace")}
    return Drained(status, answer, exit_code, container.logs())


def _tcp_sockets() -> list[tuple[int, int, str, int]]:
    """(local port, remote port, state, unread bytes) of this network namespace's IPv4 TCP sockets."""
    sockets = []
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        _, local, remote, state, queues, *_ = line.split()
        port, peer, unread = (int(field.split(":")[1], 16) for field in (local, remote, queues))
        sockets.append((port, peer, state, unread))
    return sockets


def _wait_until_server_read(port: int, client_port: int, deadline_seconds: float = 30) -> None:
    """Until the server's end of the connection has nothing left unread (/proc/net/tcp's rx_queue)."""
    deadline = time.monotonic() + deadline_seconds
    while time.monotonic() < deadline:
        if (port, client_port) in {(local, remote) for local, remote, _, unread in _tcp_sockets() if unread == 0}:
            return
        time.sleep(0.05)
    pytest.fail(f"the server did not read the request on port {port} within {deadline_seconds} s")


def _wait_until_not_listening(port: int, deadline_seconds: float = 30) -> None:
    """Until nothing listens on port: nginx closes its listening sockets when it starts to drain."""
    listen = "0A"  # TCP_LISTEN in /proc/net/tcp
    deadline = time.monotonic() + deadline_seconds
    while time.monotonic() < deadline:
        if not any(local == port and state == listen for local, _, state, _ in _tcp_sockets()):
            return
        time.sleep(0.05)
    pytest.fail(f"nginx still listens on port {port} {deadline_seconds} s after the stop signal")


def _read_until_closed(client: socket.socket) -> bytes:
    chunks = []
    while chunk := client.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


# --- nginx: SIGQUIT (its image's STOPSIGNAL), in-flight requests finish --------------------------


@pytest.fixture(scope="session")
def nginx_drained(engine, proxy, task, proxy_mounts) -> Drained:
    """(proxy_mounts is read before the container stops.)"""
    return _stop_with_a_request_in_flight(
        engine, proxy, task.nginx["stopTimeout"], 31.4, lambda: _wait_until_not_listening(proxy.port)
    )


def test_sigquit_lets_nginx_finish_the_in_flight_request_and_exit_0(engine, nginx_image, nginx_drained, query):
    assert engine("image", "inspect", "--format", "{{.Config.StopSignal}}", nginx_image).strip() == "SIGQUIT"
    # nginx had stopped listening, yet the request it was reading reached gunicorn and was answered.
    assert nginx_drained.status == 200, nginx_drained.body
    (row,) = query(LOG_ROW_SQL, (nginx_drained.body["prediction_id"],))
    assert row[0] == 31.4
    assert f'"POST {IN_FLIGHT} HTTP/1.1" 200' in nginx_drained.logs, nginx_drained.logs
    assert nginx_drained.exit_code == 0, nginx_drained.logs  # 137 would be SIGKILL at stopTimeout


def test_nginx_wrote_nothing_outside_tmp(engine, proxy, nginx_drained, proxy_mounts):
    assert changes_outside(engine, proxy.name, proxy_mounts, ("/tmp",)) == []  # noqa: S108


# --- web: SIGTERM, gunicorn drains ------------------------------------------------------------


@pytest.fixture(scope="session")
def drained(engine, service, task, service_mounts, nginx_drained) -> Drained:
    """After nginx, as ECS orders it. (service_mounts is read before the container stops.)"""
    return _stop_with_a_request_in_flight(
        engine, service, task.web["stopTimeout"], 29.1, lambda: service.wait_for_log("Handling signal: term")
    )


def test_sigterm_lets_the_in_flight_request_finish_and_the_container_exit_0(drained, query):
    assert drained.status == 200, drained.body
    (row,) = query(LOG_ROW_SQL, (drained.body["prediction_id"],))
    assert row[0] == 29.1
    # In flight when the signal came: the rest of its body was sent only once gunicorn had logged
    # "Handling signal: term" (and the task's environment writes no access line to order it by).
    logs = drained.logs
    assert "Handling signal: term" in logs and f"POST {IN_FLIGHT}" not in logs, logs
    assert drained.exit_code == 0, logs  # 137 would be the engine's SIGKILL at stopTimeout
    # Each worker finished and left on its own, inside gunicorn's graceful timeout (after which
    # the master kills the workers left and logs it).
    assert logs.count("Worker exiting") == WORKERS, logs
    assert "SIGKILL" not in logs and "Shutting down: Master" in logs, logs


def test_nothing_was_written_outside_tmp_and_dev_shm(engine, service, drained, service_mounts):
    assert changes_outside(engine, service.name, service_mounts, ("/tmp", "/dev/shm")) == []  # noqa: S108
