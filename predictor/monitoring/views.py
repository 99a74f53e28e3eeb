"""The staff monitoring page and the Prometheus scrape endpoint."""

from __future__ import annotations

from django.conf import settings
from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from predictor import selectors
from predictor.api.permissions import READ_PREDICTION_LOG
from predictor.monitoring import charts, metrics, stats
from predictor.monitoring.middleware import scrape_authorized


@staff_member_required
@require_GET
def monitoring_page(request):
    if not request.user.has_perm(READ_PREDICTION_LOG):
        # Staff, so no login redirect: say which permission is missing instead.
        return render(
            request,
            "predictor/unavailable.html",
            {
                "heading": "Not allowed",
                "message": (
                    f"Your account is staff but lacks the '{READ_PREDICTION_LOG}' permission the monitoring "
                    "page needs. An administrator can grant it in the admin."
                ),
                "nav": "monitoring",
            },
            status=403,
        )
    active = selectors.active_version()
    panels = []
    for version in stats.monitored_versions():
        quality = stats.version_quality(version)
        days = stats.daily_series(version)
        panels.append(
            {
                "version": version,
                "quality": quality,
                # The check_model rules, on figures already computed: no extra query.
                "health": stats.version_health(version, quality=quality),
                "days": days,
                "traffic_chart": charts.daily_bars(days, chart_id=f"traffic-v{version.version}"),
                "r2_chart": charts.r2_lines(days, threshold=version.threshold, chart_id=f"r2-v{version.version}"),
                "bmi_chart": charts.bmi_histogram(quality, chart_id=f"bmi-v{version.version}"),
            }
        )
    context = {
        "active": active,
        "panels": panels,
        "min_outcomes": settings.PREDICTOR_MONITOR_MIN_OUTCOMES,
        "psi_alert": settings.PREDICTOR_MONITOR_PSI_ALERT,
        "nav": "monitoring",
    }
    return render(request, "predictor/monitoring.html", context)


def _metrics_allowed(request) -> bool:
    # A scraper is normally answered by MetricsScrapeMiddleware already; checked again for the
    # case where that middleware is not installed.
    if scrape_authorized(request):
        return True
    user = getattr(request, "user", None)
    return bool(user is not None and user.is_active and user.is_staff and user.has_perm(READ_PREDICTION_LOG))


@require_GET
def metrics_view(request):
    """Prometheus text format; staff, a bearer token or an allowed IP (see docs/monitoring.md)."""
    if not _metrics_allowed(request):
        if settings.PREDICTOR_METRICS_TOKEN:
            response = HttpResponse("A valid bearer token is required.\n", status=401, content_type="text/plain")
            response["WWW-Authenticate"] = 'Bearer realm="metrics"'
            return response
        return HttpResponse(
            f"Metrics are restricted to staff with the '{READ_PREDICTION_LOG}' permission.\n",
            status=403,
            content_type="text/plain",
        )
    return HttpResponse(metrics.render(), content_type=metrics.CONTENT_TYPE_LATEST)
