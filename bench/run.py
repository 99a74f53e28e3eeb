"""The benchmark: our service against the original (FastAPI reference), in one run on one machine.

One command (from the repository root; see docs/performance.md)::

    .venv/bin/python bench/run.py            # or: make bench

It creates its own PostgreSQL database (``bmi_bench``, dropped and recreated), migrates it, times
``manage.py train``, starts gunicorn exactly as the Docker image does (the Dockerfile's CMD with
bmiproject/gunicorn.conf.py and the production task definition's GUNICORN_ACCESS_LOG), the
reference (plain uvicorn, one worker, access log on), the
reference made to validate and log every prediction (the logging peer, bench/reference/logged.py)
and the no-framework ceiling (bench/ceiling/app.py) on free ports, drives them with wrk, checks
that every 2xx prediction was logged, measures memory and start-up, profiles one more (untimed)
16-connection run of ours with py-spy (``bench/profile_summary.py`` splits its CPU by layer), tears
everything down, prints a table and writes ``bench/results/latest.{json,md}`` and the profile
``bench/results/latest_profile_predict_c16.txt``.

``--quick`` is a smoke run (short runs, results in the git-ignored ``bench/results/quick_*``);
``--ab health-checks`` (or ``access-log``) measures variants of our own service against each other
instead (see AB_SETS).

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
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
RESULTS = BENCH / "results"
PYTHON = ROOT / ".venv" / "bin" / "python"
BENCH_VENV = BENCH / ".venv" / "bin"
WRK_SCRIPT = BENCH / "wrk" / "logged.lua"
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/bmi_bench"
BATCH_SIZE = 10_000
# The original service ran one uvicorn worker; its logging variant runs as many.
REFERENCE_WORKERS = 1
# The logging peer's own table (bench/reference/logged.py creates it), beside ours, never ours.
PEER_TABLE = "bench_logged_reference"
# The load balancer sets this on every request it forwards; with it, production's HTTPS redirect
# (SECURE_SSL_REDIRECT, on by default) lets the request through as it would in ECS.
OUR_HEADERS = "X-Forwarded-Proto: https"
# Each connection spends the last DRAIN_S seconds of a run on a GET that logs nothing (logged.lua).
DRAIN_S = 0.5

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


# Our prediction log counted as (requests logged, predictions logged): one predictor_predictionlog row
# per answered request, with ``size`` predictions in its float8[] arrays (1 for a single prediction,
# N for a batch of N).
OUR_LOG_QUERY = "SELECT count(*), coalesce(sum(size), 0) FROM predictor_predictionlog"
# The logging peer writes one row per prediction.
PEER_LOG_QUERY = f"SELECT count(*), count(*) FROM {PEER_TABLE}"


class LogCounter:
    """What one log gained since the last call, as (requests logged, predictions logged).

    ``query`` returns both totals; the bench deletes nothing, so differences of totals are exact.
    """

    def __init__(self, connection, query: str):
        self.connection = connection
        self.query = query
        self.totals = self._totals()

    def _totals(self) -> tuple[int, int]:
        with self.connection.cursor() as cursor:
            cursor.execute(self.query)
            requests, predictions = cursor.fetchone()
        return int(requests), int(predictions)

    def new(self) -> tuple[int, int]:
        before, self.totals = self.totals, self._totals()
        return self.totals[0] - before[0], self.totals[1] - before[1]


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


def committed_transactions(url: str) -> int:
    """Transactions committed in the benchmark database, once every other backend has exited.

    A live backend reports its counts to pg_stat_database up to ten seconds late; one that exits
    reports them as it goes. So this waits (up to 30 s) for the servers' connections to close.
    """
    connection = _connect(url)
    with connection.cursor() as cursor:
        for _ in range(300):
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() "
                "AND backend_type = 'client backend'"
            )
            if cursor.fetchone()[0] == 0:
                break
            time.sleep(0.1)
        else:
            raise RuntimeError("the benchmark database still has connections; is a server still running?")
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute("SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()")
        committed = cursor.fetchone()[0]
    connection.close()
    return committed


def backend_cpu_used(before: dict[int, float], after: dict[int, float]) -> float:
    # A lower bound: a backend that exited during the run (CONN_MAX_AGE) took its CPU with it.
    return sum(seconds - before.get(pid, 0.0) for pid, seconds in after.items())


class Server:
    def __init__(self, name: str, command: list[str], env: dict, ready_url: str, logfile: Path, cwd: Path = ROOT):
        self.name = name
        self.command = command
        self.env = env
        self.ready_url = ready_url
        self.logfile = logfile
        self.cwd = cwd  # the checkout served (bench/compare.py serves others)
        self.process: subprocess.Popen | None = None

    def start(self) -> float:
        out = self.logfile.open("ab")
        started = time.perf_counter()
        self.process = subprocess.Popen(
            self.command, cwd=self.cwd, env=self.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
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


def gunicorn_server(name: str, command: list[str], env: dict, port: int, workdir: Path, cwd: Path = ROOT) -> Server:
    """A gunicorn command on ``port`` in checkout ``cwd``, ready when ``/readyz`` answers 200; logs in ``workdir``."""
    ready = f"http://127.0.0.1:{port}/readyz"
    return Server(name, command, {**env, "PORT": str(port)}, ready, workdir / f"{name}.log", cwd)


# --- wrk -------------------------------------------------------------------------------------------


def require_wrk() -> None:
    if shutil.which("wrk") is None:
        raise SystemExit("wrk, the load generator, is not installed: apt-get install wrk (or make bench as root).")


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
    for key in ("ok", "other", "drained", "in_flight_at_end", "log_requests", "log_predictions"):
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


@dataclass
class Side:
    """One server as the load sees it: where each kind of request goes, and which log it writes."""

    name: str
    server: Server
    base: str
    requests: dict[str, tuple[str, Path, str]]  # kind -> (path, body file, marker of a logged answer)
    headers: str = ""
    drain_path: str = "/healthz"
    writes: str | None = None  # the key of the LogCounter it writes to; None: it logs nothing


def measure(side: Side, kind: str, c: int, duration: float, *, counters: dict, database_url: str) -> dict:
    """One wrk run against ``side``, with its CPU per request and its "logged = answered" check."""
    path, body, marker = side.requests[kind]
    cpu_before = side.server.cpu()
    pg_before = backend_cpu(database_url) if side.writes else {}
    result = run_wrk(
        side.base,
        path,
        body,
        marker,
        c,
        duration,
        headers=side.headers,
        drain_path=side.drain_path,
        drain=DRAIN_S,
    )
    # CPU per answered request is steadier than requests/s on a shared machine: it does not depend
    # on how much CPU the other tenants left us during the run.
    answered = max(1, result["ok"] + result["drained"])
    result["cpu_ms_per_request"] = (side.server.cpu() - cpu_before) * 1e3 / answered
    result["postgres_cpu_ms_per_request"] = (
        backend_cpu_used(pg_before, backend_cpu(database_url)) * 1e3 / answered if side.writes else 0.0
    )
    # Every log is counted after every run, so each run's counts are its own, and a side writing
    # where it should not (or nothing where it should) fails the check. Exactly the answered
    # requests are logged, unless some were still in flight when wrk stopped (slower than the
    # drain, on a loaded machine): the server may have logged those without wrk seeing the answer.
    in_flight = result["sent"] - result["ok"] - result["other"]
    result["in_flight_at_end"] = in_flight
    result["logged_2xx_equal"] = result["other"] == 0
    per_request = BATCH_SIZE if kind == "batch" else 1
    for key, counter in counters.items():
        requests, predictions = counter.new()
        if key == side.writes:
            result["log_requests"], result["log_predictions"] = requests, predictions
            result["logged_2xx_equal"] &= result["ok"] <= requests <= result["ok"] + in_flight
            result["logged_2xx_equal"] &= predictions == requests * per_request
        else:
            result["logged_2xx_equal"] &= (requests, predictions) == (0, 0)
    log(
        f"{side.name:16} {kind:7} c={c:<3} {result['rps']:8.1f} req/s  p50 {result['p50_ms']:7.2f} ms  "
        f"p99 {result['p99_ms']:7.2f} ms  2xx {result['ok']}"
        + (f"  logged {result['log_requests']}" if side.writes else "")
        + ("" if result["logged_2xx_equal"] else "  LOGGED != ANSWERED")
    )
    return result


# --- Profile ---------------------------------------------------------------------------------------

PROFILE_RATE_HZ = 200


def profile_ours(server: Server, run, duration: float, timed: dict | None, output: Path) -> dict:
    """``run`` (one more 16-connection run of ours) under py-spy, its CPU split by layer.

    After the timed rounds, so the profiler slows no figure the table reports. ``--gil``: in each
    process only the thread holding the GIL is sampled, i.e. Python running; without it py-spy counts
    every runnable thread, and on two oversubscribed cores a thread woken from epoll or from
    PostgreSQL's answer stays runnable, waiting for a core, long enough to dominate the profile.
    ``--nonblocking``: the processes are read without being paused (paused workers answer less; the
    price is a slightly less exact stack now and then). The layers' shares become microseconds per
    request through the timed rounds' median CPU per request of our server's processes (so the
    kernel's share, system calls included, is spread over the layers by their share); the
    PostgreSQL backends' CPU per request, which no Python profile sees, is reported beside them.
    The raw profile (collapsed stacks) is kept beside the results.
    """
    import profile_summary  # bench/, on sys.path as this script's folder

    path = output.with_name(f"{output.name}_profile_predict_c16.txt")
    profiler = subprocess.Popen(
        [
            str(BENCH_VENV / "py-spy"),
            "record",
            "--pid",
            str(server.process.pid),
            "--subprocesses",
            "--nonblocking",
            "--gil",
            "--rate",
            str(PROFILE_RATE_HZ),
            "--format",
            "raw",
            "--output",
            str(path),
            "--duration",
            str(int(duration)),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    measured = run()
    try:
        _, errors = profiler.communicate(timeout=duration + 30)
    except subprocess.TimeoutExpired:
        profiler.kill()
        raise RuntimeError("py-spy did not finish its recording") from None
    if profiler.returncode != 0 or not path.exists():
        raise RuntimeError(
            f"py-spy failed ({errors.strip()[-500:]}); it needs to ptrace the workers (root or "
            "CAP_SYS_PTRACE). --no-profile runs the benchmark without it."
        )
    summary = profile_summary.summarize(str(path))
    basis = timed or measured
    gunicorn_us, postgres_us = basis["cpu_ms_per_request"] * 1e3, basis["postgres_cpu_ms_per_request"] * 1e3
    for row in summary["rows"]:
        row["us_per_request"] = row["share"] * gunicorn_us
    layers = [
        {"layer": layer, "share": share, "us_per_request": share * gunicorn_us}
        for layer, share in profile_summary.layer_totals(summary)
    ]
    log(f"profile: {summary['samples']} samples in {path.relative_to(ROOT)}")
    return {
        "file": str(path.relative_to(ROOT)),
        "rate_hz": PROFILE_RATE_HZ,
        "samples": summary["samples"],
        "basis": "timed rounds (median)" if timed else "the profiled run",
        "gunicorn_cpu_us_per_request": gunicorn_us,
        "postgres_cpu_us_per_request": postgres_us,
        "rows": summary["rows"],
        "layers": layers,
        "profiled_run": measured,
    }


def profile_lines(r: dict) -> list[str]:
    """The profile as a table: each layer's total, then its parts."""
    found = r.get("profile")
    if not found:
        return []
    run = found["profiled_run"]
    lines = [
        "",
        f"Where a single prediction's CPU goes, 16 connections: py-spy at {found['rate_hz']} Hz over our "
        f"gunicorn master and workers during one more run after the timed ones ({run['rps']:,.0f} requests/s "
        f"under the profiler, logged = answered: {_fmt(run['logged_2xx_equal'])}), {found['samples']:,} samples "
        f"of the thread holding each process's GIL (`{found['file']}`, split by `bench/profile_summary.py`). "
        f"Microseconds are each share of our processes' CPU per request in the {found['basis']}, "
        f"{found['gunicorn_cpu_us_per_request']:,.0f} µs (system calls spread by share: psycopg2's wait for "
        "PostgreSQL holds no GIL and costs no CPU); PostgreSQL's backends, which no Python profile sees, "
        "are the last row.",
        "",
        "| Layer | Part | Share of our processes' CPU | µs per request |",
        "| --- | --- | ---: | ---: |",
    ]
    for layer in found["layers"]:
        share, us = f"{100 * layer['share']:.1f} %", f"{layer['us_per_request']:,.0f}"
        lines.append(f"| **{layer['layer']}** | | **{share}** | **{us}** |")
        for row in found["rows"]:
            if row["layer"] == layer["layer"]:
                lines.append(f"| | {row['part']} | {100 * row['share']:.1f} % | {row['us_per_request']:,.0f} |")
    lines.append(
        f"| **PostgreSQL backends** | the INSERT and its durable commit, server side | - | "
        f"**{found['postgres_cpu_us_per_request']:,.0f}** |"
    )
    return lines


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


def image_command(tree: Path = ROOT) -> list[str]:
    """The Dockerfile's CMD (of checkout ``tree``), with gunicorn taken from this project's virtualenv."""
    text = (tree / "Dockerfile").read_text()
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


def django_eval(env: dict, expression: str):
    """The JSON value of a Python expression over Django's ``settings``, evaluated with ``env``."""
    code = f"import json; from django.conf import settings; print(json.dumps({expression}))"
    out = subprocess.run(
        [str(PYTHON), "manage.py", "shell", "-c", code], cwd=ROOT, env=env, check=True, capture_output=True, text=True
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def package_versions() -> dict:
    """The versions of what serves each side: ours from .venv, the references' from bench/.venv."""
    code = "import json, importlib.metadata as m, sys; print(json.dumps({n: m.version(n) for n in sys.argv[1:]}))"
    found = {}
    for python, names in (
        (PYTHON, ["Django", "djangorestframework", "gunicorn", "psycopg2-binary"]),
        (BENCH_VENV / "python", ["fastapi", "uvicorn", "asyncpg", "pydantic"]),
    ):
        out = subprocess.run([str(python), "-c", code, *names], check=True, capture_output=True, text=True).stdout
        found.update(json.loads(out))
    return found


def uvicorn_server(name: str, module: str, port: int, env: dict, workdir: Path) -> Server:
    """``bench/reference/<module>.py`` under plain uvicorn, as the original service ran."""
    command = [
        str(BENCH_VENV / "uvicorn"),
        f"{module}:app",
        "--app-dir",
        str(BENCH / "reference"),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(REFERENCE_WORKERS),
    ]
    return Server(name, command, env, f"http://127.0.0.1:{port}/health", workdir / f"{name}.log")


def post_status(url: str, body: dict, headers: dict) -> int:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json", **headers}
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def production_web_environment() -> dict[str, str]:
    """The web container's environment in the production task definition."""
    task = json.loads((ROOT / "deploy" / "ecs" / "production.json").read_text())
    (web,) = [spec for spec in task["containerDefinitions"] if spec["name"] == "web"]
    return {item["name"]: item["value"] for item in web["environment"]}


def django_env(args, workdir: Path) -> dict:
    """The environment our service runs with in the benchmark (production settings, throttling off)."""
    env = {
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
        # As ECS runs it: the nginx sidecar writes the access lines (its cost is nginx's, in C,
        # outside the server measured here), gunicorn none.
        "GUNICORN_ACCESS_LOG": production_web_environment()["GUNICORN_ACCESS_LOG"],
    }
    if args.workers:
        env["WEB_CONCURRENCY"] = str(args.workers)
    return env


def prepare_database(args, env: dict, trains: int) -> list[float]:
    """Recreate, migrate and collect static files; train ``trains`` times (the last model is
    active) and return each ``manage.py train``'s seconds."""
    log(f"database: recreating {urlparse(args.database_url).path.lstrip('/')}")
    recreate_database(args.database_url)
    manage(env, "migrate", "--no-input")
    manage(env, "collectstatic", "--no-input")
    return [manage(env, "train", "--seed", str(seed)) for seed in range(trains)]


def run_header(args) -> dict:
    return {
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
        "versions": package_versions(),
        "settings": {
            "duration_s": args.duration,
            "drain_s": DRAIN_S,
            "connections": [int(c) for c in args.connections.split(",")],
            "rounds_c16": args.rounds,
            "batch_size": BATCH_SIZE,
            "quick": args.quick,
        },
    }


def parse_args():
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
        "--no-profile",
        dest="profile",
        action="store_false",
        help="Skip the py-spy profile of ours (one more, untimed, 16-connection run after the timed ones).",
    )
    parser.add_argument(
        "--ab",
        choices=sorted(AB_SETS),
        help="Instead of the comparison, an A/B of our service's variants: single predictions at 16 "
        "connections, interleaved, --rounds rounds (health-checks: CONN_HEALTH_CHECKS off, the default, and on; "
        "access-log: gunicorn's access line off, as ECS runs it, and on).",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="A smoke run proving the benchmark works: 3 s per wrk run, 2 rounds, 16 connections only, "
        "1 start, 5 fits; results go to bench/results/quick_* (git-ignored), never latest.*.",
    )
    parser.add_argument(
        "--output", default=None, help="Results path without extension (default bench/results/latest, or ab_<set>)."
    )
    args = parser.parse_args()
    if args.quick:
        args.duration, args.rounds, args.connections, args.starts, args.fit_repeat = 3, 2, "16", 1, 5
    if args.output is None:
        name = f"ab_{args.ab}" if args.ab else "latest"
        args.output = str(RESULTS / (f"quick_{name}" if args.quick else name))
    return args


def main() -> int:
    args = parse_args()
    if not (BENCH_VENV / "uvicorn").exists():
        raise SystemExit(
            "bench/.venv is missing: python3.11 -m venv bench/.venv && "
            "bench/.venv/bin/pip install -r bench/requirements.txt"
        )
    require_wrk()
    if args.ab:
        return run_ab(args)
    return run_comparison(args)


def run_comparison(args) -> int:
    connections = [int(c) for c in args.connections.split(",")]
    began = time.perf_counter()
    results = run_header(args)

    log("training: timing every fitting method")
    results["training"] = training(args.fit_repeat)

    workdir = Path(tempfile.mkdtemp(prefix="bmi-bench-"))
    servers: list[Server] = []
    try:
        env = django_env(args, workdir)
        train_times = prepare_database(args, env, trains=3)
        results["postgres"] = server_settings(args.database_url)
        results["training"]["manage_py_train_s"] = {"median": median_of(train_times), "all": train_times}
        version, slope, intercept = active_line(args.database_url)
        bmi_min, bmi_max = django_eval(env, "[settings.PREDICTOR_BMI_MIN, settings.PREDICTOR_BMI_MAX]")

        # Start-up: each server is started and stopped a few times; the last start stays up.
        our_port, ref_port, peer_port, ceiling_port = (free_port() for _ in range(4))
        ours = gunicorn_server("gunicorn", image_command(), env, our_port, workdir)
        ref_env = {**os.environ, "REFERENCE_W": repr(slope), "REFERENCE_B": repr(intercept)}
        reference = uvicorn_server("uvicorn", "app", ref_port, ref_env, workdir)
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
        # The original made to log every prediction durably and to validate the BMI as ours does.
        peer_env = {
            **ref_env,
            "REFERENCE_VERSION": str(version),
            "DATABASE_URL": args.database_url,
            "REFERENCE_LOG_TABLE": PEER_TABLE,
            "REFERENCE_BMI_MIN": repr(bmi_min),
            "REFERENCE_BMI_MAX": repr(bmi_max),
        }
        peer = uvicorn_server("uvicorn-logged", "logged", peer_port, peer_env, workdir)
        peer.start()
        servers.append(peer)
        # Not timed at start-up and not a target: the ceiling any Django code of ours competes with.
        ceiling = gunicorn_server("ceiling", ceiling_command(), env, ceiling_port, workdir)
        ceiling.start()
        servers.append(ceiling)
        results["gunicorn"] = {
            "workers": len(ours.serving_pids()),
            "command": image_command(),
            "access_log": env["GUNICORN_ACCESS_LOG"],
        }

        rng = random.Random(0)
        single = workdir / "single.json"
        single.write_text(json.dumps({"bmi": 27.4}))
        single_ref = workdir / "single_ref.json"
        single_ref.write_text(json.dumps({"input": 27.4}))
        bmis = [round(rng.uniform(18.0, 42.0), 2) for _ in range(BATCH_SIZE)]
        batch = workdir / "batch.json"
        batch.write_text(json.dumps({"bmi": bmis}))
        batch_ref = workdir / "batch_ref.json"
        batch_ref.write_text(json.dumps({"input": bmis}))
        our_base, ref_base = f"http://127.0.0.1:{our_port}", f"http://127.0.0.1:{ref_port}"
        peer_base, ceiling_base = f"http://127.0.0.1:{peer_port}", f"http://127.0.0.1:{ceiling_port}"
        sides = {
            side.name: side
            for side in (
                Side(
                    "reference",
                    reference,
                    ref_base,
                    {
                        "predict": ("/stream", single_ref, '"Response Predict"'),
                        "batch": ("/batch", batch_ref, '"Response Predict"'),
                    },
                    drain_path="/health",
                ),
                Side(
                    "reference_logged",
                    peer,
                    peer_base,
                    {"predict": ("/stream", single_ref, '"prediction_id"')},
                    drain_path="/health",
                    writes="reference_logged",
                ),
                Side(
                    "ours",
                    ours,
                    our_base,
                    {
                        "predict": ("/api/v1/predict", single, '"prediction"'),
                        "batch": ("/api/v1/predict/batch", batch, '"batch_id"'),
                    },
                    headers=OUR_HEADERS,
                    writes="ours",
                ),
                Side(
                    "ceiling",
                    ceiling,
                    ceiling_base,
                    {"predict": ("/api/v1/predict", single, '"prediction"')},
                    writes="ours",
                ),
                Side("unlogged", ceiling, ceiling_base, {"predict": ("/unlogged", single, '"prediction"')}),
            )
        }

        # The peer's claims, checked rather than trusted: its commits are as durable as ours, and
        # it refuses the BMIs ours refuses (just outside the range) and takes the bounds themselves.
        peer_commit = json.loads(urllib.request.urlopen(f"{peer_base}/health", timeout=5).read())["synchronous_commit"]
        if peer_commit != results["postgres"]["synchronous_commit"]:
            raise RuntimeError(f"the logging peer commits with synchronous_commit={peer_commit}, ours does not")
        probes = {"ours": (our_base, "/api/v1/predict", "bmi"), "reference_logged": (peer_base, "/stream", "input")}
        results["validation"] = {}
        for name, (base, path, field) in probes.items():
            headers = {"X-Forwarded-Proto": "https"} if name == "ours" else {}
            statuses = {
                repr(value): post_status(base + path, {field: value}, headers)
                for value in (bmi_min - 0.01, bmi_max + 0.01, bmi_min, bmi_max)
            }
            results["validation"][name] = statuses
            if list(statuses.values()) != [400, 400, 200, 200]:
                raise RuntimeError(f"{name} validates the BMI range {bmi_min}..{bmi_max} unlike ours: {statuses}")
        log(f"BMI range {bmi_min:g}..{bmi_max:g} validated alike: {results['validation']}")

        connection = _connect(args.database_url)
        counters = {
            "ours": LogCounter(connection, OUR_LOG_QUERY),
            "reference_logged": LogCounter(connection, PEER_LOG_QUERY),
        }

        def load(side: str, kind: str, c: int, duration: float) -> dict:
            return measure(sides[side], kind, c, duration, counters=counters, database_url=args.database_url)

        log("warm-up")
        for side in ("ours", "reference"):
            load(side, "predict", 16, 3)
            load(side, "batch", 1, 2)
        for side in ("reference_logged", "ceiling"):
            load(side, "predict", 16, 3)

        # Interleaved: each scenario runs on the reference and on ours back to back, so a change in
        # the machine's background load during the run affects both sides alike. At 16 connections
        # (the targets' load) the round is repeated and the logging peer and the ceilings run too:
        # the medians are what the table reports, and each round's figures are kept in the JSON.
        runs = {side: {"predict": {}, "batch": {}} for side in sides}
        for c in connections:
            rounds, names = (args.rounds, list(sides)) if c == 16 else (1, ["reference", "ours"])
            measured = {side: [] for side in names}
            for _ in range(rounds):
                for side in names:
                    measured[side].append(load(side, "predict", c, args.duration))
            for side, results_ in measured.items():
                runs[side]["predict"][str(c)] = combine_rounds(results_)
        for side in ("reference", "ours"):
            runs[side]["batch"]["1"] = load(side, "batch", 1, args.duration)
        results["load"] = runs
        if args.profile:
            results["profile"] = profile_ours(
                ours,
                lambda: load("ours", "predict", 16, args.duration),
                args.duration,
                runs["ours"]["predict"].get("16"),
                Path(args.output),
            )

        results["memory_mib"] = {
            "ours_workers": [memory(pid) for pid in ours.serving_pids()],
            "ours_master": memory(ours.process.pid),
            "reference": memory(reference.process.pid),
            "reference_logged": memory(peer.process.pid),
        }
        connection.close()
    finally:
        for server in servers:
            server.stop()
        shutil.rmtree(workdir, ignore_errors=True)

    results["machine"]["load_average_after"] = os.getloadavg()
    results["elapsed_s"] = time.perf_counter() - began
    results["summary"] = summarize(results)
    write(results, Path(args.output), markdown(results))
    print(markdown(results))
    return 0


# --- A/B of our own variants -----------------------------------------------------------------------

# Each set: variant name -> environment overrides of the service's own settings (its code runs
# unchanged). The first variant is the one the others are compared with.
AB_SETS = {
    # The one default that trades robustness for speed: with Django's health check on, a connection
    # that died while idle (a database restart) is replaced before the request's first query instead
    # of failing that one request with a 503; the price is a SELECT 1 round trip per request.
    "health-checks": {
        "as shipped: CONN_HEALTH_CHECKS off (the default)": {},
        "CONN_HEALTH_CHECKS on (SELECT 1 before a request's first query)": {"CONN_HEALTH_CHECKS": "1"},
    },
    # gunicorn's own access line per request, which ECS leaves to the nginx sidecar.
    "access-log": {
        "as ECS runs it: GUNICORN_ACCESS_LOG=0 (nginx writes the line)": {"GUNICORN_ACCESS_LOG": "0"},
        "GUNICORN_ACCESS_LOG=1 (gunicorn writes one too)": {"GUNICORN_ACCESS_LOG": "1"},
    },
}


def our_side(name: str, server: Server, port: int, single: Path) -> Side:
    """One of our servers as the single-prediction load sees it (``single``: the request body)."""
    return Side(
        name,
        server,
        f"http://127.0.0.1:{port}",
        {"predict": ("/api/v1/predict", single, '"prediction"')},
        headers=OUR_HEADERS,
        writes="ours",
    )


def interleave(sides: dict[str, Side], *, rounds: int, duration: float, database_url: str) -> tuple[dict, list]:
    """Single predictions at 16 connections on each side, after a warm-up, in ``rounds`` rounds each
    starting one side later (so none always runs first): ({name: combined rounds}, load averages)."""
    connection = _connect(database_url)
    counters = {"ours": LogCounter(connection, OUR_LOG_QUERY)}

    def load(name: str, seconds: float) -> dict:
        return measure(sides[name], "predict", 16, seconds, counters=counters, database_url=database_url)

    log("warm-up")
    for name in sides:
        load(name, 3)
    names = list(sides)
    measured = {name: [] for name in names}
    load_averages = []
    for round_ in range(rounds):
        load_averages.append(os.getloadavg())
        for name in names[round_ % len(names) :] + names[: round_ % len(names)]:
            measured[name].append(load(name, duration))
    connection.close()
    return {name: combine_rounds(runs) for name, runs in measured.items()}, load_averages


def run_ab(args) -> int:
    """Single predictions at 16 connections on each variant of our service, interleaved in rounds
    (each round starts one variant later, so none always runs first), medians reported."""
    variants = AB_SETS[args.ab]
    began = time.perf_counter()
    results = run_header(args)
    results["ab"] = args.ab
    results["settings"]["connections"] = [16]
    workdir = Path(tempfile.mkdtemp(prefix="bmi-bench-ab-"))
    servers: list[Server] = []
    try:
        env = django_env(args, workdir)
        prepare_database(args, env, trains=1)
        results["postgres"] = server_settings(args.database_url)
        single = workdir / "single.json"
        single.write_text(json.dumps({"bmi": 27.4}))
        sides, results["variants"] = {}, {}
        for i, (name, overrides) in enumerate(variants.items()):
            # Each variant its own Prometheus directory: gunicorn.conf.py empties it at start-up.
            variant_env = {**env, **overrides, "PROMETHEUS_MULTIPROC_DIR": str(workdir / f"prometheus-{i}")}
            checks = django_eval(variant_env, "settings.DATABASES['default']['CONN_HEALTH_CHECKS']")
            results["variants"][name] = {"environment": overrides, "conn_health_checks": checks}
            port = free_port()
            server = gunicorn_server(f"ab-{i}", image_command(), variant_env, port, workdir)
            server.start()
            servers.append(server)
            sides[name] = our_side(name, server, port, single)
            log(f"variant {i}: {name}: CONN_HEALTH_CHECKS {checks}")
        results["load"], results["load_average_per_round"] = interleave(
            sides, rounds=args.rounds, duration=args.duration, database_url=args.database_url
        )

        # Round trips that commit per prediction (in autocommit every statement does: the INSERT,
        # and Django's health-check SELECT 1 where it runs): exact and independent of the machine's
        # load, unlike the timings. Counted with one variant running at a time (see
        # committed_transactions), after the timed rounds.
        for server in servers:
            server.stop()
        for name, side in sides.items():
            before = committed_transactions(args.database_url)
            side.server.start()
            burst = run_wrk(
                side.base,
                *side.requests["predict"],
                16,
                3,
                headers=side.headers,
                drain_path=side.drain_path,
                drain=DRAIN_S,
            )
            side.server.stop()
            results["load"][name]["commits_per_prediction"] = (
                committed_transactions(args.database_url) - before
            ) / max(1, burst["ok"])
            log(f"{name}: {results['load'][name]['commits_per_prediction']:.3f} commits per prediction")
    finally:
        for server in servers:
            server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    results["machine"]["load_average_after"] = os.getloadavg()
    results["elapsed_s"] = time.perf_counter() - began
    write(results, Path(args.output), ab_markdown(results))
    print(ab_markdown(results))
    return 0


def ab_markdown(r: dict) -> str:
    m, v = r["machine"], r["versions"]
    names = list(r["load"])
    first = r["load"][names[0]]
    per_round = ", ".join(f"{load[0]:.2f}" for load in r["load_average_per_round"])
    lines = [
        f"A/B `{r['ab']}` run {r['started_at']} on {m['cpus']} CPUs, commit {m['git']}, {r['elapsed_s']:.0f} s. "
        f"Load average (1 min) before {m['load_average_before'][0]:.2f}, at each round's start {per_round}, "
        f"after {m['load_average_after'][0]:.2f}. Django {v['Django']}, gunicorn {v['gunicorn']}, "
        f"psycopg2 {v['psycopg2-binary']}, PostgreSQL {r['postgres']['server_version']} "
        f"(synchronous_commit={r['postgres']['synchronous_commit']}). Single predictions, 16 connections, "
        f"{r['settings']['duration_s']:g} s per run, {r['settings']['rounds_c16']} interleaved rounds, "
        f"medians; the ratio is the median of the per-round ratios to the first variant.",
        "",
        "| Variant | requests/s | × first | p50 (ms) | p99 (ms) | CPU/request: gunicorn (ms) | "
        "PostgreSQL (ms) | total (ms) | commits/prediction | logged = answered |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for name in names:
        x = r["load"][name]
        lines.append(
            f"| {name} | {_fmt(x['rps'])} | {rps_ratio(x, first):.3f} | {_fmt(x['p50_ms'])} | {_fmt(x['p99_ms'])} | "
            f"{_fmt(x['cpu_ms_per_request'])} | {_fmt(x['postgres_cpu_ms_per_request'])} | "
            f"{_fmt(x['cpu_ms_per_request'] + x['postgres_cpu_ms_per_request'])} | {x['commits_per_prediction']:.2f} | "
            f"{_fmt(x['logged_2xx_equal'])} |"
        )
    lines += [
        "",
        "What each variant ran, as Django's settings resolved it:",
        "",
        "| Variant | Environment | CONN_HEALTH_CHECKS |",
        "| --- | --- | --- |",
    ]
    for name, what in r["variants"].items():
        environment = ", ".join(f"`{k}={v}`" for k, v in what["environment"].items()) or "nothing set"
        lines.append(f"| {name} | {environment} | {what['conn_health_checks']} |")
    rounds = [x.get("rounds", [x]) for x in r["load"].values()]
    lines += [
        "",
        "Round by round (requests/s, p99 ms). Round 1 ran the variants in the order listed; each "
        "later round starts one variant further on, so none always runs first.",
        "",
        "| Round | " + " | ".join(names) + " |",
        "| --- | " + " | ".join("---:" for _ in names) + " |",
    ]
    for i in range(len(rounds[0])):
        cells = [f"{rs[i]['rps']:,.0f} ({rs[i]['p99_ms']:.1f})" for rs in rounds]
        lines.append(f"| {i + 1} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


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
        peer = r["load"].get("reference_logged", {}).get("predict", {}).get("16")
        if peer:
            what = "Logging peer, 16 conn.: the reference + asyncpg, one durable INSERT per prediction, BMI validated"
            row(f"{what}: requests/s", peer["rps"], ref16["rps"], rps_ratio(peer, ref16), "-", None)
            row(f"{what}: p99 (ms)", peer["p99_ms"], ref16["p99_ms"], peer["p99_ms"] / ref16["p99_ms"], "-", None)
            peer_cpu = peer["cpu_ms_per_request"] + peer["postgres_cpu_ms_per_request"]
            row(
                "Logging peer, 16 conn.: CPU per request (ms; uvicorn + PostgreSQL backends)",
                peer_cpu,
                ref16["cpu_ms_per_request"],
                peer_cpu / ref16["cpu_ms_per_request"],
                "-",
                None,
            )
            # The one row whose second column is the peer, not the reference: ours against a
            # service that does the same durable work.
            row(
                "Ours against the logging peer, 16 conn.: requests/s (second column: the peer)",
                ours16["rps"],
                peer["rps"],
                rps_ratio(ours16, peer),
                "-",
                None,
            )
            row(
                "Ours against the logging peer, 16 conn.: p99 (ms) (second column: the peer)",
                ours16["p99_ms"],
                peer["p99_ms"],
                ours16["p99_ms"] / peer["p99_ms"],
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
    row(
        f"Nothing lost: predictions logged = predictions answered 2xx ({logged_detail(checks)})",
        sum(v["ok"] for _, v in checks),
        None,
        None,
        "equal",
        all(v["logged_2xx_equal"] for _, v in checks),
    )
    peer = r["load"].get("reference_logged", {}).get("predict", {}).get("16")
    if peer:
        row(
            f"Logging peer: predictions logged = predictions answered 2xx ({logged_detail([('predict c=16', peer)])})",
            peer["ok"],
            None,
            None,
            "equal",
            peer["logged_2xx_equal"],
        )
    return rows


def logged_detail(checks: list[tuple[str, dict]]) -> str:
    """'predict c=16: 41118 2xx / 41118 rows, batch c=1: 922 2xx / 922 rows holding 9220000 predictions'."""
    return ", ".join(
        f"{name}: {v['ok']} 2xx / {v['log_requests']} rows"
        + (f" holding {v['log_predictions']} predictions" if v["log_predictions"] != v["log_requests"] else "")
        + (f", {v['in_flight_at_end']} still in flight when wrk stopped" if v.get("in_flight_at_end") else "")
        for name, v in checks
    )


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
    m, v = r["machine"], r["versions"]
    t = r["training"]["methods"]
    lines = [
        f"Benchmark run {r['started_at']} on {m['cpus']} CPUs (load average before "
        f"{m['load_average_before'][0]:.2f}, after {m['load_average_after'][0]:.2f}), commit {m['git']}, "
        f"{r['elapsed_s']:.0f} s. gunicorn {v['gunicorn']}: {r['gunicorn']['workers']} workers (Dockerfile CMD), "
        f"GUNICORN_ACCESS_LOG={r['gunicorn']['access_log']} as in the production task definition (nginx writes "
        "the access lines there), "
        f"Django {v['Django']}, DRF {v['djangorestframework']}, psycopg2 {v['psycopg2-binary']}; "
        f"reference: FastAPI {v['fastapi']} + plain uvicorn {v['uvicorn']}, {REFERENCE_WORKERS} worker, and the same "
        f"with asyncpg {v['asyncpg']} logging every prediction (the logging peer). "
        f"PostgreSQL {r['postgres']['server_version']}, synchronous_commit={r['postgres']['synchronous_commit']}. "
        f"wrk: {r['settings']['duration_s']:g} s per run"
        + (" (--quick: a smoke run, not a result)." if r["settings"].get("quick") else "."),
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
    lines += profile_lines(r)
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
    names = {
        "reference": "Reference",
        "reference_logged": "Logging peer: reference + asyncpg INSERT",
        "ours": "Ours",
        "ceiling": "Ceiling: gunicorn + INSERT",
        "unlogged": "Ceiling: gunicorn alone",
    }
    sides = [s for s in names if "16" in r["load"].get(s, {}).get("predict", {})]
    if not all("rounds" in r["load"][s]["predict"]["16"] for s in sides):
        return []
    rounds = {s: r["load"][s]["predict"]["16"]["rounds"] for s in sides}
    held = {s: r["load"][s]["predict"]["16"]["logged_2xx_equal"] for s in ("ceiling", "reference_logged") if s in sides}
    peer = "reference_logged" in sides
    lines = [
        "",
        "Single predictions at 16 connections, round by round (requests/s, p99 ms; the table above "
        "reports the medians). The ceilings run our gunicorn configuration with no Django "
        "(bench/ceiling/app.py); the logging peer is the reference made to validate the BMI and log "
        "every prediction durably (bench/reference/logged.py). Logged = answered holds for "
        + ", ".join(f"{names[s].split(':')[0].lower()}: {_fmt(ok)}" for s, ok in held.items())
        + ".",
        "",
        "| Round | "
        + " | ".join(names[s] for s in sides)
        + " | Ours / reference |"
        + (" Ours / logging peer |" if peer else ""),
        "| --- | " + " | ".join("---:" for _ in sides) + " | ---: |" + (" ---: |" if peer else ""),
    ]
    for i in range(len(rounds["ours"])):
        cells = [f"{rounds[s][i]['rps']:,.0f} ({rounds[s][i]['p99_ms']:.1f})" for s in sides]
        ratios = [rounds["ours"][i]["rps"] / rounds["reference"][i]["rps"]]
        if peer:
            ratios.append(rounds["ours"][i]["rps"] / rounds["reference_logged"][i]["rps"])
        lines.append(f"| {i + 1} | " + " | ".join(cells) + " | " + " | ".join(f"{x:.2f}" for x in ratios) + " |")
    return lines


def write(results: dict, base: Path, text: str) -> None:
    base.parent.mkdir(parents=True, exist_ok=True)
    base.with_suffix(".json").write_text(json.dumps(results, indent=2) + "\n")
    base.with_suffix(".md").write_text(text)
    log(f"wrote {base.with_suffix('.json')} and {base.with_suffix('.md')}")


if __name__ == "__main__":
    sys.exit(main())
