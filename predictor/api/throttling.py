"""Per-client request rates, kept in the Django cache (never the database).

Each view names a scope; the rate comes from the setting ``PREDICTOR_THROTTLE_<SCOPE>`` (for
example ``PREDICTOR_THROTTLE_PREDICT = "600/min"``), read at request time. ``None`` switches the
scope off. Authenticated callers are counted per user, anonymous ones per client IP (see
``NUM_PROXIES`` for deployments behind a load balancer).
"""

from types import SimpleNamespace

from django.conf import settings
from django.core.cache import caches
from django.http import HttpRequest
from rest_framework.throttling import SimpleRateThrottle

DEFAULT_SCOPE = "api"


class SettingsRateThrottle(SimpleRateThrottle):
    cache_alias = "default"

    def __init__(self):
        # SimpleRateThrottle reads its rates at import time; ours are read per request instead.
        self.cache = caches[self.cache_alias]

    def allow_request(self, request, view):
        self.scope = getattr(view, "throttle_scope", None) or DEFAULT_SCOPE
        self.rate = getattr(settings, f"PREDICTOR_THROTTLE_{self.scope.upper()}", None)
        if self.rate is None:
            return True
        self.num_requests, self.duration = self.parse_rate(self.rate)
        return super().allow_request(request, view)

    def get_cache_key(self, request, view):
        if request.user and request.user.is_authenticated:
            ident = f"user:{request.user.pk}"
        else:
            ident = f"ip:{self.get_ident(request)}"
        return f"throttle:{self.scope}:{ident}"


def throttle_wait(request: HttpRequest, *, scope: str) -> float | None:
    """For a view outside DRF (the web form): None if ``request`` may go on, else seconds to wait.

    The same counters as the API's ``scope``: a client's form posts and API calls share one budget.
    """
    throttle = SettingsRateThrottle()
    if throttle.allow_request(request, SimpleNamespace(throttle_scope=scope)):
        return None
    return throttle.wait() or 1.0
