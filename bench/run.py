"""The benchmark: our service against the original (FastAPI reference), in one run on one machine.

One command (from the repository root; see docs/performance.md)::

    .venv/bin/python bench/run.py            # or: make bench

It creates its own PostgreSQL database (``bmi_bench``, dropped and recreated), migrates it, times
``manage.py train``, starts gunicorn exactly as the Docker image does (the Dockerfile's CMD with
bmiproject/gunicorn.conf.py) and the reference (plain uvicorn, one worker, access log on) on free
ports, drives both with wrk, checks that every 2xx prediction was logged, measures memory and
start-up, tears everything down, prints a table and writes ``bench/results/latest.{json,md}``.

Every ratio compares figures from this one run: absolute numbers on a shared 2-core machine drift
from run to run. The load generator (wrk) shares the machine's two cores with the servers and with
PostgreSQL, so neither side gets the machine to itself.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
RESULTS = BENCH / "results"
PYTHON = ROOT / ".venv" / "bin" / "python"
BENCH_VENV = BENCH / ".venv" / "bin"
WRK_SCRIPT = BENCH / "wrk" / "logged.lua"
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/bmi_bench"
LOG_TABLE = "predictor_predictionlog"
BATCH_TABLE = "predictor_predictionbatch"
BATCH_SIZE = 10_000
# The load balancer sets this on every request it forwards; with it, production's HTTPS redirect
# (SECURE_SSL_REDIRECT, on by default) lets the request through as it would in ECS.
OUR_HEADERS = "X-Forwarded-Proto: https"

TARGETS = {
    "fit_ratio_vs_sklearn": 1.0,
    "r2_gap_vs_closed_form": 0.001,
    "predict_rps_ratio_c16": 0.8,
    "predict_p99_ms_c16": 25.0,
    "batch_p50_ratio_c1": 2.0,
    "worker_memory_ratio": 0.5,
    "startup_s": 1.0,
}


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- PostgreSQL ------------------------------------------------------------------------------------


def _connect(url: str, dbname: str | None = None):
    import psycopg2

    parsed = urlparse(url)
    connection = psycopg2.connect(
        host=parsed.hostname,
        port=parsed.port or 5432,
        user=parsed.username,
        password=parsed.password,
        dbname=dbname or parsed.path.lstrip("/"),
    )
    connection.autocommit = True
    return connection


def recreate_database(url: str) -> None:
    name = urlparse(url).path.lstrip("/")
    if not re.fullmatch(r"[A-Za-z0-9_]+", name):
        raise SystemExit(f"Refusing to drop a database with an unusual name: {name!r}")
    admin = _connect(url, "postgres")
    with admin.cursor() as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        cursor.execute(f'CREATE DATABASE "{name}"')
    admin.close()


def server_settings(url: str) -> dict:
    connection = _connect(url)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT name, setting FROM pg_settings WHERE name IN "
            "('synchronous_commit', 'fsync', 'commit_delay', 'wal_sync_method', 'max_connections')"
        )
        found = dict(cursor.fetchall())
        cursor.execute("SHOW server_version")
        found["server_version"] = cursor.fetchone()[0]
    connection.close()
    return found


class LogCounter:
    """Counts predictions logged since the last call: single-prediction rows (by id, so nothing is
    counted twice) and batch rows with the predictions they hold (the bench deletes nothing)."""

    def __init__(self, url: str):
        self.connection = _connect(url)
        self.last_id, self.batches, self.batch_items = self._totals()

    def _totals(self) -> tuple[int, int, int]:
        with self.connection.cursor() as cursor:
            cursor.execute(
                f"SELECT (SELECT coalesce(max(id), 0) FROM {LOG_TABLE}), count(*), coalesce(sum(size), 0) "
                f"FROM {BATCH_TABLE}"
            )
            return cursor.fetchone()

    def new_rows(self) -> dict:
        with self.connection.cursor() as cursor:
            cursor.execute(f"SELECT count(*) FROM {LOG_TABLE} WHERE id > %s", [self.last_id])
            singles = cursor.fetchone()[0]
        last_id, batches, batch_items = self._totals()
        new = {"rows": singles + batch_items - self.batch_items, "batches": batches - self.batches}
        self.last_id, self.batches, self.batch_items = last_id, batches, batch_items
        return new


# --- Processes -------------------------------------------------------------------------------------


def wait_ok(url: str, deadline_s: float, started: float) -> float:
    """Seconds from ``started`` to the first 200 from ``url``."""
    while True:
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return time.perf_counter() - started
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        if time.perf_counter() - started > deadline_s:
            raise RuntimeError(f"{url} did not answer 200 within {deadline_s} s")
        time.sleep(0.005)


def children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        found.extend(int(p) for p in text)
    return sorted(found)


def memory(pid: int) -> dict:
    """RSS, PSS and USS (private clean + dirty) in MiB from /proc/<pid>/smaps_rollup."""
    fields = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        name, _, rest = line.partition(":")
        fields[name.strip()] = int(rest.split()[0])  # kB
    uss = fields.get("Private_Clean", 0) + fields.get("Private_Dirty", 0)
    return {"rss_mib": fields["Rss"] / 1024, "pss_mib": fields["Pss"] / 1024, "uss_mib": uss / 1024}


_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int, *, reaped_children: bool = False) -> float:
    """User + system CPU of a process (and, if asked, of its children it has already reaped)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    used = int(fields[11]) + int(fields[12])  # utime, stime
    if reaped_children:
        used += int(fields[13]) + int(fields[14])  # cutime, cstime: workers recycled by max_requests
    return used / _TICKS


