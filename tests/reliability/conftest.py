"""Shared by the reliability tests: the hypothesis "ci" profile and unthrottled clients."""

from __future__ import annotations

import pytest
from django.core.cache import cache
from hypothesis import HealthCheck, settings

# Modest, fixed example counts: enough to find the classic bugs (NaN, huge ints, wrong types,
# broken encodings) while keeping the whole reliability suite within a few minutes of CI time.
# No deadline: a shared 2-core CI machine makes per-example timings meaningless.
settings.register_profile(
    "ci",
    max_examples=200,
    deadline=None,
    derandomize=True,  # the same inputs on every run: a failure in CI reproduces locally
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    print_blob=True,
)
settings.load_profile("ci")


@pytest.fixture
def unthrottled(settings):
    # Thousands of requests from one client in a few seconds: the throttle would answer 429.
    settings.PREDICTOR_THROTTLE_PREDICT = None
    settings.PREDICTOR_THROTTLE_BATCH = None
    settings.PREDICTOR_THROTTLE_API = None
    cache.clear()
    yield
    cache.clear()
