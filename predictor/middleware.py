"""Health endpoints answered before any other middleware, and the Content-Security-Policy header.

Load balancers and container health checks call them by the task's IP address, which is not in
ALLOWED_HOSTS, and must not be redirected to HTTPS; so these two paths are answered here, before
SecurityMiddleware or CommonMiddleware ever look at the Host header.
"""

from django.conf import settings
from django.db import Error as DBError
from django.db import connection
from django.http import HttpResponse, JsonResponse

from predictor.api.errors import API_PREFIX, error_body
from predictor.registry.models import ModelVersion

HEALTH_PATHS = ("/healthz", "/healthz/")
READY_PATHS = ("/readyz", "/readyz/")


def readiness() -> tuple[bool, dict]:
    """(ready, body): ready when the database answers and a version is active."""
    try:
        active = (
            ModelVersion.objects.filter(status=ModelVersion.Status.ACTIVE).values_list("version", flat=True).first()
        )
    except DBError as exc:
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


class ContentSecurityPolicyMiddleware:
    """Sends ``Content-Security-Policy`` (Django 5.2 has no built-in CSP; 6.0 will).

    The pages use no inline script or style and load nothing from another host, so one strict
    policy fits them all. Swagger UI at /docs is the exception: its template carries an inline
    ``<style>`` block, so that path alone also allows inline styles (its scripts stay same-origin:
    the init script is served as a file by SpectacularSwaggerSplitView).
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if "Content-Security-Policy" not in response:
            policy = settings.CONTENT_SECURITY_POLICY
            if request.path in ("/docs", "/docs/"):
                policy = settings.CONTENT_SECURITY_POLICY_DOCS
            if policy:
                response["Content-Security-Policy"] = policy
        return response


class LengthRequiredMiddleware:
    """Answers 411 to a request whose body comes without a Content-Length (``Transfer-Encoding``).

    Django reads a WSGI request body only up to ``CONTENT_LENGTH``, so a chunked body reached the
    views as an empty one and a prediction got "bmi: This field is required" for a BMI it had sent.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if "HTTP_TRANSFER_ENCODING" in request.META and not request.META.get("CONTENT_LENGTH"):
            message = "Send the body with a Content-Length header; chunked request bodies are not supported."
            if request.path.startswith(API_PREFIX):
                return JsonResponse(error_body(411, "length_required", message), status=411)
            return HttpResponse(message, status=411, content_type="text/plain; charset=utf-8")
        return self.get_response(request)
