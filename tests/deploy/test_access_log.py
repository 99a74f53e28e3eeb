"""The lazy access-log atoms write the same lines as gunicorn's own atoms (bmiproject/gunicorn_logging.py)."""

from __future__ import annotations

import datetime
import logging
import runpy
from pathlib import Path
from types import SimpleNamespace

import pytest
from gunicorn import glogging
from gunicorn.config import Config

from bmiproject.gunicorn_logging import AccessLogger, LazyAtoms

ROOT = Path(__file__).resolve().parents[2]
PROJECT_FORMAT = runpy.run_path(str(ROOT / "bmiproject" / "gunicorn.conf.py"))["access_log_format"]
EVERY_ATOM = " ".join(
    [
        f"%({atom})s"
        for atom in ["h", "l", "u", "r", "s", "m", "U", "q", "H", "b", "B", "f", "a", "T", "D", "M", "L", "p"]
    ]
    + [
        "%({x-forwarded-for}i)s",
        "%({X-Forwarded-For}i)s",
        "%({content-type}o)s",
        "%({remote_addr}e)s",
        "%({missing}i)s",
        "%({missing}o)s",
        "%({missing}e)s",
        "%({bad}x)s",
        "%(unknown)s",
    ]
)


def _logger() -> glogging.Logger:
    logger = glogging.Logger(Config())
    logger.now = lambda: "[28/Nov/2026:03:00:00 +0000]"  # one clock for both ways of formatting
    return logger


def _exchange(*, user_agent: str, forwarded_for: str | None, sent: int | None, status="200 OK", basic_auth=None):
    headers = [("HOST", "bmi.example.com"), ("USER-AGENT", user_agent)]
    if forwarded_for is not None:
        headers += [("X-FORWARDED-FOR", "10.0.0.1"), ("X-FORWARDED-FOR", forwarded_for)]  # the last one wins
    environ = {
        "REMOTE_ADDR": "127.0.0.1",
        "REQUEST_METHOD": "POST",
        "RAW_URI": '/api/v1/predict?x="1"',
        "PATH_INFO": "/api/v1/predict",
        "QUERY_STRING": 'x="1"',
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_USER_AGENT": user_agent,
    }
    if basic_auth:
        environ["HTTP_AUTHORIZATION"] = basic_auth
    req = SimpleNamespace(headers=headers)
    resp = SimpleNamespace(status=status, headers=[("Content-Type", "application/json")], sent=sent)
    return resp, req, environ, datetime.timedelta(seconds=1, microseconds=2_345)


CASES = [
    {"user_agent": "wrk", "forwarded_for": None, "sent": 213},
    {"user_agent": 'curl "quoted" agent', "forwarded_for": "203.0.113.9", "sent": 0},
    {"user_agent": "x", "forwarded_for": "203.0.113.9", "sent": None, "status": 404},
    {"user_agent": "x", "forwarded_for": None, "sent": 5, "basic_auth": "Basic YWxpY2U6c2VjcmV0"},
]


@pytest.mark.parametrize("log_format", [PROJECT_FORMAT, EVERY_ATOM], ids=["project format", "every atom"])
@pytest.mark.parametrize("case", CASES)
def test_lazy_atoms_format_exactly_like_gunicorns(log_format, case):
    logger = _logger()
    exchange = _exchange(**case)
    expected = log_format % logger.atoms_wrapper_class(logger.atoms(*exchange))
    assert log_format % LazyAtoms(logger, *exchange) == expected


def test_the_project_format_logs_the_client_request_status_size_and_duration():
    logger = _logger()
    line = PROJECT_FORMAT % LazyAtoms(logger, *_exchange(user_agent="wrk", forwarded_for="203.0.113.9", sent=213))
    assert line == '203.0.113.9 127.0.0.1 "POST /api/v1/predict?x=\\"1\\" HTTP/1.1" 200 213 1002ms "wrk"'


class _Lines(logging.Handler):
    def __init__(self):
        super().__init__()
        self.lines = []

    def emit(self, record):
        self.lines.append(record.getMessage())


def _lines_logged(logger: glogging.Logger, exchange) -> list[str]:
    handler = _Lines()
    logger.access_log.addHandler(handler)
    try:
        logger.access(*exchange)
    finally:
        logger.access_log.removeHandler(handler)
    return handler.lines


def test_access_logger_writes_one_line_per_request_unless_access_logging_is_off():
    exchange = _exchange(user_agent="wrk", forwarded_for=None, sent=7)
    config = Config()
    config.set("accesslog", "/dev/null")
    logger = AccessLogger(config)
    expected = config.access_log_format % glogging.SafeAtoms(logger.atoms(*exchange))
    assert _lines_logged(logger, exchange) == [expected]

    # No accesslog setting: gunicorn logs no access lines, and neither does ours.
    assert _lines_logged(AccessLogger(Config()), exchange) == []


def test_the_production_configuration_uses_the_lazy_logger():
    assert runpy.run_path(str(ROOT / "bmiproject" / "gunicorn.conf.py"))["logger_class"] == (
        "bmiproject.gunicorn_logging.AccessLogger"
    )
