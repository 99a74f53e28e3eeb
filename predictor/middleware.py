"""Health endpoints answered before any other middleware.

Load balancers and container health checks call them by the task's IP address, which is not in
ALLOWED_HOSTS, and must not be redirected to HTTPS; so these two paths are answered here, before
SecurityMiddleware or CommonMiddleware ever look at the Host header.
"""

from django.db import DatabaseError, connection
from django.http import JsonResponse

from predictor.models import ModelVersion

HEALTH_PATHS = ("/healthz", "/healthz/")
READY_PATHS = ("/readyz", "/readyz/")


def readiness() -> tuple[bool, dict]:
    """(ready, body): ready when the database answers and a version is active."""
    try:
        active = (
            ModelVersion.objects.filter(status=ModelVersion.Status.ACTIVE).values_list("version", flat=True).first()
        )
    except DatabaseError as exc:
        # A dead connection must not poison the next request: drop it so Django reconnects.
        connection.close_if_unusable_or_obsolete()
        return False, {"status": "unavailable", "reason": f"database unavailable: {type(exc).__name__}"}
    if active is None:
        return False, {"status": "unavailable", "reason": "no model version is active"}
    return True, {"status": "ready", "model_version": active}


class HealthCheckMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.method in ("GET", "HEAD"):
            if request.path in HEALTH_PATHS:
                # Liveness: the process answers. No database, so a database outage does not make
                # the orchestrator kill healthy web tasks.
                return JsonResponse({"status": "ok"})
            if request.path in READY_PATHS:
                ready, body = readiness()
                return JsonResponse(body, status=200 if ready else 503)
        return self.get_response(request)
