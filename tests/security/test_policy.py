"""Security headers, no secrets in the repository, no personal data in the prediction log.

Covered elsewhere, not repeated here: ``manage.py check --deploy`` with no warnings and the refusal
to start without SECRET_KEY (tests/deploy/test_settings.py), the headers behind the load balancer
on real gunicorn (tests/deploy/test_gunicorn.py), CSRF on session writes and 429 throttling
(tests/api/test_models.py, tests/api/test_throttle.py), the pages under the CSP in a browser
(tests/browser/test_csp_in_chromium.py).
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from django.test import Client

from predictor.middleware import LengthRequiredMiddleware
from predictor.models import Outcome, PredictionLog

ROOT = Path(__file__).resolve().parents[2]

SECRET_PATTERNS = {
    "private key": re.compile(r"-----BEGIN (?:RSA |EC |DSA |OPENSSH |PGP |ENCRYPTED )?PRIVATE KEY"),
    "AWS access key id": re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),
    "AWS secret access key": re.compile(r"aws_secret_access_key\s*[=:]\s*['\"]?[A-Za-z0-9/+=]{40}", re.I),
    "hard-coded Django SECRET_KEY": re.compile(r"""SECRET_KEY\s*=\s*["'][^"']{16,}["']"""),
    "GitHub token": re.compile(r"\bgh[pousr]_[A-Za-z0-9]{36,}\b"),
    "Slack token": re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}"),
    "password in a database URL": re.compile(r"postgres(?:ql)?://[^:/\s@'\"]+:(?!postgres@|password@)[^@\s'\"]{6,}@"),
}
# The only SECRET_KEY literals allowed: the DEBUG-only fallback, whose name says it is not secret.
ALLOWED = {"hard-coded Django SECRET_KEY": re.compile(r"django-insecure-local-development-only")}


def tracked_files() -> list[Path]:
    names = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    return [ROOT / n for n in names.decode().split("\0") if n]


def test_no_secret_in_any_tracked_file():
    files = tracked_files()
    assert len(files) > 50  # really the repository, not an empty listing
    found = []
    for path in files:
        if not path.is_file() or path.suffix in {".png", ".ico", ".woff", ".woff2"}:
            continue
        text = path.read_text(errors="ignore")
        for kind, pattern in SECRET_PATTERNS.items():
            for match in pattern.finditer(text):
                allowed = ALLOWED.get(kind)
                if allowed and allowed.search(text[match.start() : match.end() + 80]):
                    continue
                found.append(f"{path.relative_to(ROOT)}: {kind}: {match.group(0)[:40]}")
    assert found == []


@pytest.mark.parametrize(
    "sample",
    # Split in two, so that this file does not trip the scan above.
    [
        "-----BEGIN RSA " + "PRIVATE KEY-----",
        "AKIA" + "IOSFODNN7EXAMPLE",
        "SECRET_KEY = " + "'k3y-that-someone-pasted-in-here'",
        "DATABASE_URL=postgres://app:" + "s3cr3tpassw0rd@db.internal:5432/bmi",
    ],
)
def test_the_secret_scan_recognises_what_it_looks_for(sample):
    assert any(pattern.search(sample) for pattern in SECRET_PATTERNS.values())


def test_settings_take_the_secret_key_and_database_only_from_the_environment():
    source = (ROOT / "bmiproject" / "settings.py").read_text()
    assert re.search(r'SECRET_KEY = env_str\("SECRET_KEY"\)', source)
    assert re.search(r'env_str\("DATABASE_URL"\)', source)
    # No credentials in the settings' code (a comment may show the URL's shape).
    code = "\n".join(line.split("#", 1)[0] for line in source.splitlines())
    assert not re.search(r"postgres(?:ql)?://", code)


@pytest.mark.django_db
def test_security_headers_on_an_https_request(active_version):
    response = Client().get("/", secure=True)
    assert response.status_code == 200
    assert response["Strict-Transport-Security"].startswith("max-age=31536000")
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["X-Frame-Options"] == "DENY"
    assert response["Referrer-Policy"] == "same-origin"
    assert response["Cross-Origin-Opener-Policy"] == "same-origin"
    policy = dict(part.strip().split(" ", 1) for part in response["Content-Security-Policy"].split(";"))
    assert policy["default-src"] == "'self'"
    assert policy["script-src"] == "'self'" and policy["style-src"] == "'self'"
    assert policy["frame-ancestors"] == "'none'" and policy["object-src"] == "'none'"


@pytest.mark.django_db
def test_only_the_docs_page_allows_inline_styles_and_no_page_allows_inline_scripts():
    client = Client()
    docs = client.get("/docs")["Content-Security-Policy"]
    assert "style-src 'self' 'unsafe-inline'" in docs and "script-src 'self';" in docs
    for path in ("/", "/models/"):
        assert "unsafe-inline" not in client.get(path)["Content-Security-Policy"]
    # Swagger UI's init script is a same-origin file, not inline.
    script = client.get("/docs?script=")
    assert script.status_code == 200 and script["Content-Type"].startswith("application/javascript")


def test_prediction_log_holds_no_personal_data_beyond_the_bmis_and_the_time():
    # Adding a column here (an IP address, a name, a user) is a privacy decision: this test makes
    # it a deliberate one, with docs/reliability.md and the retention setting updated alongside.
    # One entry per request, single prediction or batch: who sent it, or from where, is not recorded.
    fields = {f.name for f in PredictionLog._meta.get_fields()}
    assert fields == {"id", "created_at", "model_version", "channel", "size", "bmi", "predictions", "outcomes"}
    # The outcome is the observed progression a year later; who recorded it, never whose it is.
    assert PredictionLog._meta.get_field("outcomes").related_model is Outcome
    outcome_fields = {f.name for f in Outcome._meta.get_fields()}
    assert outcome_fields == {"id", "log", "position", "observed", "recorded_at", "recorded_by", "source"}


def test_a_body_without_content_length_is_a_411_page_outside_the_api_and_json_under_it(rf):
    middleware = LengthRequiredMiddleware(lambda request: pytest.fail("the view must not run"))
    for path, content_type in (("/", "text/plain"), ("/api/v1/predict", "application/json")):
        request = rf.post(path, b"", content_type="application/json", HTTP_TRANSFER_ENCODING="chunked")
        request.META.pop("CONTENT_LENGTH", None)  # as gunicorn passes a chunked body
        response = middleware(request)
        assert response.status_code == 411
        assert response["Content-Type"].startswith(content_type)
        assert "Content-Length" in response.content.decode()
