"""Monitoring cost against the size of the prediction log, and the rollups' cost to serving.

Not part of the test suite (speed is never asserted in tests). One run (see docs/monitoring.md)::

    BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/bmi_bench_monitoring \\
        .venv/bin/python bench/monitoring_bench.py            # --sizes 1000000,3000000,10000000

It recreates that database, migrates it and trains a version, then for each size in turn grows the
log to that many predictions, generated in SQL (``INSERT ... SELECT generate_series``: half single
predictions, half in batches of 1,000, spread over 90 days, every 10th prediction with an outcome),
times the fold into the rollups (``rollups_fold``, per million predictions), logs a tail of
predictions and outcomes that stays unfolded (as between two scheduled folds), and times the
monitoring API (``GET /api/v1/models/{v}/monitoring``) and page (``GET /monitoring/``) for that one
version through Django's test client (all middleware, a staff session, production settings).

Then it starts gunicorn as the image does and measures single-prediction throughput at 16
connections with wrk (bench/run.py's machinery), in alternating rounds without and with an
aggregator folding continuously (``rollups_fold`` in a loop, one per second). It writes
``bench/results/monitoring.{json,md}`` with the machine's load average, which other tenants share.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import run  # noqa: E402 - after the path is set

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/bmi_bench_monitoring"
RESULTS = ROOT / "bench" / "results"
TARGET_MS = 200.0
ROUND_KEYS = ("rps", "p50_ms", "p99_ms", "ok", "load_average_1m", "folds", "aggregator_cpu_s")
FLAT_RATIO = 1.5

# The aggregator of the throughput phase: folds, sleeps a second, until killed.
AGGREGATOR = """
import time, django
django.setup()
from predictor.monitoring import rollups
while True:
    report = rollups.rollups_fold()
    print(f"{time.time():.3f} folded {report.entries} entries {report.outcomes} outcomes "
          f"in {report.seconds:.3f} s", flush=True)
    time.sleep(1.0)
"""


def sql(cursor, statement: str, params=None) -> float:
    started = time.perf_counter()
    cursor.execute(statement, params)
    return time.perf_counter() - started


def grow(cursor, version, target: int, *, outcome_every: int, batch_size: int) -> dict:
    """Add predictions until the log holds ``target`` (half single, half in batches), with outcomes."""
    cursor.execute("SELECT coalesce(sum(size), 0), coalesce(max(id), 0) FROM predictor_predictionlog")
    have, last_id = cursor.fetchone()
    wanted = target - have
    n_batches = wanted // 2 // batch_size
    singles = wanted - n_batches * batch_size
    line = [version.version, version.slope, version.intercept]
    seconds = sql(
        cursor,
        """
        INSERT INTO predictor_predictionlog (created_at, model_version_id, channel, size, bmi, predictions)
        SELECT now() - (g %% 90) * interval '1 day' - random() * interval '1 day', %s,
               CASE WHEN g %% 50 = 0 THEN 'web' ELSE 'api' END, 1, ARRAY[bmi], ARRAY[%s * bmi + %s]
        FROM (SELECT g, 18 + random() * 25 AS bmi FROM generate_series(1, %s) AS g) AS s
        """,
        [*line, singles],
    )
    seconds += sql(
        cursor,
        """
        INSERT INTO predictor_predictionlog (created_at, model_version_id, channel, size, bmi, predictions)
        SELECT now() - (b %% 90) * interval '1 day' - random() * interval '1 day', %s, 'batch', count(*),
               array_agg(bmi ORDER BY i), array_agg(%s * bmi + %s ORDER BY i)
        FROM (SELECT b, i, 18 + random() * 25 AS bmi
              FROM generate_series(1, %s) AS b, generate_series(1, %s) AS i) AS s
        GROUP BY b
        """,
        [*line, n_batches, batch_size],
    )
    # Every outcome_every-th prediction of the new entries: single ones by id, batch items by position.
    seconds += sql(
        cursor,
        """
        INSERT INTO predictor_outcome (log_id, position, observed, recorded_at, source)
        SELECT id, p, greatest(0, predictions[p + 1] + (random() - 0.5) * 120), now(), 'bench'
        FROM predictor_predictionlog,
             generate_series(CASE WHEN size = 1 THEN 0 ELSE (id %% %s) END, size - 1, %s) AS p
        WHERE id > %s AND (size > 1 OR id %% %s = 0)
        """,
        [outcome_every, outcome_every, last_id, outcome_every],
    )
    seconds += sql(cursor, "VACUUM ANALYZE predictor_predictionlog") + sql(cursor, "VACUUM ANALYZE predictor_outcome")
    return {"singles": singles, "batches": n_batches, "seconds": seconds}


def log_tail(cursor, version, *, predictions: int, outcomes: int) -> None:
    """Predictions and outcomes logged after the last fold: the tail every read adds to the rollups."""
    cursor.execute(
        """
        INSERT INTO predictor_predictionlog (model_version_id, channel, size, bmi, predictions)
        SELECT %s, 'api', 1, ARRAY[bmi], ARRAY[%s * bmi + %s]
        FROM (SELECT 18 + random() * 25 AS bmi FROM generate_series(1, %s)) AS s
        """,
        [version.version, version.slope, version.intercept, predictions],
    )
    cursor.execute(
        """
        INSERT INTO predictor_outcome (log_id, position, observed, recorded_at, source)
        SELECT id, 0, greatest(0, predictions[1] + (random() - 0.5) * 120), now(), 'bench'
        FROM predictor_predictionlog WHERE size = 1 AND NOT EXISTS (
            SELECT 1 FROM predictor_outcome AS o WHERE o.log_id = predictor_predictionlog.id)
        ORDER BY id DESC LIMIT %s
        """,
        [outcomes],
    )


def timed(call, repeat: int) -> dict:
    """``call()`` timed ``repeat`` times after one untimed call (which sets the tail's hint bits)."""
    call()
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1e3)
    times.sort()
    return {
        "median_ms": statistics.median(times),
        "p90_ms": times[int(0.9 * (len(times) - 1))],
        "best_ms": times[0],
        "max_ms": times[-1],
        "runs": len(times),
    }


