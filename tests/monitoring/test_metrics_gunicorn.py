"""/metrics under two real gunicorn workers (prometheus-client multiprocess mode).

Each worker keeps its own counters; a scrape lands on one worker only. These tests prove that
whichever worker answers, the counts are the sums over both workers.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from django.conf import settings as django_settings
from prometheus_client.parser import text_string_to_metric_families

from predictor.models import PredictionLog
from tests.deploy.test_gunicorn import database_url

pytestmark = [pytest.mark.gunicorn, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "gunicorn-test-token"


@pytest.fixture
def gunicorn_server(transactional_db, tmp_path):
    metrics_dir = tmp_path / "prometheus"
    metrics_dir.mkdir()
    log_path = tmp_path / "gunicorn.log"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "bmiproject.settings_test",
        "DATABASE_URL": database_url(),
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
        "PREDICTOR_METRICS_TOKEN": TOKEN,
        "PREDICTOR_METRICS_CACHE_SECONDS": "0",
        "SECRET_KEY": django_settings.SECRET_KEY,
    }
    command = [
        str(Path(sys.executable).with_name("gunicorn")),
        "--config",
        str(ROOT / "bmiproject" / "gunicorn.conf.py"),
        "bmiproject.wsgi",
        "--workers",
        "2",
        "--bind",
        "127.0.0.1:0",  # the kernel picks a free port; read it back from the log
    ]
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        port = None
        while time.monotonic() < deadline:
            text = log_path.read_text(errors="replace")
            match = re.search(r"Listening at: http://127\.0\.0\.1:(\d+)", text)
            if match and text.count("Booting worker with pid") >= 2:
                port = int(match.group(1))
                break
            if process.poll() is not None:
                pytest.fail(f"gunicorn exited with {process.returncode}:\n{text}")
            time.sleep(0.2)
        if port is None:
            pytest.fail(f"gunicorn did not start two workers in 60 s:\n{log_path.read_text(errors='replace')}")
        base = f"http://127.0.0.1:{port}"
        # Workers load Django lazily only without preload; wait until both answer.
        for _ in range(100):
            try:
                if requests.get(f"{base}/healthz", timeout=5).status_code == 200:
                    break
            except requests.ConnectionError:
                time.sleep(0.1)
        yield base, metrics_dir
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def scrape(base: str) -> dict[tuple[str, tuple], float]:
    response = requests.get(f"{base}/metrics", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
    assert response.status_code == 200, response.text
    values = {}
    for family in text_string_to_metric_families(response.text):
        for s in family.samples:
            values[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return values


def worker_pids_with_counters(metrics_dir: Path) -> set[str]:
    return {m.group(1) for p in metrics_dir.iterdir() if (m := re.fullmatch(r"counter_(\d+)\.db", p.name))}


def test_counts_add_up_across_two_workers(gunicorn_server, active_version):
    base, metrics_dir = gunicorn_server
    version = str(active_version.version)

    def predict(i: int) -> int:
        # A new connection per request, so the kernel spreads them over both workers' accept().
        response = requests.post(f"{base}/api/v1/predict", json={"bmi": 20 + i % 20}, timeout=10)
        assert response.status_code == 200, response.text
        return 1

    sent = 0
    with ThreadPoolExecutor(max_workers=8) as pool:
        # Keep going until both workers have served (bounded, so a broken balancer fails the test).
        while sent < 400 and (sent < 40 or len(worker_pids_with_counters(metrics_dir)) < 2):
            sent += sum(pool.map(predict, range(sent, sent + 40)))
    assert len(worker_pids_with_counters(metrics_dir)) >= 2, "both workers served predictions"

    batches = [[22.0, 27.5, 31.0], [19.0] * 10]
    for batch in batches:
        response = requests.post(f"{base}/api/v1/predict/batch", json={"bmi": batch}, timeout=10)
        assert response.status_code == 200, response.text
    in_batches = sum(len(b) for b in batches)
    assert requests.get(f"{base}/metrics", timeout=10).status_code == 401  # no token

    assert PredictionLog.objects.filter(channel="api").count() == sent
    # A batch is one log entry however many predictions it holds; the counter counts predictions.
    assert sorted(PredictionLog.objects.filter(channel="batch").values_list("size", flat=True)) == [3, 10]
    label = (("model_version", version),)
    for _ in range(6):
        values = scrape(base)
        assert values[("bmi_predictions_total", (("channel", "api"), ("model_version", version)))] == sent
        assert values[("bmi_predictions_total", (("channel", "batch"), ("model_version", version)))] == in_batches
        route = (("method", "POST"), ("route", "api/v1/predict"), ("status", "200"))
        assert values[("bmi_http_requests_total", route)] == sent
        latency = (("method", "POST"), ("route", "api/v1/predict"))
        assert values[("bmi_http_request_duration_seconds_count", latency)] == sent
        # Token scrapes are answered before the metrics middleware (they are not traffic); the refused
        # one went down the normal stack and is counted, whichever worker answered it.
        scrapes = (("method", "GET"), ("route", "metrics"), ("status", "200"))
        assert values.get(("bmi_http_requests_total", scrapes), 0) == 0
        assert values[("bmi_http_errors_total", (("route", "metrics"), ("status", "401")))] == 1
        # The model gauges are read from the database, so every worker agrees on them too.
        assert values[("bmi_model_active_version", ())] == active_version.version
        assert values[("bmi_model_predictions_logged", label)] == sent + in_batches
