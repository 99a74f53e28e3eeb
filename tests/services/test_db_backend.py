"""The PostgreSQL backend's health-check grace: skipped for a fresh connection, kept for an idle one."""

import time

import pytest
from django.db import DatabaseError, connection, connections

pytestmark = [
    pytest.mark.django_db,
]

IDLE_GRACE = 0.2  # short, for the tests that wait it out
LONG_GRACE = 30.0  # long, so a loaded machine cannot make a "fresh" connection look idle


@pytest.fixture
def own_connection():
    """A second connection, driven the way Django drives one across requests."""
    wrapper = connections.create_connection("default")
    wrapper.settings_dict["CONN_HEALTH_CHECKS"] = True
    wrapper.health_check_enabled = True
    yield wrapper
    wrapper.close()


def _request(wrapper, sql="SELECT pg_backend_pid()"):
    """One request's life: the start-of-request bookkeeping, one query, the end-of-request one."""
    wrapper.close_if_unusable_or_obsolete()
    try:
        with wrapper.cursor() as cursor:
            cursor.execute(sql)
            return cursor.fetchone()[0]
    finally:
        wrapper.close_if_unusable_or_obsolete()


def _kill(pid):
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
    time.sleep(0.05)  # the server closes the socket asynchronously


def test_the_engine_is_the_project_backend():
    assert connection.settings_dict["ENGINE"] == "bmiproject.db.postgresql"


def test_a_connection_idle_longer_than_the_grace_is_checked_and_replaced(own_connection, settings):
    settings.CONN_HEALTH_CHECK_GRACE = IDLE_GRACE
    first = _request(own_connection)
    _kill(first)
    time.sleep(IDLE_GRACE + 0.1)
    # Idle past the grace: the health check finds it dead and Django opens a new one.
    assert _request(own_connection) != first


def test_a_fresh_connection_skips_the_check_and_a_dead_one_fails_once(own_connection, settings):
    settings.CONN_HEALTH_CHECK_GRACE = LONG_GRACE
    first = _request(own_connection)
    assert _request(own_connection) == first  # reused, no reconnect
    _kill(first)
    # Within the grace the check is skipped: the query meets the dead socket and fails cleanly...
    with pytest.raises(DatabaseError):
        _request(own_connection)
    # ...and the failed request's bookkeeping discards it, so the next request works.
    assert _request(own_connection) not in (None, first)


def test_a_request_that_failed_does_not_make_the_connection_fresh(own_connection, settings):
    settings.CONN_HEALTH_CHECK_GRACE = IDLE_GRACE
    first = _request(own_connection)
    with pytest.raises(DatabaseError):
        _request(own_connection, "SELECT * FROM no_such_table")
    time.sleep(IDLE_GRACE + 0.1)
    _kill(first)
    # The errored request gave no grace, and the idle time ran out: checked, found dead, replaced.
    assert _request(own_connection) != first


def test_a_request_that_did_not_use_the_connection_does_not_make_it_fresh(own_connection, settings):
    settings.CONN_HEALTH_CHECK_GRACE = IDLE_GRACE
    first = _request(own_connection)
    time.sleep(IDLE_GRACE + 0.1)
    # A request that made no query (a health probe, a cached page) passes through the bookkeeping.
    own_connection.close_if_unusable_or_obsolete()
    own_connection.close_if_unusable_or_obsolete()
    _kill(first)
    assert _request(own_connection) != first
