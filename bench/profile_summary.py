"""Where a request's time goes, from the py-spy profile bench/run.py --profile records.

Usage: .venv/bin/python bench/profile_summary.py bench/results/profile_predict_c16.speedscope.json

Counts the samples of worker threads inside a request (gunicorn's handle_request) and splits them
by the first matching frame, innermost first: so "INSERT" is time in the INSERT's round trip, not
the Python around it. py-spy samples threads that wait on a socket as busy, so these are shares of
the request's wall time, not of CPU.
"""

from __future__ import annotations

import collections
import json
import sys

# (label, function name, file name), matched innermost first.
CATEGORIES = [
    ("PostgreSQL: connection health check (SELECT 1)", "is_usable", "base.py"),
    ("PostgreSQL: INSERT ... RETURNING + commit", "_execute", "utils.py"),
    ("PostgreSQL: connect", "connect", "base.py"),
    ("gunicorn: access log", "access", "glogging.py"),
    ("gunicorn: write the response", "write", "wsgi.py"),
    ("gunicorn: send headers", "send_headers", "wsgi.py"),
    ("Serving: predict_one (Python)", "predict_one", "serving.py"),
    ("DRF: parse, validate, render", "post", "views.py"),
    ("DRF: authentication, permissions, throttles", "initial", "views.py"),
    ("DRF: dispatch and response", "dispatch", "views.py"),
    ("Django: middleware and URL resolution", "__call__", "base.py"),
    ("Django: middleware and URL resolution", "get_response", "base.py"),
    ("Django: WSGI request and response objects", "__call__", "wsgi.py"),
    ("gunicorn: read and parse the request", "handle_request", "gthread.py"),
]


def summarize(path: str) -> list[tuple[str, float]]:
    with open(path) as handle:
        data = json.load(handle)
    frames = data["shared"]["frames"]
    totals: collections.Counter = collections.Counter()
    in_request = 0.0
    for profile in data["profiles"]:
        for stack, weight in zip(profile["samples"], profile["weights"], strict=True):
            keys = [(frames[i]["name"].rsplit(".", 1)[-1], frames[i].get("file", "").rsplit("/", 1)[-1]) for i in stack]
            if ("handle_request", "gthread.py") not in keys:
                continue
            in_request += weight
            for name, file in reversed(keys):
                label = next((c[0] for c in CATEGORIES if c[1] == name and c[2] == file), None)
                if label:
                    totals[label] += weight
                    break
    return [(label, weight / in_request) for label, weight in totals.most_common()]


if __name__ == "__main__":
    for label, share in summarize(sys.argv[1]):
        print(f"{100 * share:5.1f}%  {label}")