def backend_cpu(url: str) -> dict[int, float]:
    """CPU seconds so far of each PostgreSQL backend serving the benchmark database (same machine)."""
    connection = _connect(url)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        pids = [row[0] for row in cursor.fetchall()]
    connection.close()
    used = {}
    for pid in pids:
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            used[pid] = cpu_seconds(pid)
    return used


def backend_cpu_used(before: dict[int, float], after: dict[int, float]) -> float:
    # A lower bound: a backend that exited during the run (CONN_MAX_AGE) took its CPU with it.
    return sum(seconds - before.get(pid, 0.0) for pid, seconds in after.items())


class Server:
    def __init__(self, name: str, command: list[str], env: dict, ready_url: str, logfile: Path):
        self.name = name
        self.command = command
        self.env = env
        self.ready_url = ready_url
        self.logfile = logfile
        self.process: subprocess.Popen | None = None

    def start(self) -> float:
        out = self.logfile.open("ab")
        started = time.perf_counter()
        self.process = subprocess.Popen(
            self.command, cwd=ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        out.close()
        try:
            return wait_ok(self.ready_url, 60, started)
        except RuntimeError:
            self.stop()
            raise RuntimeError(f"{self.name} did not start; see {self.logfile}") from None

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def cpu(self) -> float:
        """CPU seconds used so far by the server: the master, its live and its recycled workers."""
        total = cpu_seconds(self.process.pid, reaped_children=True)
        for pid in children(self.process.pid):
            with contextlib.suppress(FileNotFoundError):
                total += cpu_seconds(pid)
        return total

    def serving_pids(self) -> list[int]:
        """The processes that answer requests: gunicorn's workers, or uvicorn itself."""
        return children(self.process.pid) or [self.process.pid]


def gunicorn_server(name: str, command: list[str], env: dict, port: int, workdir: Path) -> Server:
    """A gunicorn command on ``port``, ready when ``/readyz`` answers 200, logging to ``workdir``."""
    return Server(name, command, {**env, "PORT": str(port)}, f"http://127.0.0.1:{port}/readyz", workdir / f"{name}.log")


# --- wrk -------------------------------------------------------------------------------------------


def run_wrk(
    base: str,
    path: str,
    body_file: Path,
    marker: str,
    connections: int,
    duration: float,
    *,
    headers: str = "",
    drain_path: str,
    drain: float,
) -> dict:
    env = {
        **os.environ,
        "BENCH_PATH": path,
        "BENCH_BODY_FILE": str(body_file),
        "BENCH_MARKER": marker,
        "BENCH_DURATION": str(duration),
        "BENCH_DRAIN": str(drain),
        "BENCH_DRAIN_PATH": drain_path,
        "BENCH_HEADERS": headers,
    }
    # One connection per thread: the script times each counted request itself (see logged.lua).
    threads = connections
    command = [
        "wrk",
        "-t",
        str(threads),
        "-c",
        str(connections),
        "-d",
        f"{int(duration)}s",
        "--timeout",
        "10s",
        "-s",
        str(WRK_SCRIPT),
        base,
    ]
    output = subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout
    match = re.search(r"^BENCH_JSON (.*)$", output, re.MULTILINE)
    if match is None:
        raise RuntimeError(f"wrk printed no result:\n{output}")
    result = json.loads(match.group(1))
    # Throughput counts only the logged predictions, over the time they were being sent.
    result["rps"] = result["ok"] / (duration - drain)
    result["p50_ms"] = result["latency_us"]["p50"] / 1e3
    result["p99_ms"] = result["latency_us"]["p99"] / 1e3
    result["connections"] = connections
    result["threads"] = threads
    return result


def combine_rounds(rounds: list[dict]) -> dict:
    """One scenario measured over several rounds: medians of the rates and latencies, sums of the
    counts, and every round kept (a ratio is then the median of the per-round ratios)."""
    if len(rounds) == 1:
        return rounds[0]
    combined = {
        key: statistics.median(r[key] for r in rounds)
        for key in ("rps", "p50_ms", "p99_ms", "cpu_ms_per_request", "postgres_cpu_ms_per_request")
        if key in rounds[0]
    }
    for key in ("ok", "other", "drained", "log_rows"):
        if key in rounds[0]:
            combined[key] = sum(r[key] for r in rounds)
    if "logged_2xx_equal" in rounds[0]:
        combined["logged_2xx_equal"] = all(r["logged_2xx_equal"] for r in rounds)
    combined["connections"] = rounds[0]["connections"]
    combined["rounds"] = rounds
    return combined


def rps_ratio(ours: dict, reference: dict) -> float:
    """Requests/s of one side over the other's: per round when both ran in rounds, then the median."""
    if "rounds" in ours and "rounds" in reference:
        return statistics.median(o["rps"] / r["rps"] for o, r in zip(ours["rounds"], reference["rounds"], strict=True))
    return ours["rps"] / reference["rps"]


# --- Phases ----------------------------------------------------------------------------------------


def training(repeat: int) -> dict:
    # OpenBLAS core-type overrides set on these machines slow a current NumPy (see the environment
    # notes); they are removed for this measurement alone, and the kernel in use is recorded.
    env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
    out = subprocess.run(
        [str(PYTHON), str(BENCH / "fit_bench.py"), "--repeat", str(repeat)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return json.loads(out)


def manage(env: dict, *args: str) -> float:
    started = time.perf_counter()
    subprocess.run([str(PYTHON), "manage.py", *args], cwd=ROOT, env=env, check=True, capture_output=True)
    return time.perf_counter() - started


def image_command() -> list[str]:
    """The Dockerfile's CMD, with gunicorn taken from the project's virtualenv."""
    text = (ROOT / "Dockerfile").read_text()
    cmd = json.loads(re.findall(r"^CMD (\[.*\])\s*$", text, re.MULTILINE)[-1])
    if cmd[0] == "gunicorn":
        cmd[0] = str(ROOT / ".venv" / "bin" / "gunicorn")
    return cmd


def ceiling_command() -> list[str]:
    """The same gunicorn command and configuration file, serving bench/ceiling/app.py instead."""
    cmd = image_command()
    config = cmd.index("--config") + 1
    cmd[config] = str(ROOT / cmd[config])
    return [*cmd[:-1], "--chdir", str(BENCH / "ceiling"), "app:application"]


def active_line(database_url: str) -> tuple[int, float, float]:
    connection = _connect(database_url)
    with connection.cursor() as cursor:
        cursor.execute("SELECT version, slope, intercept FROM predictor_modelversion WHERE status = 'active'")
        row = cursor.fetchone()
    connection.close()
    return row


def median_of(values):
    return statistics.median(values) if values else None


def main() -> int:
    parser = argparse.ArgumentParser(description="Benchmark our service against the FastAPI reference.")
    parser.add_argument(
        "--database-url",
        default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_DATABASE_URL),
        help="PostgreSQL database to create (dropped first!). Default %(default)s.",
    )
    parser.add_argument("--duration", type=int, default=10, help="Seconds per wrk run (default 10).")
    parser.add_argument("--connections", default="1,16,64", help="wrk connection counts for single predictions.")
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="Interleaved rounds at 16 connections, the targets' load; medians reported (default 3).",
    )
    parser.add_argument("--starts", type=int, default=3, help="Server starts timed, median reported (default 3).")
    parser.add_argument("--fit-repeat", type=int, default=51, help="Timed fits per method (default 51).")
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help="WEB_CONCURRENCY for gunicorn (default: gunicorn.conf.py's own default).",
    )
    parser.add_argument(
        "--profile", action="store_true", help="Record a py-spy profile of every worker during the 16-connection run."
    )
    parser.add_argument("--output", default=str(RESULTS / "latest"), help="Results path without extension.")
    args = parser.parse_args()
    connections = [int(c) for c in args.connections.split(",")]
    drain = 0.5
    began = time.perf_counter()

    if not (BENCH_VENV / "uvicorn").exists():
        raise SystemExit(
            "bench/.venv is missing: python3.11 -m venv bench/.venv && "
            "bench/.venv/bin/pip install -r bench/requirements.txt"
        )

    results: dict = {
        "started_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": len(os.sched_getaffinity(0)),
            "load_average_before": os.getloadavg(),
            "python": platform.python_version(),
            "kernel": platform.release(),
            "git": subprocess.run(
                ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
            ).stdout.strip(),
        },
        "settings": {
            "duration_s": args.duration,
            "drain_s": drain,
            "connections": connections,
            "rounds_c16": args.rounds,
            "batch_size": BATCH_SIZE,
        },
    }

    log("training: timing every fitting method")
    results["training"] = training(args.fit_repeat)

    workdir = Path(tempfile.mkdtemp(prefix="bmi-bench-"))
    servers: list[Server] = []
    try:
        log(f"database: recreating {urlparse(args.database_url).path.lstrip('/')}")
        recreate_database(args.database_url)
        results["postgres"] = server_settings(args.database_url)
        django_env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "bmiproject.settings",
            "DEBUG": "0",
            "SECRET_KEY": "bench-only-not-a-secret-" + "x" * 40,
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "DATABASE_URL": args.database_url,
            "STATIC_ROOT": str(workdir / "static"),
            "PREDICTOR_THROTTLE_PREDICT": "off",
            "PREDICTOR_THROTTLE_BATCH": "off",
            "PROMETHEUS_MULTIPROC_DIR": str(workdir / "prometheus"),
        }
        if args.workers:
            django_env["WEB_CONCURRENCY"] = str(args.workers)
        manage(django_env, "migrate", "--no-input")
        manage(django_env, "collectstatic", "--no-input")
        train_times = [manage(django_env, "train", "--seed", str(seed)) for seed in range(3)]
        results["training"]["manage_py_train_s"] = {"median": median_of(train_times), "all": train_times}
        _version, slope, intercept = active_line(args.database_url)

        # Start-up: each server is started and stopped a few times; the last start stays up.
        our_port, ref_port = free_port(), free_port()
        ours = gunicorn_server("gunicorn", image_command(), django_env, our_port, workdir)
        ref_env = {**os.environ, "REFERENCE_W": repr(slope), "REFERENCE_B": repr(intercept)}
        reference = Server(
            "uvicorn",
            [
                str(BENCH_VENV / "uvicorn"),
                "app:app",
                "--app-dir",
                str(BENCH / "reference"),
                "--host",
                "127.0.0.1",
                "--port",
                str(ref_port),
                "--workers",
                "1",
            ],
            ref_env,
            f"http://127.0.0.1:{ref_port}/health",
            workdir / "uvicorn.log",
        )
        starts = {"ours": [], "reference": []}
        for _ in range(args.starts):
            for key, server in (("ours", ours), ("reference", reference)):
                log(f"start-up: {server.name}")
                starts[key].append(server.start())
                server.stop()
                time.sleep(0.5)
        results["startup_s"] = {k: {"median": median_of(v), "all": v} for k, v in starts.items()}
        ours.start()
        servers.append(ours)
        reference.start()
        servers.append(reference)
        # Not timed at start-up and not a target: the ceiling any Django code of ours competes with.
        ceiling_port = free_port()
        ceiling = gunicorn_server("ceiling", ceiling_command(), django_env, ceiling_port, workdir)
        ceiling.start()
        servers.append(ceiling)
        results["gunicorn"] = {"workers": len(ours.serving_pids()), "command": image_command()}

        rng = random.Random(0)
        bodies = {}
        single = workdir / "single.json"
        single.write_text(json.dumps({"bmi": 27.4}))
        single_ref = workdir / "single_ref.json"
        single_ref.write_text(json.dumps({"input": 27.4}))
        bmis = [round(rng.uniform(18.0, 42.0), 2) for _ in range(BATCH_SIZE)]
        batch = workdir / "batch.json"
        batch.write_text(json.dumps({"bmi": bmis}))
        batch_ref = workdir / "batch_ref.json"
        batch_ref.write_text(json.dumps({"input": bmis}))
        bodies = {
            "ours": {
                "predict": (f"http://127.0.0.1:{our_port}", "/api/v1/predict", single, '"prediction"'),
                "batch": (f"http://127.0.0.1:{our_port}", "/api/v1/predict/batch", batch, '"batch_id"'),
            },
            "reference": {
                "predict": (f"http://127.0.0.1:{ref_port}", "/stream", single_ref, '"Response Predict"'),
                "batch": (f"http://127.0.0.1:{ref_port}", "/batch", batch_ref, '"Response Predict"'),
            },
            "ceiling": {"predict": (f"http://127.0.0.1:{ceiling_port}", "/api/v1/predict", single, '"prediction"')},
            "unlogged": {"predict": (f"http://127.0.0.1:{ceiling_port}", "/unlogged", single, '"prediction"')},
        }
        server_of = {"ours": ours, "reference": reference, "ceiling": ceiling, "unlogged": ceiling}
        counter = LogCounter(args.database_url)

        def load(side: str, kind: str, c: int, duration: float, *, count: bool = True) -> dict:
            base, path, body, marker = bodies[side][kind]
            server = server_of[side]
            # Ours and the ceiling write the log; the reference and the unlogged ceiling do not.
            logs = side in ("ours", "ceiling")
            cpu_before = server.cpu()
            pg_before = backend_cpu(args.database_url) if logs else {}
            result = run_wrk(
                base,
                path,
                body,
                marker,
                c,
                duration,
                headers=OUR_HEADERS if side == "ours" else "",
                drain_path="/health" if side == "reference" else "/healthz",
                drain=drain,
            )
            # CPU per answered request is steadier than requests/s on a shared machine: it does not
            # depend on how much CPU the other tenants left us during the run.
            answered = max(1, result["ok"] + result["drained"])
            result["cpu_ms_per_request"] = (server.cpu() - cpu_before) * 1e3 / answered
            if side != "reference":
                result["postgres_cpu_ms_per_request"] = (
                    backend_cpu_used(pg_before, backend_cpu(args.database_url)) * 1e3 / answered if logs else 0.0
                )
                # Counted for every side that shares the database, so each run's count is its own.
                rows = counter.new_rows()
                expected = result["ok"] * (BATCH_SIZE if kind == "batch" else 1) if logs else 0
                result["log_rows"] = rows["rows"]
                result["logged_2xx_equal"] = rows["rows"] == expected and result["other"] == 0
                if kind == "batch":
                    # One batch row per answered batch, holding all of its predictions.
                    result["log_batches"] = rows["batches"]
                    result["logged_2xx_equal"] &= rows["batches"] == result["ok"]
            log(
                f"{side:9} {kind:7} c={c:<3} {result['rps']:8.1f} req/s  p50 {result['p50_ms']:7.2f} ms  "
                f"p99 {result['p99_ms']:7.2f} ms  2xx {result['ok']}"
                + (f"  rows {result['log_rows']}" if side != "reference" else "")
            )
            return result

        log("warm-up")
        for side in ("ours", "reference"):
            load(side, "predict", 16, 3)
            load(side, "batch", 1, 2)
        load("ceiling", "predict", 16, 3)

        # Interleaved: each scenario runs on the reference and on ours back to back, so a change in
        # the machine's background load during the run affects both sides alike. At 16 connections
        # (the targets' load) the round is repeated and the ceiling runs too: the medians are what
        # the table reports, and each round's figures are kept in the JSON.
        runs = {side: {"predict": {}, "batch": {}} for side in server_of}
        for c in connections:
            rounds, sides = (args.rounds, list(server_of)) if c == 16 else (1, ["reference", "ours"])
            sides.remove("reference")
            sides.insert(0, "reference")
            measured = {side: [] for side in sides}
            for round_ in range(rounds):
                for side in sides:
                    profiler = None
                    if args.profile and side == "ours" and c == 16 and round_ == 0:
                        profiler = subprocess.Popen(
                            [
                                str(BENCH_VENV / "py-spy"),
                                "record",
                                "--pid",
                                str(ours.process.pid),
                                "--subprocesses",
                                "--rate",
                                "250",
                                "--format",
                                "speedscope",
                                "--output",
                                str(RESULTS / "profile_predict_c16.speedscope.json"),
                                "--duration",
                                str(int(args.duration)),
                            ],
                            stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL,
                        )
                    measured[side].append(load(side, "predict", c, args.duration))
                    if profiler is not None:
                        profiler.wait()
            for side, results_ in measured.items():
                runs[side]["predict"][str(c)] = combine_rounds(results_)
        for side in ("reference", "ours"):
            runs[side]["batch"]["1"] = load(side, "batch", 1, args.duration)
        results["load"] = runs

        results["memory_mib"] = {
            "ours_workers": [memory(pid) for pid in ours.serving_pids()],
            "ours_master": memory(ours.process.pid),
            "reference": memory(reference.process.pid),
        }
    finally:
        for server in servers:
            server.stop()
        shutil.rmtree(workdir, ignore_errors=True)

    results["machine"]["load_average_after"] = os.getloadavg()
    results["elapsed_s"] = time.perf_counter() - began
    results["summary"] = summarize(results)
    write(results, Path(args.output))
    print(markdown(results))
    return 0