def get(client, path: str):
    def call():
        response = client.get(path, secure=True)
        if response.status_code != 200:
            raise RuntimeError(f"{path} answered {response.status_code}")

    return call


def throughput(args, env: dict, workdir: Path, *, rounds: int, seconds: float) -> dict:
    """Single predictions at 16 connections, rounds alternating without and with the aggregator."""
    port = run.free_port()
    server = run.gunicorn_server("gunicorn", run.image_command(), env, port, workdir)
    server.start()
    body = workdir / "single.json"
    body.write_text(json.dumps({"bmi": 27.5}))
    base = f"http://127.0.0.1:{port}"
    found: dict[str, list[dict]] = {"without": [], "with": []}
    folds = []
    try:
        # A warm-up round, not counted: workers load the model and prepare their statements.
        run.run_wrk(base, "/api/v1/predict", body, '"prediction_id"', 16, 5, headers=run.OUR_HEADERS,
                    drain_path="/healthz", drain=run.DRAIN_S)  # fmt: skip
        for index in range(rounds):
            for mode in ("without", "with") if index % 2 == 0 else ("with", "without"):
                aggregator = None
                if mode == "with":
                    aggregator = subprocess.Popen(
                        [sys.executable, "-c", AGGREGATOR], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True
                    )
                    time.sleep(2.0)  # django.setup() and a first fold before the load starts
                load_before = os.getloadavg()[0]
                result = run.run_wrk(
                    base, "/api/v1/predict", body, '"prediction_id"', 16, seconds,
                    headers=run.OUR_HEADERS, drain_path="/healthz", drain=run.DRAIN_S,
                )  # fmt: skip
                result["load_average_1m"] = [load_before, os.getloadavg()[0]]
                if aggregator is not None:
                    result["aggregator_cpu_s"] = run.cpu_seconds(aggregator.pid)
                    aggregator.terminate()
                    output, _ = aggregator.communicate(timeout=30)
                    lines = [line for line in output.splitlines() if " folded " in line]
                    result["folds"] = len(lines)
                    folds += lines
                found[mode].append(result)
                run.log(f"predict c=16 {mode:7} aggregator: {result['rps']:8.1f} req/s p99 {result['p99_ms']:.2f} ms")
    finally:
        server.stop()
    summary = {}
    for mode, results in found.items():
        summary[mode] = {
            "rps_median": statistics.median(r["rps"] for r in results),
            "p50_ms_median": statistics.median(r["p50_ms"] for r in results),
            "p99_ms_median": statistics.median(r["p99_ms"] for r in results),
            "rounds": [{k: r[k] for k in ROUND_KEYS if k in r} for r in results],
        }
    summary["rps_ratio_with_over_without"] = statistics.median(
        w["rps"] / o["rps"] for w, o in zip(found["with"], found["without"], strict=True)
    )
    summary["aggregator_folds"] = len(folds)
    summary["aggregator_fold_lines_sample"] = folds[:3] + folds[-3:]
    return summary


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL),
                        help="A database this script may drop and recreate (default BENCH_DATABASE_URL or "
                        f"{DEFAULT_URL}).")  # fmt: skip
    parser.add_argument("--sizes", default="1000000,3000000,10000000", help="Log sizes, in predictions, ascending.")
    parser.add_argument("--outcome-every", type=int, default=10, help="Every n-th prediction has an outcome.")
    parser.add_argument("--batch-size", type=int, default=1000, help="Predictions per generated batch.")
    parser.add_argument("--tail", type=int, default=10_000, help="Unfolded predictions at each measurement.")
    parser.add_argument("--tail-outcomes", type=int, default=1_000, help="Unfolded outcomes at each measurement.")
    parser.add_argument("--repeat", type=int, default=31, help="Requests timed per page and size.")
    parser.add_argument("--rounds", type=int, default=6, help="Throughput rounds per mode (alternating).")
    parser.add_argument("--seconds", type=float, default=10.0, help="Seconds per throughput round.")
    parser.add_argument("--workers", type=int, default=None, help="gunicorn workers (default: the image's).")
    parser.add_argument("--output", default="monitoring", help="Results file name in bench/results/.")
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    workdir = Path(tempfile.mkdtemp(prefix="bench-monitoring-"))
    env = run.django_env(SimpleNamespace(database_url=args.database_url, workers=args.workers), workdir)
    env["ALLOWED_HOSTS"] += ",testserver"
    # gunicorn's start-up creates this directory; the in-process timings need it before.
    Path(env["PROMETHEUS_MULTIPROC_DIR"]).mkdir(parents=True, exist_ok=True)
    results = {
        "started": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "git_sha": subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip(),
        "cpus": os.cpu_count(),
        "load_average_at_start": os.getloadavg(),
        "settings": vars(args),
        "sizes": [],
    }
    run.prepare_database(SimpleNamespace(database_url=args.database_url), env, trains=1)
    os.environ.update(env)
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Permission
    from django.db import connection
    from django.test import Client

    from predictor.monitoring import metrics, rollups, stats
    from predictor.registry import selectors

    version = selectors.active_version()
    # A throwaway user in a throwaway database.
    staff = get_user_model().objects.create_user("bench", password="bench-pass-123", is_staff=True)  # noqa: S106
    staff.user_permissions.set(Permission.objects.filter(codename="view_predictionlog"))
    client = Client()
    client.force_login(staff)
    api = f"/api/v1/models/{version.version}/monitoring"

    for size in sizes:
        with connection.cursor() as cursor:
            run.log(f"growing the log to {size:,} predictions")
            filled = grow(cursor, version, size, outcome_every=args.outcome_every, batch_size=args.batch_size)
            cursor.execute("SELECT count(*), coalesce(sum(size), 0) FROM predictor_predictionlog")
            entries, predictions = cursor.fetchone()
            cursor.execute("SELECT count(*) FROM predictor_outcome")
            (outcomes,) = cursor.fetchone()
            mark = rollups.watermark()
            cursor.execute("SELECT coalesce(sum(size), 0) FROM predictor_predictionlog WHERE id > %s", [mark.log_id])
            (to_fold,) = cursor.fetchone()
        run.log(f"folding {to_fold:,} predictions")
        report = rollups.rollups_fold()
        run.log(f"folded {report.entries:,} entries, {report.outcomes:,} outcomes in {report.seconds:.1f} s")
        with connection.cursor() as cursor:
            log_tail(cursor, version, predictions=args.tail, outcomes=args.tail_outcomes)
        quality = stats.version_quality(version)
        load_before = os.getloadavg()
        timings = {
            "api": timed(get(client, api), args.repeat),
            "page": timed(get(client, "/monitoring/"), args.repeat),
            "metrics_gauges": timed(
                lambda: list(metrics.ModelQualityCollector(cache_seconds=0).collect()), args.repeat
            ),
            "check_model": timed(lambda: stats.version_health(version), args.repeat),
        }
        row = {
            "size": size,
            "entries": entries,
            "predictions_before_tail": predictions,
            "outcomes_before_tail": outcomes,
            "generate_seconds": filled["seconds"],
            "fold": {
                "predictions": to_fold,
                "entries": report.entries,
                "outcomes": report.outcomes,
                "seconds": report.seconds,
                "seconds_per_million_predictions": report.seconds / (to_fold / 1e6) if to_fold else None,
            },
            "tail": {"predictions": args.tail, "outcomes": args.tail_outcomes},
            "shown": {
                "predictions": quality.n_predictions,
                "outcomes": quality.n_outcomes,
                "r2": quality.r2,
                "psi": quality.psi,
                "coverage": quality.coverage,
            },
            "load_average": [load_before, os.getloadavg()],
            **timings,
        }
        results["sizes"].append(row)
        run.log(
            f"{size:>11,}: API {timings['api']['median_ms']:.1f} ms, page {timings['page']['median_ms']:.1f} ms "
            f"(medians of {args.repeat}); load {load_before[0]:.2f}"
        )
    connection.close()

    results["throughput_c16"] = throughput(args, env, workdir, rounds=args.rounds, seconds=args.seconds)
    results["load_average_at_end"] = os.getloadavg()
    first, last = results["sizes"][0], results["sizes"][-1]
    results["verdict"] = {
        page: {
            "max_median_ms": max(r[page]["median_ms"] for r in results["sizes"]),
            "under_target": all(r[page]["median_ms"] < TARGET_MS for r in results["sizes"]),
            "largest_over_smallest": last[page]["median_ms"] / first[page]["median_ms"],
            "flat": last[page]["median_ms"] <= FLAT_RATIO * first[page]["median_ms"],
        }
        for page in ("api", "page")
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.output}.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    (RESULTS / f"{args.output}.md").write_text(markdown(results))
    print(markdown(results))
    return 0


