"""``manage.py smoke_test --url URL``: check a running deployment end to end over HTTP.

The deploy workflow runs it against staging and production after each deployment, and the test
suite runs it against gunicorn started locally. It is an HTTP client only (urllib, no database):
it checks what a user of the deployment would see, one line per check, and exits non-zero when
any check fails.
"""

from __future__ import annotations

import json
import math
import os
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field

from django.core.management.base import BaseCommand, CommandError

# A few BMIs across the plausible range; the log check expects them back in this order.
BATCH_BMI = [18.5, 22.0, 27.4, 31.5, 40.0]
SINGLE_BMI = 27.4


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    # A redirect is a finding, not something to follow: urllib would turn a redirected POST into a
    # GET, and an http:// URL redirected to https:// means the URL given is the wrong one.
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


@dataclass
class Response:
    status: int
    headers: dict
    body: bytes

    def json(self):
        return json.loads(self.body.decode("utf-8"))

    def summary(self, limit: int = 160) -> str:
        text = self.body.decode("utf-8", errors="replace").strip().replace("\n", " ")
        return text if len(text) <= limit else text[:limit] + "..."


class CheckFailed(Exception):
    """One check's failure; the message is the report line's detail."""


@dataclass
class SmokeTest:
    base_url: str
    token: str | None
    timeout: float
    results: list[tuple[str, bool, str]] = field(default_factory=list)

    def __post_init__(self):
        self.base_url = self.base_url.rstrip("/")
        if urllib.parse.urlsplit(self.base_url).scheme not in ("http", "https"):
            raise ValueError(f"{self.base_url!r} must start with http:// or https://.")
        self._opener = urllib.request.build_opener(_NoRedirect)
        self.prediction: dict | None = None
        self.batch: dict | None = None

    # --- HTTP ---------------------------------------------------------------------------------

    def request(
        self, method: str, path: str, payload=None, *, auth: bool = False, accept: str = "application/json"
    ) -> Response:
        headers = {"Accept": accept, "User-Agent": "bmi-smoke-test"}
        data = None
        if payload is not None:
            data = json.dumps(payload).encode("utf-8")
            headers["Content-Type"] = "application/json"
        if auth:
            headers["Authorization"] = f"Token {self.token}"
        # The scheme is checked to be http(s) in __post_init__.
        req = urllib.request.Request(self.base_url + path, data=data, headers=headers, method=method)  # noqa: S310
        try:
            with self._opener.open(req, timeout=self.timeout) as resp:
                return Response(resp.status, dict(resp.headers.items()), resp.read())
        except urllib.error.HTTPError as exc:  # 3xx/4xx/5xx: a response worth reporting
            return Response(exc.code, dict(exc.headers.items()), exc.read())
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise CheckFailed(f"{method} {path}: cannot connect to {self.base_url} ({reason})") from None

    def expect(self, resp: Response, status: int, what: str) -> None:
        if resp.status == status:
            return
        if 300 <= resp.status < 400:
            raise CheckFailed(f"{what} -> {resp.status} redirect to {resp.headers.get('Location')!r}")
        raise CheckFailed(f"{what} -> {resp.status}, expected {status}: {resp.summary()}")

    @staticmethod
    def parse_json(resp: Response, what: str):
        try:
            return resp.json()
        except ValueError:
            raise CheckFailed(f"{what} -> {resp.status} but not JSON: {resp.summary()}") from None

    # --- The checks, in order ---------------------------------------------------------------------

    def check_healthz(self) -> str:
        resp = self.request("GET", "/healthz")
        self.expect(resp, 200, "GET /healthz")
        return f"GET /healthz -> 200 {resp.summary()}"

    def check_readyz(self) -> str:
        resp = self.request("GET", "/readyz")
        self.expect(resp, 200, "GET /readyz")
        body = self.parse_json(resp, "GET /readyz")
        return f"GET /readyz -> 200, model version {body.get('model_version')} active"

    def check_predict(self) -> str:
        what = f'POST /api/v1/predict {{"bmi": {SINGLE_BMI}}}'
        resp = self.request("POST", "/api/v1/predict", {"bmi": SINGLE_BMI})
        self.expect(resp, 200, what)
        body = self.parse_json(resp, what)
        prediction, version = body.get("prediction"), body.get("model_version")
        if not _is_number(prediction) or not isinstance(version, int):
            raise CheckFailed(f"{what} -> 200 without a numeric prediction and model_version: {resp.summary()}")
        interval = body.get("interval") or {}
        low, high = interval.get("low_raw"), interval.get("high_raw")
        if not (_is_number(low) and _is_number(high) and low <= prediction <= high):
            raise CheckFailed(f"{what} -> 200 without an interval around the prediction: {resp.summary()}")
        self.prediction = body
        return (
            f"{what} -> 200, prediction {prediction:.2f} (interval {interval['low']:.0f} to {interval['high']:.0f}) "
            f"by model version {version}"
        )

    def check_batch(self) -> str:
        what = f"POST /api/v1/predict/batch ({len(BATCH_BMI)} values)"
        resp = self.request("POST", "/api/v1/predict/batch", {"bmi": BATCH_BMI})
        self.expect(resp, 200, what)
        body = self.parse_json(resp, what)
        predictions, batch_id = body.get("predictions"), body.get("batch_id")
        if not isinstance(predictions, list) or len(predictions) != len(BATCH_BMI) or not batch_id:
            raise CheckFailed(f"{what} -> 200 without {len(BATCH_BMI)} predictions and a batch_id: {resp.summary()}")
        if not all(_is_number(v) for v in predictions):
            raise CheckFailed(f"{what} -> 200 with non-numeric predictions: {resp.summary()}")
        self.batch = body
        return f"{what} -> 200, batch {batch_id} by model version {body.get('model_version')}"

    def check_docs(self) -> str:
        resp = self.request("GET", "/docs", accept="text/html")
        self.expect(resp, 200, "GET /docs")
        content_type = resp.headers.get("Content-Type", "")
        if not content_type.startswith("text/html") or b"<html" not in resp.body.lower():
            raise CheckFailed(f"GET /docs -> 200 but not an HTML page ({content_type})")
        return f"GET /docs -> 200 HTML, {len(resp.body)} bytes"

    def check_log(self) -> str:
        if not self.token:
            raise CheckFailed(
                "no staff token: pass --token or set SMOKE_TEST_TOKEN (or --skip-log-check to leave this out)"
            )
        if self.prediction is None or self.batch is None:
            raise CheckFailed("nothing to look for: the single or the batch prediction failed")
        single = self.check_logged(
            self.prediction.get("prediction_id"), "prediction_id", [SINGLE_BMI], [self.prediction["prediction"]]
        )
        batch = self.check_logged(self.batch.get("batch_id"), "batch_id", BATCH_BMI, self.batch["predictions"])
        return f"{single}; {batch}"

    def check_logged(self, entry_id, name: str, bmis: list[float], answered: list[float]) -> str:
        """The entry as logged must be what was answered: same size, BMIs and predictions, in order."""
        if not isinstance(entry_id, int) or isinstance(entry_id, bool):
            raise CheckFailed(f"the prediction call returned {name} {entry_id!r}, not an integer id")
        what = f"GET /api/v1/predictions/{entry_id}"
        resp = self.request("GET", f"/api/v1/predictions/{entry_id}", auth=True)
        self.expect(resp, 200, what)
        body = self.parse_json(resp, what)
        if not isinstance(body, dict):
            raise CheckFailed(f"{what} -> 200 but not a JSON object: {resp.summary()}")
        problems = []
        if body.get("count") != len(bmis):
            problems.append(f"count {body.get('count')!r}, expected {len(bmis)}")
        if body.get("bmi") != bmis:
            problems.append(f"bmi {body.get('bmi')!r}, expected {bmis}")
        # Exact: both are the same float64 values, written by Python's shortest round-trip repr.
        if body.get("predictions") != answered:
            problems.append(f"predictions {body.get('predictions')!r}, but the call returned {answered}")
        if problems:
            raise CheckFailed(f"{what}: " + "; ".join(problems))
        return f"{name} {entry_id}: {len(bmis)} of {len(bmis)} predictions logged as returned"

    def run(self, *, log_check: bool = True) -> list[tuple[str, bool, str]]:
        checks = [
            ("healthz", self.check_healthz),
            ("readyz", self.check_readyz),
            ("predict", self.check_predict),
            ("batch", self.check_batch),
            ("docs", self.check_docs),
        ]
        if log_check:
            checks.append(("prediction log", self.check_log))
        for name, check in checks:
            try:
                self.results.append((name, True, check()))
            except CheckFailed as exc:
                self.results.append((name, False, str(exc)))
        return self.results


