"""Where a single prediction's CPU goes, layer by layer, from the py-spy profile bench/run.py records.

Usage: .venv/bin/python bench/profile_summary.py bench/results/latest_profile_predict_c16.txt

The profile is py-spy's ``raw`` (collapsed stacks) format of our gunicorn master and workers during
one 16-connection run of single predictions (bench/run.py records it after the timed rounds, so the
profiler never slows a measured figure), recorded with ``--gil``: in each process only the thread
holding the GIL is sampled. So the shares are shares of the Python work of the server, the CPU that
limits throughput on a two-core machine, not of a request's wall time: a thread waiting for a
socket, for PostgreSQL's answer (psycopg2 releases the GIL for it) or for the GIL is not counted.

Each sample goes to the layer of its innermost frame that a rule in ``RULES`` names; frames no rule
names (the standard library, ``django.utils``, ``prometheus_client``, ...) count for the code that
called them. So the time psycopg2 spends in C inside ``cursor.execute`` is "psycopg2" (Django's
``CursorWrapper._execute`` is the last Python frame before it), while Django's cursor wrapper
around it counts for our serving code, and our DRF plug-ins (parser, permissions, throttle,
renderer, serializers) count for the DRF step they implement.
"""

from __future__ import annotations

import collections
import re
import sys
from dataclasses import dataclass

GUNICORN, DJANGO, DRF, OURS, PSYCOPG2, OTHER = (
    "gunicorn",
    "Django request cycle",
    "DRF view machinery",
    "our view, serving and INSERT",
    "psycopg2 (the client side of each query, in C)",
    "other (no frame any rule names)",
)
# The order the summary lists the layers in: outermost first.
LAYERS = [GUNICORN, DJANGO, DRF, OURS, PSYCOPG2, OTHER]


@dataclass(frozen=True)
class Rule:
    layer: str
    part: str
    path: str  # a fragment of the frame's file path, matched from a "/" boundary
    functions: frozenset[str] = frozenset()  # empty: any function of that file
    # Only inside this layer (its frame is nested in one of it); elsewhere the frame is transparent.
    within: str | None = None

    def matches(self, function: str, path: str, layer: str | None) -> bool:
        if self.path not in path:
            return False
        if self.functions and function.rsplit(".", 1)[-1] not in self.functions:
            return False
        return self.within is None or layer == self.within


def _rule(layer: str, part: str, paths: str, functions: str = "", within: str | None = None) -> list[Rule]:
    return [Rule(layer, part, f"/{path}", frozenset(functions.split()), within) for path in paths.split()]