# --- Reporting -------------------------------------------------------------------------------------


def summarize(r: dict) -> list[dict]:
    t = r["training"]["methods"]
    ours_p = r["load"]["ours"]["predict"]
    ref_p = r["load"]["reference"]["predict"]
    ours_b = r["load"]["ours"]["batch"]["1"]
    ref_b = r["load"]["reference"]["batch"]["1"]
    workers = r["memory_mib"]["ours_workers"]
    worker_pss = statistics.median(w["pss_mib"] for w in workers)
    worker_uss = statistics.median(w["uss_mib"] for w in workers)
    ref_mem = r["memory_mib"]["reference"]
    rows = []

    def row(what, ours, reference, ratio, target, met, unit=""):
        rows.append(
            {
                "what": what,
                "ours": ours,
                "reference": reference,
                "ratio": ratio,
                "target": target,
                "met": met,
                "unit": unit,
            }
        )

    fit_ratio = t["ours"]["median_ms"] / t["sklearn_sgd_pipeline"]["median_ms"]
    row(
        "Fit time, median (ms): ours vs scikit-learn SGD pipeline",
        t["ours"]["median_ms"],
        t["sklearn_sgd_pipeline"]["median_ms"],
        fit_ratio,
        "< 1.0",
        fit_ratio < TARGETS["fit_ratio_vs_sklearn"],
    )
    row(
        "Fit time, median (ms): ours vs original loop",
        t["ours"]["median_ms"],
        t["original_loop"]["median_ms"],
        t["ours"]["median_ms"] / t["original_loop"]["median_ms"],
        "-",
        None,
    )
    row(
        "Fit time, median (ms): ours vs closed form",
        t["ours"]["median_ms"],
        t["closed_form"]["median_ms"],
        t["ours"]["median_ms"] / t["closed_form"]["median_ms"],
        "-",
        None,
    )
    gap = abs(t["ours"]["r2_test"] - t["closed_form"]["r2_test"])
    row(
        "Held-out R²: ours vs closed form (gap)",
        t["ours"]["r2_test"],
        t["closed_form"]["r2_test"],
        gap,
        "gap <= 0.001",
        gap <= TARGETS["r2_gap_vs_closed_form"],
    )
    row("`manage.py train`, whole process (s)", r["training"]["manage_py_train_s"]["median"], None, None, "-", None)
    for c, ours in ours_p.items():
        ref = ref_p[c]
        ratio = rps_ratio(ours, ref)
        target = f">= {TARGETS['predict_rps_ratio_c16']}" if c == "16" else "-"
        met = ratio >= TARGETS["predict_rps_ratio_c16"] if c == "16" else None
        rounds = f" (median of {len(ours['rounds'])} rounds)" if "rounds" in ours else ""
        row(f"Single predictions, {c} conn.: requests/s{rounds}", ours["rps"], ref["rps"], ratio, target, met)
        row(
            f"Single predictions, {c} conn.: p50 (ms)",
            ours["p50_ms"],
            ref["p50_ms"],
            ours["p50_ms"] / ref["p50_ms"],
            "-",
            None,
        )
        p99_target = f"< {TARGETS['predict_p99_ms_c16']:g} ms" if c == "16" else "-"
        p99_met = ours["p99_ms"] < TARGETS["predict_p99_ms_c16"] if c == "16" else None
        row(
            f"Single predictions, {c} conn.: p99 (ms)",
            ours["p99_ms"],
            ref["p99_ms"],
            ours["p99_ms"] / ref["p99_ms"],
            p99_target,
            p99_met,
        )
    ours16, ref16 = ours_p.get("16"), ref_p.get("16")
    if ours16 and ref16:
        row(
            "Single predictions, 16 conn.: CPU per request (ms; ours: gunicorn + PostgreSQL backends)",
            ours16["cpu_ms_per_request"] + ours16["postgres_cpu_ms_per_request"],
            ref16["cpu_ms_per_request"],
            (ours16["cpu_ms_per_request"] + ours16["postgres_cpu_ms_per_request"]) / ref16["cpu_ms_per_request"],
            "-",
            None,
        )
        # Diagnostics, not targets: what the same gunicorn configuration does with no Django at all.
        for side, what in (
            ("unlogged", "Ceiling, 16 conn.: gunicorn alone, no Django, no database: requests/s"),
            ("ceiling", "Ceiling, 16 conn.: gunicorn + the same durable INSERT, no Django: requests/s"),
        ):
            found = r["load"].get(side, {}).get("predict", {}).get("16")
            if found:
                row(what, found["rps"], ref16["rps"], rps_ratio(found, ref16), "-", None)
        found = r["load"].get("ceiling", {}).get("predict", {}).get("16")
        if found:
            row(
                "Ceiling, 16 conn.: gunicorn + the same durable INSERT, no Django: p99 (ms)",
                found["p99_ms"],
                ref16["p99_ms"],
                found["p99_ms"] / ref16["p99_ms"],
                "-",
                None,
            )
    batch_ratio = ours_b["p50_ms"] / ref_b["p50_ms"]
    row(
        f"Batch of {BATCH_SIZE:,}, 1 conn.: p50 (ms)",
        ours_b["p50_ms"],
        ref_b["p50_ms"],
        batch_ratio,
        f"<= {TARGETS['batch_p50_ratio_c1']}",
        batch_ratio <= TARGETS["batch_p50_ratio_c1"],
    )
    mem_ratio = worker_pss / ref_mem["pss_mib"]
    row(
        "Memory of one serving worker after load: PSS (MiB)",
        worker_pss,
        ref_mem["pss_mib"],
        mem_ratio,
        f"<= {TARGETS['worker_memory_ratio']}",
        mem_ratio <= TARGETS["worker_memory_ratio"],
    )
    row(
        "Memory of one serving worker after load: USS (MiB)",
        worker_uss,
        ref_mem["uss_mib"],
        worker_uss / ref_mem["uss_mib"],
        "-",
        None,
    )
    row(
        "Memory of one serving worker after load: RSS (MiB)",
        statistics.median(w["rss_mib"] for w in workers),
        ref_mem["rss_mib"],
        statistics.median(w["rss_mib"] for w in workers) / ref_mem["rss_mib"],
        "-",
        None,
    )
    server_pss = sum(w["pss_mib"] for w in workers) + r["memory_mib"]["ours_master"]["pss_mib"]
    row(
        f"Memory of the whole server (master + {len(workers)} workers): PSS (MiB)",
        server_pss,
        ref_mem["pss_mib"],
        server_pss / ref_mem["pss_mib"],
        "-",
        None,
    )
    start = r["startup_s"]
    row(
        "Start-up to first 200 on /readyz (s, median)",
        start["ours"]["median"],
        start["reference"]["median"],
        start["ours"]["median"] / start["reference"]["median"],
        "< 1 s",
        start["ours"]["median"] < TARGETS["startup_s"],
    )
    checks = [(f"predict c={c}", v) for c, v in ours_p.items()] + [("batch c=1", ours_b)]
    lost_ok = all(v["logged_2xx_equal"] for _, v in checks)
    detail = ", ".join(
        f"{name}: {v['ok']} 2xx / "
        + (
            f"{v['log_batches']} batch rows holding {v['log_rows']} predictions"
            if "log_batches" in v
            else f"{v['log_rows']} rows"
        )
        for name, v in checks
    )
    row(
        f"Nothing lost: predictions logged = predictions answered 2xx ({detail})",
        sum(v["ok"] for _, v in checks),
        None,
        None,
        "equal",
        lost_ok,
    )
    return rows


