"""Counts and times every request by its URL route pattern (not its path) for Prometheus, and
answers authorized scrapes of ``/metrics`` before host validation."""

from __future__ import annotations

import time

from predictor.access import scraper_authorized
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
        if request.path in METRICS_PATHS and request.method in ("GET", "HEAD") and scraper_authorized(request):
            return metrics.response()
        return self.get_response(request)
