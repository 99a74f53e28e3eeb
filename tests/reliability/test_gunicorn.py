"""Faults and load against the real server: the image's gunicorn command, on the test database.

The server is started by the deployment tests' helper (``image_server``: the Dockerfile's CMD with
the production task definition's environment), so these tests run what ECS runs. Every request
goes over loopback with ``http.client`` keep-alive connections. Counts are fixed and every wait has
a deadline; nothing here asserts a duration (speed is measured in bench/).
"""

from __future__ import annotations

import http.client
import json
import os
import random
import select
import signal
import socket
import threading
import time
import uuid
from collections import Counter
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field

import pytest
from django.db import connections
from django.db.models import Sum

from predictor import services
from predictor.models import ModelVersion, PredictionBatch, PredictionLog
from tests.deploy.test_gunicorn import collected_static, database_url, free_port, image_server  # noqa: F401

pytestmark = [pytest.mark.gunicorn, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

# Benchmark-style settings without the benchmark: no throttling (one client sends thousands of
# requests), plain HTTP on loopback, no worker recycling in the middle of a count.
SERVER_ENV = {
    "SECURE_SSL_REDIRECT": "0",
    "PREDICTOR_THROTTLE_PREDICT": "off",
    "PREDICTOR_THROTTLE_BATCH": "off",
    "PREDICTOR_THROTTLE_API": "off",
    "GUNICORN_MAX_REQUESTS": "0",
    "GUNICORN_LOG_LEVEL": "warning",
}
LOAD_REQUESTS = 3000
LOAD_THREADS = 8
DEADLINE_SECONDS = 60


class Client:
    """One keep-alive connection; reconnects after a connection error (a killed worker)."""

    def __init__(self, url: str):
        self.host, port = url.removeprefix("http://").split(":")
        self.port = int(port)
        self.conn: http.client.HTTPConnection | None = None

    def request(self, method: str, path: str, body=None) -> tuple[int, dict]:
        if self.conn is None:
            self.conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
        payload = None if body is None else json.dumps(body)
        headers = {"Content-Type": "application/json"} if body is not None else {}
        try:
            self.conn.request(method, path, body=payload, headers=headers)
            response = self.conn.getresponse()
            raw = response.read()
        except (OSError, http.client.HTTPException):
            self.close()
            raise
        if response.getheader("Connection", "").lower() == "close":
            self.close()
        content_type = response.getheader("Content-Type", "")
        return response.status, (json.loads(raw) if content_type.startswith("application/json") else {})

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None


@dataclass
class Results:
    singles: list[dict] = field(default_factory=list)
    batches: list[dict] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    statuses: Counter = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def predictions_returned(self) -> int:
        return len(self.singles) + sum(b["count"] for b in self.batches)


def _unique_bmi(rng: random.Random) -> float:
    # Unique per request, so each response can be matched to its log row by the BMI alone.
    return round(rng.uniform(15.0, 45.0), 9)


def _run_clients(url: str, *, threads: int, requests_each: int, batch_every: int, batch_size=(1, 20), stop=None):
    results = Results()

    def worker(index: int):
        rng = random.Random(index)
        client = Client(url)
        try:
            for n in range(requests_each):
                if stop is not None and stop.is_set():
                    return
                try:
                    if n % batch_every == batch_every - 1:
                        bmis = [_unique_bmi(rng) for _ in range(rng.randint(*batch_size))]
                        status, body = client.request("POST", "/api/v1/predict/batch", {"bmi": bmis})
                        record = {**body, "bmi": bmis}
                        target = results.batches
                    else:
                        bmi = _unique_bmi(rng)
                        status, body = client.request("POST", "/api/v1/predict", {"bmi": bmi})
                        record = body
                        target = results.singles
                except (OSError, http.client.HTTPException) as exc:
                    with results.lock:
                        results.errors.append(f"connection: {exc!r}")
                    continue
                with results.lock:
                    results.statuses[status] += 1
                    if status == 200:
                        target.append(record)
                    else:
                        results.errors.append(f"{status}: {body}")
        finally:
            client.close()

    pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join(timeout=DEADLINE_SECONDS * 3)
        assert not thread.is_alive(), "a client thread did not finish"
    return results


def _logged_predictions() -> int:
    """Predictions in the log: single-prediction rows plus the items of every batch row."""
    return PredictionLog.objects.count() + (PredictionBatch.objects.aggregate(items=Sum("size"))["items"] or 0)


def _versions() -> dict[int, ModelVersion]:
    return {v.version: v for v in ModelVersion.objects.all()}


def _assert_every_row_matches_its_response(results: Results) -> None:
    """Each logged row names the version that produced it, and each response matches its row."""
    versions = _versions()
    rows = list(PredictionLog.objects.values("bmi", "prediction", "model_version_id", "channel"))
    by_bmi = {row["bmi"]: row for row in rows}
    assert len(by_bmi) == len(rows), "BMIs are unique per request, so they identify rows"
    for row in rows:
        v = versions[row["model_version_id"]]
        assert row["prediction"] == pytest.approx(v.slope * row["bmi"] + v.intercept, rel=1e-12), row
    for single in results.singles:
        row = by_bmi[single["bmi"]]
        assert (row["channel"], row["model_version_id"], row["prediction"]) == (
            "api",
            single["model_version"],
            single["prediction"],
        )
    batches = {batch.pk: batch for batch in PredictionBatch.objects.all()}
    for batch in batches.values():
        v = versions[batch.model_version_id]
        expected = [v.slope * bmi + v.intercept for bmi in batch.bmi]
        assert batch.predictions == pytest.approx(expected, rel=1e-12), batch
    for sent in results.batches:
        logged = batches[uuid.UUID(sent["batch_id"])]
        assert (logged.model_version_id, logged.bmi, logged.predictions) == (
            sent["model_version"],
            sent["bmi"],
            sent["predictions"],
        )


def test_load_through_gunicorn_has_no_errors_and_logs_every_prediction(
    active_version,
    tmp_path,
    collected_static,  # noqa: F811
):
    with image_server(tmp_path, collected_static, **SERVER_ENV) as server:
        # 3,000 requests from 8 keep-alive clients; every tenth a batch of 1 to 20 BMIs.
        results = _run_clients(
            server.url, threads=LOAD_THREADS, requests_each=LOAD_REQUESTS // LOAD_THREADS, batch_every=10
        )
    assert results.errors == []
    assert results.statuses == {200: LOAD_REQUESTS}
    # Every prediction returned is in the log, and nothing else is.
    assert _logged_predictions() == results.predictions_returned()
    _assert_every_row_matches_its_response(results)


def test_predictions_are_served_and_logged_correctly_while_versions_change(
    train_version,
    tmp_path,
    collected_static,  # noqa: F811
):
    versions = [train_version(promote=True, random_state=seed).version for seed in (0, 1, 2)]
    # Different seeds give nearly equal lines; make them clearly different so a row logged against
    # the wrong version cannot pass the slope check by accident.
    for offset, number in enumerate(versions):
        ModelVersion.objects.filter(version=number).update(intercept=100.0 * offset + 1.0)
    changes = Counter()
    stop = threading.Event()

    def promoter():
        # Promote and roll back as fast as the registry allows until the clients are done.
        rng = random.Random(0)
        try:
            while not stop.is_set():
                try:
                    if rng.random() < 0.5:
                        services.model_version_promote(version=rng.choice(versions), actor_name="test")
                        changes["promote"] += 1
                    else:
                        services.model_version_rollback(actor_name="test")
                        changes["rollback"] += 1
                except services.PromotionRefused:
                    changes["refused"] += 1
                time.sleep(0.005)
        finally:
            connections.close_all()

    with image_server(tmp_path, collected_static, **SERVER_ENV) as server:
        thread = threading.Thread(target=promoter)
        thread.start()
        try:
            results = _run_clients(server.url, threads=4, requests_each=300, batch_every=5)
        finally:
            stop.set()
            thread.join(timeout=DEADLINE_SECONDS)
    assert results.errors == []
    assert results.statuses == {200: 1200}
    assert changes["promote"] + changes["rollback"] >= 10, changes  # versions really changed under load
    served = {s["model_version"] for s in results.singles} | {b["model_version"] for b in results.batches}
    assert len(served) >= 2, served
    assert _logged_predictions() == results.predictions_returned()
    _assert_every_row_matches_its_response(results)
    assert ModelVersion.objects.filter(status="active").count() == 1


def _worker_pids(master_pid: int) -> list[int]:
    with open(f"/proc/{master_pid}/task/{master_pid}/children") as handle:
        return [int(pid) for pid in handle.read().split()]


def _wait_for_workers(master_pid: int, count: int, replacing=()) -> list[int]:
    deadline = time.monotonic() + DEADLINE_SECONDS
    while time.monotonic() < deadline:
        pids = _worker_pids(master_pid)
        if len(pids) == count and not set(pids) & set(replacing):
            return pids
        time.sleep(0.1)
    pytest.fail(f"gunicorn did not have {count} fresh workers within {DEADLINE_SECONDS} s: {pids}")


def test_a_worker_killed_mid_batch_is_replaced_and_no_batch_is_half_logged(
    active_version,
    tmp_path,
    collected_static,  # noqa: F811
):
    batch_size = 5000
    with image_server(tmp_path, collected_static, WEB_CONCURRENCY="2", **SERVER_ENV) as server:
        before = _wait_for_workers(server.process.pid, 2)
        stop = threading.Event()
        sent: list[list[float]] = []
        answered: list[dict] = []
        lost = Counter()

        def sender(index: int):
            rng = random.Random(100 + index)
            client = Client(server.url)
            while not stop.is_set():
                bmis = [_unique_bmi(rng) for _ in range(batch_size)]
                sent.append(bmis)
                try:
                    status, body = client.request("POST", "/api/v1/predict/batch", {"bmi": bmis})
                except (OSError, http.client.HTTPException):
                    lost["connection"] += 1  # the killed worker had this request
                    continue
                if status == 200:
                    answered.append(body)
                else:
                    lost[status] += 1
            client.close()

        threads = [threading.Thread(target=sender, args=(i,)) for i in range(4)]
        for thread in threads:
            thread.start()
        try:
            # Let batches flow, then SIGKILL a worker while it is busy with them, twice.
            for victim in before:
                deadline = time.monotonic() + DEADLINE_SECONDS
                target = len(answered) + 3
                while len(answered) < target and time.monotonic() < deadline:
                    time.sleep(0.01)
                os.kill(victim, signal.SIGKILL)
            _wait_for_workers(server.process.pid, 2, replacing=before)
            deadline = time.monotonic() + DEADLINE_SECONDS
            # The replacements serve: more batches answered after the second kill.
            target = len(answered) + 4
            while len(answered) < target and time.monotonic() < deadline:
                time.sleep(0.01)
        finally:
            stop.set()
            for thread in threads:
                thread.join(timeout=DEADLINE_SECONDS)
        after = _worker_pids(server.process.pid)
        assert len(after) == 2 and not set(after) & set(before), (before, after, server.output()[-2000:])
        assert Client(server.url).request("GET", "/readyz")[0] == 200
        status, body = Client(server.url).request("POST", "/api/v1/predict", {"bmi": 30.0})
        assert status == 200 and body["model_version"] == active_version.version

    assert set(lost) <= {"connection", 502}, lost  # only the killed worker's requests went missing
    counts = dict(PredictionBatch.objects.values_list("id", "size"))
    print(f"batches sent {len(sent)}, answered {len(answered)}, logged {len(counts)}, lost {dict(lost)}")
    # All or nothing: every batch in the log is complete ...
    assert counts and set(counts.values()) == {batch_size}, Counter(counts.values())
    assert all(
        len(bmi) == len(predictions) == batch_size
        for bmi, predictions in PredictionBatch.objects.values_list("bmi", "predictions")
    )
    # ... every answered batch is in it, and a batch whose answer was lost is complete or absent.
    assert {uuid.UUID(b["batch_id"]) for b in answered} <= set(counts)
    assert len(counts) - len(answered) <= sum(lost.values())


class TcpProxy:
    """A loopback TCP proxy to PostgreSQL that the test can cut (and restore) at will."""

    def __init__(self, target: tuple[str, int], port: int):
        self.target, self.port = target, port
        self.listener: socket.socket | None = None
        self.sockets: set[socket.socket] = set()
        self.lock = threading.Lock()

    def start(self):
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self.listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self):
        """Refuse new connections and reset the open ones: what a database failover looks like."""
        if self.listener is not None:
            # close() alone does not wake a thread blocked in accept() on Linux; shutdown() does.
            with suppress(OSError):
                self.listener.shutdown(socket.SHUT_RDWR)
            self.listener.close()
            self.listener = None
        with self.lock:
            for sock in self.sockets:
                with suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            self.sockets.clear()

    def _accept(self, listener: socket.socket):
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # cut
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            with self.lock:
                self.sockets |= {client, upstream}
            threading.Thread(target=self._pipe, args=(client, upstream), daemon=True).start()

    def _pipe(self, a: socket.socket, b: socket.socket):
        peers = {a: b, b: a}
        try:
            while True:
                readable, _, _ = select.select([a, b], [], [], 1.0)
                for sock in readable:
                    data = sock.recv(65536)
                    if not data:
                        return
                    peers[sock].sendall(data)
        except (OSError, ValueError):
            return
        finally:
            with self.lock:
                for sock in (a, b):
                    self.sockets.discard(sock)
                    sock.close()


