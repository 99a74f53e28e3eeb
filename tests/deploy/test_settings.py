"""Production settings: `check --deploy` is clean with the task definitions' environment, and the
security settings follow the environment, failing loudly on a bad value.

Each case runs in a fresh interpreter with only the variables given, as a container starts.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys

import pytest

from tests.deploy._helpers import ROOT, environment, rendered_task_definition


def production_env(env: str = "production", **overrides: str) -> dict[str, str]:
    values = {
        "PATH": os.environ["PATH"],
        "DJANGO_SETTINGS_MODULE": "bmiproject.settings",
        # What ECS injects from SSM; a real-looking random key.
        "SECRET_KEY": secrets.token_urlsafe(50),
        "DATABASE_URL": "postgres://app:password@db.internal:5432/bmi",
        **environment(rendered_task_definition(env)),
        **overrides,
    }
    return {key: value for key, value in values.items() if value is not None}


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, check=False)


def settings_of(env: dict[str, str], *names: str) -> dict:
    code = (
        "import json, django; django.setup(); from django.conf import settings; "
        f"print(json.dumps({{n: getattr(settings, n, None) for n in {list(names)!r}}}))"
    )
    result = run([sys.executable, "-c", code], env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.mark.parametrize("env", ["staging", "production"])
def test_check_deploy_security_checks_are_clean_with_the_task_definition_environment(env):
    result = run(
        [sys.executable, "manage.py", "check", "--deploy", "--tag", "security", "--fail-level", "WARNING"],
        production_env(env),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues (0 silenced)." in result.stdout


# The full deploy check includes drf-spectacular's schema generation: every view must be describable.
def test_check_deploy_has_no_warnings_at_all_with_the_task_definition_environment():
    result = run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"], production_env("production")
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues (0 silenced)." in result.stdout


def test_check_deploy_fails_when_https_redirect_is_turned_off():
    # Proof that the test above can fail: a weakened setting is reported.
    result = run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        production_env(SECURE_SSL_REDIRECT="0"),
    )
    assert result.returncode != 0
    assert "security.W008" in result.stderr + result.stdout


def test_production_defaults_are_the_safe_ones_without_any_security_variable():
    env = {
        "PATH": os.environ["PATH"],
        "DJANGO_SETTINGS_MODULE": "bmiproject.settings",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "DATABASE_URL": "postgres://app:password@db.internal:5432/bmi",
    }
    values = settings_of(
        env,
        "DEBUG",
        "SECURE_PROXY_SSL_HEADER",
        "SECURE_SSL_REDIRECT",
        "SECURE_REDIRECT_EXEMPT",
        "SECURE_HSTS_SECONDS",
        "SECURE_HSTS_INCLUDE_SUBDOMAINS",
        "SECURE_HSTS_PRELOAD",
        "SESSION_COOKIE_SECURE",
        "CSRF_COOKIE_SECURE",
        "X_FRAME_OPTIONS",
        "SECURE_CONTENT_TYPE_NOSNIFF",
        "SECURE_REFERRER_POLICY",
    )
    assert values == {
        "DEBUG": False,
        "SECURE_PROXY_SSL_HEADER": ["HTTP_X_FORWARDED_PROTO", "https"],
        "SECURE_SSL_REDIRECT": True,
        "SECURE_REDIRECT_EXEMPT": [r"^healthz/?$", r"^readyz/?$", r"^metrics/?$"],
        "SECURE_HSTS_SECONDS": 31_536_000,
        "SECURE_HSTS_INCLUDE_SUBDOMAINS": True,
        "SECURE_HSTS_PRELOAD": False,
        "SESSION_COOKIE_SECURE": True,
        "CSRF_COOKIE_SECURE": True,
        "X_FRAME_OPTIONS": "DENY",
        "SECURE_CONTENT_TYPE_NOSNIFF": True,
        "SECURE_REFERRER_POLICY": "same-origin",
    }


def test_debug_turns_the_https_only_settings_off_for_local_development():
    env = {
        "PATH": os.environ["PATH"],
        "DJANGO_SETTINGS_MODULE": "bmiproject.settings",
        "DEBUG": "1",
        "DATABASE_URL": "postgres://app:password@db.internal:5432/bmi",
    }
    values = settings_of(env, "SECURE_SSL_REDIRECT", "SECURE_HSTS_SECONDS", "SESSION_COOKIE_SECURE")
    assert values == {"SECURE_SSL_REDIRECT": False, "SECURE_HSTS_SECONDS": 0, "SESSION_COOKIE_SECURE": False}


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("SECURE_HSTS_SECONDS", "one year", "SECURE_HSTS_SECONDS='one year' is not an integer."),
        ("SECURE_SSL_REDIRECT", "ture", "SECURE_SSL_REDIRECT='ture' is not a boolean"),
        ("SECURE_HSTS_SECONDS", "-1", "SECURE_HSTS_SECONDS=-1 must be at least 0."),
        (
            "PREDICTOR_PROMOTION_THRESHOLD",
            "5",
            "PREDICTOR_PROMOTION_THRESHOLD must be from -1 up to (not including) 1.",
        ),
        (
            "PREDICTOR_METRICS_ALLOWED_IPS",
            "10.0.0.7, 10.0.0.300",
            "PREDICTOR_METRICS_ALLOWED_IPS contains '10.0.0.300', which is not an IP address or network",
        ),
    ],
)
def test_a_bad_value_stops_start_up_naming_the_variable(variable, value, message):
    result = run([sys.executable, "manage.py", "check"], production_env(**{variable: value}))
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr and message in result.stderr


def test_start_up_refuses_without_secret_key():
    result = run([sys.executable, "manage.py", "check"], production_env(SECRET_KEY=None))
    assert result.returncode != 0 and "SECRET_KEY is not set" in result.stderr


def test_without_database_url_the_settings_never_fall_back_to_sqlite():
    # SQLite support is gone (the log's arrays and constraints are PostgreSQL's): a start without
    # DATABASE_URL must either refuse, naming it, or use PostgreSQL, never a db.sqlite3 that cannot migrate.
    env = {"PATH": os.environ["PATH"], "DJANGO_SETTINGS_MODULE": "bmiproject.settings", "DEBUG": "1"}
    code = (
        "import django; django.setup(); from django.conf import settings; "
        "print(settings.DATABASES['default']['ENGINE'])"
    )
    result = run([sys.executable, "-c", code], env)
    if result.returncode != 0:
        assert "ImproperlyConfigured" in result.stderr and "DATABASE_URL" in result.stderr, result.stderr
    else:
        assert result.stdout.strip() == "django.db.backends.postgresql"


def test_start_up_refuses_without_database_url():
    # The embedded PostgreSQL is for development only: production must name its database.
    result = run([sys.executable, "manage.py", "check"], production_env(DATABASE_URL=None))
    assert result.returncode != 0 and "DATABASE_URL is not set" in result.stderr
