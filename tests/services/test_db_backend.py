"""The PostgreSQL backend's health-check grace: skipped for a fresh connection, kept for an idle one."""

import time

import pytest
from django.db import DatabaseError, connection, connections

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="the PostgreSQL backend; CI runs on PostgreSQL"),
]


@pytest.fixture
def own_connection(settings):
    """A second connection, driven the way Django drives one across requests."""
    settings.CONN_HEALTH_CHECK_GRACE = 0.3
    wrapper = connections.create_connection("default")
    wrapper.settings_dict["CONN_HEALTH_CHECKS"] = True
    wrapper.health_check_enabled = True
    yield wrapper
    wrapper.close()


def _request(wrapper):
    """One request's life: the start-of-request check, one query, the end-of-request bookkeeping."""
    wrapper.close_if_unusable_or_obsolete()
    try:
        with wrapper.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            return cursor.fetchone()[0]
    finally:
        wrapper.close_if_unusable_or_obsolete()


def _kill(pid):
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
    time.sleep(0.05)  # the server closes the socket asynchronously


def test_the_engine_is_the_project_backend():
    assert connection.settings_dict["ENGINE"] == "bmiproject.db.postgresql"


def test_a_connection_idle_longer_than_the_grace_is_checked_and_replaced(own_connection):
    first = _request(own_connection)
    _kill(first)
    time.sleep(0.35)
    # Idle past the grace: the health check finds it dead and Django opens a new one.
    assert _request(own_connection) != first


def test_a_fresh_connection_skips_the_check_and_a_dead_one_fails_once(own_connection):
    first = _request(own_connection)
    assert _request(own_connection) == first  # reused, no reconnect
    _kill(first)
    # Within the grace the check is skipped: the query meets the dead socket and fails cleanly...
    with pytest.raises(DatabaseError):
        _request(own_connection)
    # ...and the failed request's bookkeeping discards it, so the next request works.
    assert _request(own_connection) not in (None, first)


def test_a_failed_request_does_not_count_as_fresh(own_connection):
    first = _request(own_connection)
    own_connection.close_if_unusable_or_obsolete()
    with pytest.raises(DatabaseError), own_connection.cursor() as cursor:
        cursor.execute("SELECT * FROM no_such_table")
    answered = own_connection._answered_at
    own_connection.close_if_unusable_or_obsolete()
    assert own_connection._answered_at == answered  # errors_occurred: no grace from this request
    assert _request(own_connection) == first
