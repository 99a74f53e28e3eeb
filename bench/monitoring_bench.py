"""How long the monitoring figures take with millions of logged predictions (PostgreSQL).

Not part of the test suite (speed is never asserted in tests). Usage::

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bmi_bench \\
        .venv/bin/python bench/monitoring_bench.py --rows 3000000 --outcome-every 10

It creates the database if needed, migrates it, trains a version if none is active, fills the log
with ``--rows`` predictions spread over 90 days (half of them in batches of 1,000) by INSERT ... SELECT
generate_series, gives every ``--outcome-every``-th prediction an observed outcome, then times each
monitoring query, the /metrics quality collector, and the request middleware on its own (per call, both registry modes).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlparse

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bmiproject.settings")
os.environ.setdefault("DEBUG", "1")


def ensure_database(url: str) -> None:
    import psycopg2

    parsed = urlparse(url)
    name = parsed.path.lstrip("/")
    admin = psycopg2.connect(
        host=parsed.hostname,
        port=parsed.port or 5432,
        user=parsed.username,
        password=parsed.password,
        dbname="postgres",
    )
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name])
        if cursor.fetchone() is None:
            cursor.execute(f'CREATE DATABASE "{name}"')
    admin.close()


def timed(label: str, func, repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        func()
        times.append(time.perf_counter() - started)
    best, median = min(times), statistics.median(times)
    print(f"{label:<58} best {best * 1000:9.1f} ms   median {median * 1000:9.1f} ms")
    return best


def fill(version, rows: int, outcome_every: int, batch_share: float, batch_size: int) -> None:
    """Log ``rows`` predictions: ``batch_share`` of them in batches of ``batch_size``, the rest singly."""
    from django.db import connection

    started = time.perf_counter()
    n_batches = int(rows * batch_share) // batch_size
    singles = rows - n_batches * batch_size
    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE predictor_outcome, predictor_predictionlog, predictor_batchoutcome, predictor_predictionbatch"
        )
        cursor.execute(
            """
            INSERT INTO predictor_predictionlog (created_at, model_version_id, bmi, prediction, channel)
            SELECT now() - (g %% 90) * interval '1 day' - random() * interval '1 day',
                   %s, bmi, %s * bmi + %s, CASE WHEN g %% 50 = 0 THEN 'web' ELSE 'api' END
            FROM (SELECT g, 18 + random() * 25 AS bmi FROM generate_series(1, %s) AS g) AS s
            """,
            [version.version, version.slope, version.intercept, singles],
        )
        cursor.execute(
            """
            INSERT INTO predictor_predictionbatch (id, created_at, model_version_id, size, bmi, predictions)
            SELECT gen_random_uuid(), now() - (b %% 90) * interval '1 day' - random() * interval '1 day',
                   %s, %s, array_agg(bmi), array_agg(%s * bmi + %s)
            FROM (SELECT b, 18 + random() * 25 AS bmi
                  FROM generate_series(1, %s) AS b, generate_series(1, %s) AS i) AS s
            GROUP BY b
            """,
            [version.version, batch_size, version.slope, version.intercept, n_batches, batch_size],
        )
        cursor.execute(
            """
            INSERT INTO predictor_outcome (prediction_id, observed, recorded_at, source)
            SELECT id, greatest(0, prediction + (random() - 0.5) * 120), now(), 'bench'
            FROM predictor_predictionlog WHERE id %% %s = 0
            """,
            [outcome_every],
        )
        cursor.execute(
            """
            INSERT INTO predictor_batchoutcome (batch_id, position, observed, recorded_at, source)
            SELECT id, p, greatest(0, predictions[p + 1] + (random() - 0.5) * 120), now(), 'bench'
            FROM predictor_predictionbatch, generate_series(0, size - 1, %s) AS p
            """,
            [outcome_every],
        )
        for table in (
            "predictor_predictionlog",
            "predictor_outcome",
            "predictor_predictionbatch",
            "predictor_batchoutcome",
        ):
            cursor.execute(f"ANALYZE {table}")
        cursor.execute(
            "SELECT (SELECT count(*) FROM predictor_outcome) + (SELECT count(*) FROM predictor_batchoutcome)"
        )
        n_outcomes = cursor.fetchone()[0]
    print(
        f"Filled {singles:,} single predictions, {n_batches:,} batches of {batch_size:,} and {n_outcomes:,} outcomes "
        f"in {time.perf_counter() - started:.1f} s"
    )


def middleware_overhead() -> None:
    from django.test import RequestFactory
    from django.urls import resolve

    from predictor.monitoring.middleware import PrometheusMiddleware

    def view(request):
        from django.http import HttpResponse

        return HttpResponse(b"{}")

    request = RequestFactory().post("/api/v1/predict")
    request.resolver_match = resolve("/api/v1/predict")
    bare = view
    wrapped = PrometheusMiddleware(view)
    n = 20_000
    for label, handler in (("view alone", bare), ("view behind PrometheusMiddleware", wrapped)):
        started = time.perf_counter()
        for _ in range(n):
            handler(request)
        per_call = (time.perf_counter() - started) / n
        print(f"{label:<58} {per_call * 1e6:9.2f} µs per request")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=3_000_000, help="Predictions to log (default 3,000,000).")
    parser.add_argument("--outcome-every", type=int, default=10, help="Every n-th prediction gets an outcome.")
    parser.add_argument("--batch-share", type=float, default=0.5, help="Share of predictions logged in batches.")
    parser.add_argument("--batch-size", type=int, default=1000, help="Predictions per batch (default 1,000).")
    parser.add_argument("--keep", action="store_true", help="Reuse the rows already in the log.")
    args = parser.parse_args()

    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith("postgres"):
        sys.exit("Set DATABASE_URL to a PostgreSQL database (it is created if missing).")
    ensure_database(url)

    import django

    django.setup()
    from django.core.management import call_command

    from predictor import selectors, services
    from predictor.ml.data import load_diabetes_bmi
    from predictor.monitoring import metrics, stats

    call_command("migrate", verbosity=0)
    version = selectors.active_version()
    if version is None:
        version = services.model_version_train(dataset=load_diabetes_bmi(), actor_name="bench").version
    if not args.keep:
        fill(version, args.rows, args.outcome_every, args.batch_share, args.batch_size)

    quality = stats.version_quality(version)
    print(
        f"v{version.version}: {quality.n_predictions:,} predictions, {quality.n_outcomes:,} outcomes, "
        f"live R² {quality.r2:.4f}, MAE {quality.mae:.1f}, PSI {quality.psi:.4f} ({quality.psi_reading})"
    )
    timed("version_quality (counts, R², MAE, PSI: 4 queries)", lambda: stats.version_quality(version))
    timed("daily_series (90 days, 3 GROUP BY queries, outcomes joined)", lambda: stats.daily_series(version))
    timed(
        "monitoring page work for this version (both)",
        lambda: (stats.version_quality(version), stats.daily_series(version)),
    )
    collector = metrics.ModelQualityCollector(cache_seconds=0)
    timed("/metrics quality collector, uncached", lambda: list(collector.collect()))
    cached = metrics.ModelQualityCollector(cache_seconds=3600)
    list(cached.collect())
    timed("/metrics quality collector, cached", lambda: list(cached.collect()), repeat=100)

    print("Middleware, in-process registry:")
    middleware_overhead()
    # The metric classes pick their storage when created, so the multiprocess figure needs a fresh
    # interpreter: run this script's middleware part again with PROMETHEUS_MULTIPROC_DIR set.
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        import subprocess

        with tempfile.TemporaryDirectory() as directory:
            code = (
                "import bench.monitoring_bench as b, django; django.setup(); "
                "print('Middleware, multiprocess registry (mmap files):'); b.middleware_overhead()"
            )
            subprocess.run(
                [sys.executable, "-c", code],
                check=True,
                cwd=Path(__file__).resolve().parents[1],
                env={**os.environ, "PROMETHEUS_MULTIPROC_DIR": directory},
            )


if __name__ == "__main__":
    main()