def _ms(timing: dict) -> str:
    return f"{timing['median_ms']:.1f} / {timing['p90_ms']:.1f} / {timing['best_ms']:.1f}"


def markdown(r: dict) -> str:
    lines = [
        "# Monitoring cost against log size (bench/monitoring_bench.py)",
        "",
        f"Run {r['started']} at {r['git_sha'][:12]} on {r['cpus']} CPUs shared with other engineers; "
        f"load average at start {r['load_average_at_start'][0]:.2f}, at end {r['load_average_at_end'][0]:.2f} "
        "(1 min).",
        "",
        "Each size: the log grown in SQL (half single predictions, half batches of "
        f"{r['settings']['batch_size']:,}, over 90 days, every {r['settings']['outcome_every']}th with an "
        f"outcome), folded, then a tail of {r['settings']['tail']:,} predictions and "
        f"{r['settings']['tail_outcomes']:,} outcomes left unfolded. Times are medians of "
        f"{r['settings']['repeat']} requests through Django's test client with a staff session.",
        "",
        "| predictions | entries | outcomes | API ms (median / p90 / best) | page ms (median / p90 / best) "
        "| /metrics gauges ms | check_model ms | fold s | fold s per 1M | generate s | load 1m |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in r["sizes"]:
        fold = row["fold"]
        lines.append(
            f"| {row['size']:,} | {row['entries']:,} | {row['outcomes_before_tail']:,} | "
            f"{_ms(row['api'])} | {_ms(row['page'])} | {row['metrics_gauges']['median_ms']:.1f} | "
            f"{row['check_model']['median_ms']:.1f} | {fold['seconds']:.1f} "
            f"({fold['predictions']:,} predictions, {fold['outcomes']:,} outcomes) | "
            f"{fold['seconds_per_million_predictions']:.2f} | {row['generate_seconds']:.0f} | "
            f"{row['load_average'][0][0]:.2f} |"
        )
    lines.append("")
    for page, verdict in r["verdict"].items():
        lines.append(
            f"* {page}: at most {verdict['max_median_ms']:.1f} ms (target < {TARGET_MS:.0f} ms: "
            f"{'met' if verdict['under_target'] else 'NOT met'}); largest size / smallest "
            f"{verdict['largest_over_smallest']:.2f} "
            f"(target <= {FLAT_RATIO}: {'met' if verdict['flat'] else 'NOT met'})."
        )
    t = r["throughput_c16"]
    lines += [
        "",
        "Single predictions, POST /api/v1/predict at 16 connections (wrk, gunicorn as the image runs it), rounds "
        "alternating without and with an aggregator folding once a second:",
        "",
        "| aggregator | req/s (median) | p50 ms | p99 ms | rounds (req/s) |",
        "|---|---:|---:|---:|---|",
    ]
    for mode in ("without", "with"):
        m = t[mode]
        rounds = ", ".join(f"{x['rps']:.0f}" for x in m["rounds"])
        lines.append(
            f"| {mode} | {m['rps_median']:.1f} | {m['p50_ms_median']:.2f} | {m['p99_ms_median']:.2f} | {rounds} |"
        )
    lines += [
        "",
        f"With / without, median of per-round ratios: {t['rps_ratio_with_over_without']:.3f}; "
        f"the aggregator folded {t['aggregator_folds']} times during the 'with' rounds, using "
        f"{sum(x.get('aggregator_cpu_s', 0) for x in t['with']['rounds']):.1f} CPU seconds of its own.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
