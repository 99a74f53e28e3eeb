"""Django's PostgreSQL backend, with the connection health check skipped when it cannot help.

With ``CONN_HEALTH_CHECKS`` Django runs ``SELECT 1`` before the first query of every request, so a
connection that died while idle (a database restart, a failover) is replaced instead of failing a
request. On the prediction path that doubles the round trips: one check, one INSERT. Measured, the
check was a third of a prediction's wall time.

A connection that completed a request without error less than ``CONN_HEALTH_CHECK_GRACE`` seconds
ago (default 0.25) is used without the check. Under load every connection is that fresh, so the
check disappears where it cost most; an idle connection is still checked. What this gives up: a
connection that dies within the grace period fails one request with a 503 (as any request in
flight during an outage does), after which Django discards it.
"""

import time

from django.conf import settings
from django.db.backends.postgresql import base


class DatabaseWrapper(base.DatabaseWrapper):
    _answered_at = float("-inf")
    # Set when a cursor is opened, cleared by Django's start- and end-of-request bookkeeping: so at
    # the end of a request it says whether this request used the connection at all.
    _used = False

    def close_if_unusable_or_obsolete(self):
        # Called when a request starts and when it ends; only the end of a request that used the
        # connection without an error makes it "fresh".
        if self.connection is not None and self._used and not self.errors_occurred:
            self._answered_at = time.monotonic()
        self._used = False
        super().close_if_unusable_or_obsolete()

    def close_if_health_check_failed(self):
        self._used = True
        grace = getattr(settings, "CONN_HEALTH_CHECK_GRACE", 0.25)
        if (
            self.connection is not None
            and self.health_check_enabled
            and not self.health_check_done
            and time.monotonic() - self._answered_at < grace
        ):
            self.health_check_done = True
            return
        super().close_if_health_check_failed()

    def connect(self):
        super().connect()
        self._answered_at = float("-inf")
