"""Our service at two commits, side by side: single predictions at 16 connections, interleaved.

Usage (from the repository root)::

    .venv/bin/python bench/compare.py BASE [OTHER]   # OTHER defaults to HEAD

Each revision is checked out in a temporary git worktree and served by its own Dockerfile command
with its own ``bmiproject/gunicorn.conf.py``, with this checkout's virtualenv and the benchmark's
environment (``bench/run.py``'s ``django_env``, so the production task definition's
``GUNICORN_ACCESS_LOG`` too), against one database that this checkout migrates: both revisions
must share the schema. Then the same load as ``--ab`` (bench/run.py): a warm-up, ``--rounds``
interleaved rounds, each starting one side later, medians and the median of per-round ratios.
Results: ``bench/results/compare_<base>_<other>.{json,md}``.

What it is for: saying what a change did to the busiest request on the same machine in one run,
where ratios to the reference from different days are not comparable (docs/performance.md).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import run as bench  # bench/run.py, beside this file


def _revision(rev: str) -> str:
    return subprocess.run(
        ["git", "rev-parse", "--short", f"{rev}^{{commit}}"], cwd=bench.ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()


def main() -> int:
    parser = argparse.ArgumentParser(description="Two commits of our service side by side.")
    parser.add_argument("base")
    parser.add_argument("other", nargs="?", default="HEAD")
    parser.add_argument("--rounds", type=int, default=4, help="Interleaved rounds (default 4).")
    parser.add_argument("--duration", type=int, default=8, help="Seconds per wrk run (default 8).")
    parser.add_argument(
        "--database-url",
        default=os.environ.get("BENCH_DATABASE_URL", bench.DEFAULT_DATABASE_URL),
        help="PostgreSQL database to create (dropped first!). Default %(default)s.",
    )
    args = parser.parse_args()
    args.workers = None
    bench.require_wrk()
    revisions = [_revision(args.base), _revision(args.other)]
    began = time.perf_counter()
    workdir = Path(tempfile.mkdtemp(prefix="bmi-bench-compare-"))
    servers, trees = [], []
    try:
        env = bench.django_env(args, workdir)
        bench.prepare_database(args, env, trains=1)
        single = workdir / "single.json"
        single.write_text(json.dumps({"bmi": 27.4}))
        sides = {}
        for i, revision in enumerate(revisions):
            tree = workdir / f"tree-{revision}"
            subprocess.run(["git", "worktree", "add", "--detach", str(tree), revision], cwd=bench.ROOT, check=True)
            trees.append(tree)
            port = bench.free_port()
            side_env = {**env, "PROMETHEUS_MULTIPROC_DIR": str(workdir / f"prometheus-{i}")}
            command = bench.image_command(tree)
            server = bench.gunicorn_server(f"rev-{revision}", command, side_env, port, workdir, cwd=tree)
            server.start()
            servers.append(server)
            sides[revision] = bench.our_side(revision, server, port, single)
        combined, load_averages = bench.interleave(
            sides, rounds=args.rounds, duration=args.duration, database_url=args.database_url
        )
    finally:
        for server in servers:
            server.stop()
        for tree in trees:
            subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=bench.ROOT, check=False)
        shutil.rmtree(workdir, ignore_errors=True)
    results = {
        "revisions": revisions,
        "rounds": args.rounds,
        "duration_s": args.duration,
        "elapsed_s": time.perf_counter() - began,
        "load_average_per_round": load_averages,
        "load_average_after": os.getloadavg(),
        "load": combined,
    }
    text = markdown(results)
    bench.write(results, bench.RESULTS / f"compare_{revisions[0]}_{revisions[1]}", text)
    print(text)
    return 0


def markdown(r: dict) -> str:
    base, other = r["revisions"]
    a, b = r["load"][base], r["load"][other]
    cpu = {name: x["cpu_ms_per_request"] + x["postgres_cpu_ms_per_request"] for name, x in r["load"].items()}
    lines = [
        f"Commit {base} against {other}: single predictions at 16 connections, {r['rounds']} interleaved rounds of "
        f"{r['duration_s']} s, medians; {r['elapsed_s']:.0f} s, load average after {r['load_average_after'][0]:.2f}.",
        "",
        "| Commit | requests/s | × first | p99 (ms) | CPU/request: gunicorn (ms) | PostgreSQL (ms) "
        "| logged = answered |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for name, x in ((base, a), (other, b)):
        lines.append(
            f"| {name} | {x['rps']:,.0f} | {bench.rps_ratio(x, a):.3f} | {x['p99_ms']:.1f} | "
            f"{x['cpu_ms_per_request']:.2f} | {x['postgres_cpu_ms_per_request']:.2f} | "
            f"{'yes' if x['logged_2xx_equal'] else '**no**'} |"
        )
    change = cpu[other] / cpu[base] - 1
    lines += ["", f"CPU per prediction, gunicorn and PostgreSQL together: {change:+.1%} from {base} to {other}."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