@contextmanager
def postgres_proxy():
    db = connections["default"].settings_dict
    proxy = TcpProxy((db["HOST"] or "127.0.0.1", int(db["PORT"] or 5432)), free_port())
    proxy.start()
    try:
        yield proxy
    finally:
        proxy.cut()


def _poll(client: Client, path: str, want: int, body=None) -> tuple[int, dict]:
    deadline = time.monotonic() + DEADLINE_SECONDS
    status, data = None, {}
    while time.monotonic() < deadline:
        try:
            status, data = client.request("POST" if body is not None else "GET", path, body)
        except (OSError, http.client.HTTPException):
            status, data = None, {}
        if status == want:
            return status, data
        time.sleep(0.2)
    pytest.fail(f"{path} did not answer {want} within {DEADLINE_SECONDS} s; last {status} {data}")


def test_database_outage_gives_503s_keeps_liveness_and_recovers_by_itself(
    active_version,
    tmp_path,
    collected_static,  # noqa: F811
):
    with postgres_proxy() as proxy:
        url = database_url().rsplit("@", 1)
        db_name = url[1].split("/", 1)[1]
        proxied = f"{url[0]}@127.0.0.1:{proxy.port}/{db_name}"
        with image_server(tmp_path, collected_static, DATABASE_URL=proxied, CONN_MAX_AGE="60", **SERVER_ENV) as server:
            client = Client(server.url)
            for _ in range(20):  # warm up: workers now hold persistent connections (CONN_MAX_AGE)
                assert client.request("POST", "/api/v1/predict", {"bmi": 25.0})[0] == 200
            rows_before = _logged_predictions()

            proxy.cut()
            outage = Counter()
            for _ in range(20):
                status, body = client.request("POST", "/api/v1/predict", {"bmi": 26.0})
                outage[("predict", status, body.get("error", {}).get("code"))] += 1
                status, body = client.request("POST", "/api/v1/predict/batch", {"bmi": [26.0, 27.0]})
                outage[("batch", status, body.get("error", {}).get("code"))] += 1
                outage[("readyz", *client.request("GET", "/readyz")[:1])] += 1
                outage[("healthz", *client.request("GET", "/healthz")[:1])] += 1
            # Clear 503s naming the cause, never a 500; liveness stays up so ECS does not kill tasks.
            assert outage == {
                ("predict", 503, "prediction_log_unavailable"): 20,
                ("batch", 503, "prediction_log_unavailable"): 20,
                ("readyz", 503): 20,
                ("healthz", 200): 20,
            }, outage
            assert _logged_predictions() == rows_before  # no prediction was returned unlogged

            proxy.start()  # the database is back: no restart, no operator
            _poll(client, "/readyz", 200)
            for _ in range(10):
                status, body = client.request("POST", "/api/v1/predict", {"bmi": 27.0})
                assert status == 200 and body["model_version"] == active_version.version
            assert _logged_predictions() == rows_before + 10
        assert " 500 " not in server.output()
