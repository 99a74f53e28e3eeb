"""Counts and times every request by its URL route pattern (not its path) for Prometheus, and
answers authorized scrapes of ``/metrics`` before host validation."""

from __future__ import annotations

import functools
import hmac
import ipaddress
import time

from django.conf import settings
from django.http import HttpResponse

from predictor.monitoring import metrics
from predictor.monitoring.metrics import HTTP_ERRORS, HTTP_LATENCY, HTTP_REQUESTS

# Anything else (a scanner's "FOO" method) is folded into one label value, to bound cardinality.
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED = "<unmatched>"


class PrometheusMiddleware:
    """Labels use the resolved route (``api/v1/predictions/<int:pk>/outcome``), so ids in paths and
    404 probes for random URLs cannot create new time series. Cost on the hot path: one clock read
    before and after, and three child-metric updates."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        started = time.perf_counter()
        response = self.get_response(request)
        elapsed = time.perf_counter() - started
        match = getattr(request, "resolver_match", None)
        route = match.route if match is not None and match.route else UNMATCHED
        method = request.method if request.method in _METHODS else "other"
        status = str(response.status_code)
        HTTP_REQUESTS.labels(method, route, status).inc()
        HTTP_LATENCY.labels(method, route).observe(elapsed)
        if response.status_code >= 400:
            HTTP_ERRORS.labels(status, route).inc()
        return response


METRICS_PATHS = ("/metrics", "/metrics/")


@functools.lru_cache(maxsize=8)
def _networks(allowed: tuple[str, ...]) -> tuple:
    # settings.py has validated every entry at start-up; strict=False accepts "10.0.0.7/24" as the /24.
    return tuple(ipaddress.ip_network(entry, strict=False) for entry in allowed)


def scrape_authorized(request) -> bool:
    """A scraper, not a person: the bearer token (``PREDICTOR_METRICS_TOKEN``) or an allowed address."""
    token = settings.PREDICTOR_METRICS_TOKEN
    if token:
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode()):
            return True
    allowed = settings.PREDICTOR_METRICS_ALLOWED_IPS
    if allowed:
        try:
            address = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
        except ValueError:
            return False
        return any(address in network for network in _networks(tuple(allowed)))
    return False


class MetricsScrapeMiddleware:
    """Answers an authorized Prometheus scrape of ``/metrics`` before host validation and the HTTPS redirect.

    Prometheus on ECS scrapes each task by its IP address (per-task counters only add up that way),
    over plain HTTP inside the VPC. That address is not in ALLOWED_HOSTS, so CommonMiddleware would
    answer 400, and SecurityMiddleware would redirect to HTTPS. A scrape with the token or from an
    allowed address is answered here; anything else goes down the normal stack, where staff
    sessions are still accepted by ``monitoring.views.metrics_view``. Placed before
    PrometheusMiddleware, so scrapes are not counted as traffic.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.path in METRICS_PATHS and request.method in ("GET", "HEAD") and scrape_authorized(request):
            return HttpResponse(metrics.render(), content_type=metrics.CONTENT_TYPE_LATEST)
        return self.get_response(request)
