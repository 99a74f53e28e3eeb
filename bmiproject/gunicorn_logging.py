"""gunicorn's access log, with each line's fields computed only when the format uses them.

gunicorn builds every access-log line from a dict of all its "atoms": some twenty basic ones plus
one per request header, response header and WSGI environ variable, each then copied again to
escape quotes. Our format uses six. Profiling single predictions under load put that work at
about 7 % of a worker's CPU. :class:`LazyAtoms` answers the same keys with the same values and the
same escaping, but computes only the ones the format asks for. The format, the logger's handlers
and whether access logging is on all stay gunicorn's; ``tests/deploy/test_access_log.py`` checks
that lines match gunicorn's own, byte for byte.
"""

from __future__ import annotations

import os
import traceback
from collections.abc import Mapping

from gunicorn import glogging


class LazyAtoms(Mapping):
    """The atoms of one access-log line, computed on lookup (like gunicorn's ``SafeAtoms``)."""

    def __init__(self, logger: glogging.Logger, resp, req, environ, request_time):
        self._logger = logger
        self._resp = resp
        self._req = req
        self._environ = environ
        self._time = request_time

    def __getitem__(self, key: str):
        value = self._lookup(key)
        return value.replace('"', '\\"') if isinstance(value, str) else value

    def __iter__(self):
        return iter(_BASIC)

    def __len__(self) -> int:
        return len(_BASIC)

    def _lookup(self, key: str):
        if key.startswith("{"):
            return self._named(key.lower())
        atom = _BASIC.get(key)
        return "-" if atom is None else atom(self)

    def _named(self, key: str):
        # "{name}i": a request header, "{name}o": a response header, "{name}e": an environ variable.
        # gunicorn lower-cases the names and lets a later duplicate win; so does this.
        name, kind = key[1:-2], key[-1:]
        if key[-2:-1] != "}" or kind not in "ioe":
            return "-"
        if kind == "e":
            items = self._environ.items()
        else:
            headers = getattr(self._req, "headers", self._req) if kind == "i" else self._resp.headers
            items = headers.items() if hasattr(headers, "items") else headers
        found = "-"
        for header, value in items:
            if header.lower() == name:
                found = value
        return found

    # The basic atoms, as gunicorn's ``Logger.atoms`` defines them.

    def _status(self):
        status = self._resp.status
        return status.split(None, 1)[0] if isinstance(status, str) else status

    def _sent(self):
        return getattr(self._resp, "sent", None)


def _request_line(atoms: LazyAtoms) -> str:
    environ = atoms._environ
    return f"{environ['REQUEST_METHOD']} {environ['RAW_URI']} {environ['SERVER_PROTOCOL']}"


_BASIC = {
    "h": lambda a: a._environ.get("REMOTE_ADDR", "-"),
    "l": lambda a: "-",
    "u": lambda a: a._logger._get_user(a._environ) or "-",
    "t": lambda a: a._logger.now(),
    "r": _request_line,
    "s": LazyAtoms._status,
    "m": lambda a: a._environ.get("REQUEST_METHOD"),
    "U": lambda a: a._environ.get("PATH_INFO"),
    "q": lambda a: a._environ.get("QUERY_STRING"),
    "H": lambda a: a._environ.get("SERVER_PROTOCOL"),
    "b": lambda a: (a._sent() is not None and str(a._sent())) or "-",
    "B": LazyAtoms._sent,
    "f": lambda a: a._environ.get("HTTP_REFERER", "-"),
    "a": lambda a: a._environ.get("HTTP_USER_AGENT", "-"),
    "T": lambda a: a._time.seconds,
    "D": lambda a: a._time.seconds * 1_000_000 + a._time.microseconds,
    "M": lambda a: a._time.seconds * 1000 + int(a._time.microseconds / 1000),
    "L": lambda a: "%d.%06d" % (a._time.seconds, a._time.microseconds),  # noqa: UP031 - gunicorn's own
    "p": lambda a: f"<{os.getpid()}>",
}


class AccessLogger(glogging.Logger):
    """gunicorn's logger, writing access lines from :class:`LazyAtoms`."""

    def access(self, resp, req, environ, request_time):
        if not self.access_log_enabled:
            return
        try:
            self.access_log.info(self.cfg.access_log_format, LazyAtoms(self, resp, req, environ, request_time))
        except Exception:
            self.error(traceback.format_exc())
