"""The Prometheus scrape endpoint."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpResponse
from django.views.decorators.http import require_GET

from predictor.access import metrics_refusal
from predictor.monitoring import metrics


@require_GET
def metrics_view(request):
    """Prometheus text format; staff, a bearer token or an allowed IP (see docs/monitoring.md).

    An authorized scraper is normally answered by ``MetricsScrapeMiddleware`` already, before host
    validation; a staff session comes here.
    """
    refusal = metrics_refusal(request)
    if refusal is None:
        return metrics.response()
    if settings.PREDICTOR_METRICS_TOKEN:
        response = HttpResponse("A valid bearer token is required.\n", status=401, content_type="text/plain")
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    return HttpResponse(refusal + "\n", status=403, content_type="text/plain")