def _fmt(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "**no**"
    if isinstance(value, int):
        return f"{value:,}"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 1:
        return f"{value:.2f}"
    return f"{value:.4f}"


def markdown(r: dict) -> str:
    m = r["machine"]
    t = r["training"]["methods"]
    lines = [
        f"Benchmark run {r['started_at']} on {m['cpus']} CPUs (load average before "
        f"{m['load_average_before'][0]:.2f}, after {m['load_average_after'][0]:.2f}), commit {m['git']}, "
        f"{r['elapsed_s']:.0f} s. gunicorn: {r['gunicorn']['workers']} workers (Dockerfile CMD); "
        f"reference: FastAPI + plain uvicorn, 1 worker. PostgreSQL {r['postgres']['server_version']}, "
        f"synchronous_commit={r['postgres']['synchronous_commit']}. wrk: {r['settings']['duration_s']:g} s per run.",
        "",
        "| Measure | Ours | Reference | Ratio | Target | Met? |",
        "| --- | ---: | ---: | ---: | --- | --- |",
    ]
    for row in r["summary"]:
        lines.append(
            f"| {row['what']} | {_fmt(row['ours'])} | {_fmt(row['reference'])} | {_fmt(row['ratio'])} | "
            f"{row['target']} | {_fmt(row['met'])} |"
        )
    lines += rounds_table(r)
    lines += [
        "",
        "Training methods (median of repeated fits on the standard split, "
        f"{r['training']['n_train']} train / {r['training']['n_test']} test rows):",
        "",
        "| Method | Median (ms) | Held-out R² |",
        "| --- | ---: | ---: |",
    ]
    names = {
        "ours": "SGDLinearRegression (defaults)",
        "sklearn_sgd_pipeline": "StandardScaler + SGDRegressor (tuned)",
        "closed_form": "LinearRegression (closed form)",
        "original_loop": "Original loop (15,000 steps)",
    }
    for key, name in names.items():
        lines.append(f"| {name} | {t[key]['median_ms']:.3f} | {t[key]['r2_test']:.5f} |")
    return "\n".join(lines) + "\n"


def rounds_table(r: dict) -> list[str]:
    """Each round at 16 connections, in the order they ran, so the spread behind a median shows."""
    sides = [s for s in ("reference", "ours", "ceiling", "unlogged") if "16" in r["load"].get(s, {}).get("predict", {})]
    if not all("rounds" in r["load"][s]["predict"]["16"] for s in sides):
        return []
    names = {
        "reference": "Reference",
        "ours": "Ours",
        "ceiling": "Ceiling: gunicorn + INSERT",
        "unlogged": "Ceiling: gunicorn alone",
    }
    rounds = {s: r["load"][s]["predict"]["16"]["rounds"] for s in sides}
    lines = [
        "",
        "Single predictions at 16 connections, round by round (requests/s, p99 ms; the table above "
        "reports the medians). The ceilings run our gunicorn configuration with no Django "
        "(bench/ceiling/app.py); logged = answered holds for the ceiling too: "
        + ("yes" if r["load"]["ceiling"]["predict"]["16"].get("logged_2xx_equal") else "**no**")
        + ".",
        "",
        "| Round | " + " | ".join(names[s] for s in sides) + " | Ours / reference |",
        "| --- | " + " | ".join("---:" for _ in sides) + " | ---: |",
    ]
    for i in range(len(rounds["ours"])):
        cells = [f"{rounds[s][i]['rps']:,.0f} ({rounds[s][i]['p99_ms']:.1f})" for s in sides]
        ratio = rounds["ours"][i]["rps"] / rounds["reference"][i]["rps"]
        lines.append(f"| {i + 1} | " + " | ".join(cells) + f" | {ratio:.2f} |")
    return lines


def write(results: dict, base: Path) -> None:
    base.parent.mkdir(parents=True, exist_ok=True)
    base.with_suffix(".json").write_text(json.dumps(results, indent=2) + "\n")
    base.with_suffix(".md").write_text(markdown(results))
    log(f"wrote {base.with_suffix('.json')} and {base.with_suffix('.md')}")


if __name__ == "__main__":
    sys.exit(main())