def _is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


class Command(BaseCommand):
    help = (
        "Check a running deployment end to end over HTTP: /healthz, /readyz, one prediction, one batch, "
        "the API docs page, and (with a staff token) that the predictions were logged. Prints one line "
        "per check and exits non-zero if any fails."
    )
    # An HTTP client: it needs neither this process's database nor its system checks.
    requires_system_checks = []

    def add_arguments(self, parser):
        parser.add_argument(
            "--url", required=True, help="Base URL of the deployment, e.g. https://staging.example.com."
        )
        parser.add_argument(
            "--token",
            default=None,
            help="DRF token of a staff user, to read the prediction log (default: $SMOKE_TEST_TOKEN).",
        )
        parser.add_argument(
            "--timeout", type=float, default=10.0, help="Seconds to wait for each response (default 10)."
        )
        parser.add_argument(
            "--skip-log-check",
            action="store_true",
            help="Leave out the prediction-log check (no staff token available).",
        )

    def handle(self, *args, **options):
        url = options["url"]
        if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
            raise CommandError(f"--url {url!r} must start with http:// or https://.")
        token = options["token"] or os.environ.get("SMOKE_TEST_TOKEN") or None
        smoke = SmokeTest(base_url=url, token=token, timeout=options["timeout"])
        self.stdout.write(f"Smoke test of {smoke.base_url}")
        results = smoke.run(log_check=not options["skip_log_check"])
        width = max(len(name) for name, _, _ in results)
        for name, ok, detail in results:
            status = self.style.SUCCESS("PASS") if ok else self.style.ERROR("FAIL")
            self.stdout.write(f"{status}  {name.ljust(width)}  {detail}")
        failed = [name for name, ok, _ in results if not ok]
        if failed:
            raise CommandError(f"Smoke test failed: {len(failed)} of {len(results)} checks ({', '.join(failed)}).")
        self.stdout.write(self.style.SUCCESS(f"Smoke test passed: {len(results)} of {len(results)} checks."))