# First match wins for a frame, so a file's specific functions come before the file as a whole.
RULES: list[Rule] = [
    *_rule(PSYCOPG2, "execute: the INSERT's round trip", "django/db/backends/utils.py", "_execute"),
    *_rule(PSYCOPG2, "health check (SELECT 1)", "django/db/backends/postgresql/base.py", "is_usable"),
    *_rule(PSYCOPG2, "connect", "django/db/backends/postgresql/base.py", "get_new_connection"),
    *_rule(PSYCOPG2, "execute: the INSERT's round trip", "psycopg2/"),
    *_rule(DJANGO, "request signals (connection bookkeeping)", "django/db/__init__.py", "close_old_connections"),
    *_rule(OURS, "Django's cursor and connection wrappers", "django/db/", within=OURS),
    *_rule(OURS, "serving: cached model, prediction, log call", "predictor/predictions/serving.py"),
    *_rule(OURS, "serving: Prometheus counter", "predictor/predictions/metrics.py"),
    *_rule(OURS, "the view's own code", "predictor/api/views.py"),
    *_rule(DRF, "request wrap", "rest_framework/views.py", "initialize_request get_parser_context"),
    *_rule(DRF, "request wrap", "rest_framework/request.py", "__init__"),
    *_rule(DRF, "content negotiation", "rest_framework/views.py", "perform_content_negotiation"),
    *_rule(DRF, "content negotiation", "rest_framework/negotiation.py predictor/api/negotiation.py"),
    *_rule(DRF, "authentication", "rest_framework/views.py", "perform_authentication get_authenticators"),
    *_rule(DRF, "authentication", "rest_framework/request.py", "user _authenticate _not_authenticated"),
    *_rule(DRF, "authentication", "rest_framework/authentication.py predictor/accounts/authentication.py"),
    *_rule(DRF, "permissions", "rest_framework/views.py", "check_permissions get_permissions"),
    *_rule(DRF, "permissions", "rest_framework/permissions.py predictor/api/permissions.py predictor/access.py"),
    *_rule(DRF, "throttles", "rest_framework/views.py", "check_throttles get_throttles"),
    *_rule(DRF, "throttles", "rest_framework/throttling.py predictor/api/throttling.py"),
    *_rule(DRF, "parse (JSON body)", "rest_framework/request.py", "data _load_data_and_files _parse _load_stream"),
    *_rule(DRF, "parse (JSON body)", "rest_framework/parsers.py predictor/api/parsers.py predictor/api/strictjson.py"),
    *_rule(
        DRF,
        "serializer (validation)",
        "rest_framework/serializers.py rest_framework/fields.py predictor/api/serializers.py predictor/ml/ranges.py",
    ),
    *_rule(DRF, "render (response body)", "rest_framework/response.py rest_framework/renderers.py"),
    *_rule(DRF, "render (response body)", "predictor/api/renderers.py django/template/response.py"),
    *_rule(DRF, "finalize the response (headers, Vary)", "rest_framework/views.py", "finalize_response"),
    *_rule(DRF, "dispatch, initial, exception handling", "rest_framework/"),
    *_rule(DJANGO, "request signals (connection bookkeeping)", "django/dispatch/"),
    *_rule(DJANGO, "URL resolution", "django/urls/"),
    *_rule(
        DJANGO,
        "our middleware (health, metrics, CSP, length, no-store)",
        "predictor/middleware.py predictor/monitoring/middleware.py predictor/accounts/middleware.py",
    ),
    *_rule(
        DJANGO,
        "Django's and third-party middleware",
        "django/middleware/ django/contrib/sessions/middleware.py django/contrib/auth/middleware.py "
        "django/contrib/messages/middleware.py whitenoise/ axes/middleware.py",
    ),
    *_rule(DJANGO, "WSGI handler: request and response objects", "django/core/handlers/wsgi.py django/http/"),
    *_rule(DJANGO, "handler and middleware chain", "django/core/handlers/"),
    *_rule(GUNICORN, "access log", "gunicorn/glogging.py"),
    *_rule(GUNICORN, "reading and parsing the request", "gunicorn/http/message.py gunicorn/http/parser.py"),
    *_rule(GUNICORN, "reading and parsing the request", "gunicorn/http/unreader.py gunicorn/http/body.py"),
    *_rule(GUNICORN, "WSGI environ and writing the response", "gunicorn/http/wsgi.py gunicorn/util.py"),
    *_rule(GUNICORN, "worker loop, thread pool, keep-alive polling", "gunicorn/"),
]

# One sample line: frames "function (path:line)" joined by ";", a space, the sample count.
_FRAME = re.compile(r"^(?P<function>.*) \((?P<path>[^()]*):\d+\)$")


def classify(frames: list[tuple[str, str]]) -> tuple[str, str]:
    """(layer, part) of one stack, outermost frame first."""
    found = (OTHER, "outside any frame a rule names")
    for function, path in frames:
        rule = next((r for r in RULES if r.matches(function, path, found[0])), None)
        if rule is not None:
            found = (rule.layer, rule.part)
    return found


def _stacks(text: str):
    """(frames, count) per sample line. py-spy's process frames (``process N:"cmdline"``) can hold
    newlines and semicolons, so a line is only complete once it ends in a count."""
    pending = ""
    for line in text.splitlines():
        pending = f"{pending}\n{line}" if pending else line
        stack, _, count = pending.rpartition(" ")
        if not count.isdigit():
            continue
        pending = ""
        frames = []
        for frame in stack.split(";"):
            match = _FRAME.match(frame)
            if match:  # process and thread frames are not code
                frames.append((match["function"], "/" + match["path"].lstrip("/")))
        yield frames, int(count)


def summarize(path: str) -> dict:
    """Samples per (layer, part), with each one's share of all samples, largest first per layer."""
    with open(path) as handle:
        text = handle.read()
    totals: collections.Counter = collections.Counter()
    for frames, count in _stacks(text):
        totals[classify(frames)] += count
    samples = sum(totals.values())
    rows = [
        {"layer": layer, "part": part, "samples": n, "share": n / samples}
        for (layer, part), n in sorted(totals.items(), key=lambda item: (LAYERS.index(item[0][0]), -item[1]))
    ]
    return {"samples": samples, "rows": rows}


def layer_totals(summary: dict) -> list[tuple[str, float]]:
    """Each layer's share, in LAYERS order (layers without samples left out)."""
    shares: collections.Counter = collections.Counter()
    for row in summary["rows"]:
        shares[row["layer"]] += row["share"]
    return [(layer, shares[layer]) for layer in LAYERS if layer in shares]


if __name__ == "__main__":
    found = summarize(sys.argv[1])
    print(f"{found['samples']} samples")
    for row in found["rows"]:
        print(f"{100 * row['share']:5.1f}%  {row['layer']}: {row['part']}")
