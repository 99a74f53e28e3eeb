"""Prometheus metrics: request counts and latencies per route, predictions, live model quality.

Two modes, chosen by prometheus-client itself when a metric is created:

* ``PROMETHEUS_MULTIPROC_DIR`` set (production, several gunicorn workers): every worker writes its
  counters to memory-mapped files in that directory, and a scrape of any worker sums all of them
  (:class:`prometheus_client.multiprocess.MultiProcessCollector`). Without this, each scrape would
  see one random worker's counts.
* unset (runserver, tests): the ordinary in-process registry.

The model figures (active version, live R², drift) are not counters: they are read from the
database when scraped (:class:`ModelQualityCollector`), cached per process for
``PREDICTOR_METRICS_CACHE_SECONDS``, so they are right whichever worker answers.
"""

from __future__ import annotations

import os
import threading
import time

from django.conf import settings
from django.db import Error as DBError
from django.http import HttpResponse
from django.utils import timezone
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest, multiprocess
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import REGISTRY

from predictor.monitoring import rollups, stats
from predictor.registry import selectors

__all__ = ["HTTP_ERRORS", "HTTP_LATENCY", "HTTP_REQUESTS", "render", "response"]

# Latency buckets in seconds: a logged prediction takes about a millisecond; a 10,000-row batch or
# the monitoring page can take a second or more.
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

HTTP_REQUESTS = Counter(
    "bmi_http_requests_total",
    "HTTP requests answered, by method, URL route pattern and status code.",
    ["method", "route", "status"],
)
HTTP_LATENCY = Histogram(
    "bmi_http_request_duration_seconds",
    "Time to answer an HTTP request, by method and URL route pattern.",
    ["method", "route"],
    buckets=_LATENCY_BUCKETS,
)
HTTP_ERRORS = Counter(
    "bmi_http_errors_total",
    "HTTP responses with a 4xx or 5xx status, by status code and URL route pattern.",
    ["status", "route"],
)
# The predictions counter (bmi_predictions_total) is the serving path's: predictor/predictions/metrics.py.


class ModelQualityCollector:
    """Gauges read from the database at scrape time: active version, live quality and drift."""

    def __init__(self, cache_seconds: float | None = None):
        self._cache_seconds = cache_seconds
        self._lock = threading.Lock()
        self._cached_at = float("-inf")
        self._families: list = []

    def collect(self):
        ttl = settings.PREDICTOR_METRICS_CACHE_SECONDS if self._cache_seconds is None else self._cache_seconds
        with self._lock:
            now = time.monotonic()
            if now - self._cached_at >= ttl:
                self._families = self._compute()
                self._cached_at = now
            families = self._families
        yield from families

    def _compute(self) -> list:
        active = GaugeMetricFamily(
            "bmi_model_active_version", "Version number of the active model (0 when none is active)."
        )
        up = GaugeMetricFamily("bmi_model_quality_up", "1 when the model figures could be read from the database.")
        served = GaugeMetricFamily(
            "bmi_model_predictions_logged", "Predictions in the log for the active version.", labels=["model_version"]
        )
        outcomes = GaugeMetricFamily(
            "bmi_model_outcomes", "Observed outcomes recorded for the active version.", labels=["model_version"]
        )
        r2 = GaugeMetricFamily(
            "bmi_model_live_r2", "Live R² of the active version on observed outcomes.", labels=["model_version"]
        )
        mae = GaugeMetricFamily(
            "bmi_model_live_mae", "Live mean absolute error on observed outcomes.", labels=["model_version"]
        )
        psi = GaugeMetricFamily(
            "bmi_model_drift_psi",
            "Population stability index of served BMIs against training BMIs (> 0.25 is drift).",
            labels=["model_version"],
        )
        rollup_age = GaugeMetricFamily(
            "bmi_monitoring_rollup_age_seconds",
            "Seconds since the monitoring rollups were last folded (absent before the first fold): "
            "a stopped rollup_monitoring schedule makes every monitoring read slower, never wrong.",
        )
        try:
            version = selectors.active_version()
            quality = stats.version_quality(version) if version is not None else None
            folded_at = rollups.watermark().folded_at
        except DBError:
            up.add_metric([], 0)
            return [up]
        up.add_metric([], 1)
        active.add_metric([], version.version if version is not None else 0)
        families = [up, active]
        if folded_at is not None:
            rollup_age.add_metric([], (timezone.now() - folded_at).total_seconds())
            families.append(rollup_age)
        if quality is not None:
            label = [str(version.version)]
            served.add_metric(label, quality.n_predictions)
            outcomes.add_metric(label, quality.n_outcomes)
            families += [served, outcomes]
            # A figure that cannot be computed yet is absent, not zero: zero would read as a real R².
            if quality.r2 is not None:
                r2.add_metric(label, quality.r2)
                families.append(r2)
            if quality.mae is not None:
                mae.add_metric(label, quality.mae)
                families.append(mae)
            if quality.psi is not None:
                psi.add_metric(label, quality.psi)
                families.append(psi)
        return families


_quality_collector = ModelQualityCollector()
_registration_lock = threading.Lock()
_registered = False


def multiprocess_enabled() -> bool:
    return bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))


def render() -> bytes:
    """The exposition text for a scrape: every worker's counters plus the model gauges."""
    global _registered
    if multiprocess_enabled():
        # A fresh registry per scrape: the collector reads all workers' files each time.
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        registry.register(_quality_collector)
        return generate_latest(registry)
    with _registration_lock:
        if not _registered:
            REGISTRY.register(_quality_collector)
            _registered = True
    return generate_latest(REGISTRY)


def response() -> HttpResponse:
    return HttpResponse(render(), content_type=CONTENT_TYPE_LATEST)
