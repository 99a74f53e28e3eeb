"""One error body for the whole API, and the exceptions the views raise.

Every error the API returns has the shape::

    {"error": {"status": 400, "code": "invalid", "message": "bmi: Must be a JSON number.",
               "fields": {"bmi": ["Must be a JSON number."]}}}

``fields`` appears only for validation errors. The message is for a person; ``code`` is stable
for programs. No error ever carries a stack trace or echoes the schema.
"""

from __future__ import annotations

from django.core.exceptions import PermissionDenied, RequestDataTooBig
from django.db import Error as DBError
from django.db import IntegrityError
from django.http import Http404, JsonResponse
from django.urls import Resolver404, resolve
from django.views import defaults
from django.views.decorators.csrf import csrf_exempt
from rest_framework import exceptions, status
from rest_framework.views import exception_handler as drf_exception_handler

from predictor.api.errors import API_PREFIX, error_body
from predictor.predictions import serving
from predictor.registry import services

# A validation message lists at most this many field errors; ``fields`` has them all.
MESSAGE_ERRORS = 3


class PayloadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "Request body is too large."
    default_code = "payload_too_large"


class Conflict(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "The request conflicts with the current state."
    default_code = "conflict"


class ServiceUnavailable(exceptions.APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = "Service temporarily unavailable; try again later."
    default_code = "unavailable"


class NoActiveModelError(ServiceUnavailable):
    default_detail = "No model version is active; train and promote one first."
    default_code = "no_active_model"


class PredictionLogUnavailable(ServiceUnavailable):
    # A prediction that could not be logged is not returned: the log is the audit trail.
    default_detail = "Prediction log unavailable; the prediction was not returned. Try again later."
    default_code = "prediction_log_unavailable"


def _translate(exc: Exception) -> Exception:
    """Map Django and domain exceptions onto API exceptions with the right status."""
    if isinstance(exc, RequestDataTooBig):
        return PayloadTooLarge()
    if isinstance(exc, services.VersionNotFound):
        return exceptions.NotFound(str(exc))
    if isinstance(exc, services.PromotionRefused):
        return Conflict(str(exc), code="refused")
    if isinstance(exc, serving.NoActiveModel):
        return NoActiveModelError(str(exc))
    if isinstance(exc, IntegrityError):
        # Two registry writes raced and the database constraint stopped the loser.
        return Conflict("A concurrent change to the registry won; reload and try again.")
    if isinstance(exc, DBError):
        # A broken connection is dropped by Django when the request finishes (close_old_connections).
        return ServiceUnavailable("Database unavailable; try again later.", code="database_unavailable")
    if isinstance(exc, Http404):
        return exceptions.NotFound()
    if isinstance(exc, PermissionDenied):
        return exceptions.PermissionDenied()
    return exc


def _flatten(detail, prefix: str = "") -> list[str]:
    """``{"bmi": {3: ["Too big."]}}`` -> ``["bmi[3]: Too big."]``."""
    if isinstance(detail, dict):
        lines = []
        for key, value in detail.items():
            if key == "non_field_errors":
                name = prefix
            elif isinstance(key, int) or (isinstance(key, str) and key.isdigit()):
                name = f"{prefix}[{key}]"
            else:
                name = f"{prefix}.{key}" if prefix else str(key)
            lines.extend(_flatten(value, name))
        return lines
    if isinstance(detail, list):
        return [line for item in detail for line in _flatten(item, prefix)]
    return [f"{prefix}: {detail}" if prefix else str(detail)]


def _body_for(exc: exceptions.APIException) -> dict:
    code_status = exc.status_code
    if isinstance(exc, exceptions.ValidationError):
        lines = _flatten(exc.detail)
        message = "; ".join(lines[:MESSAGE_ERRORS])
        if len(lines) > MESSAGE_ERRORS:
            message += f" (and {len(lines) - MESSAGE_ERRORS} more)"
        detail = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
        return error_body(code_status, "invalid", message or "Invalid input.", detail)
    codes = exc.get_codes()
    code = codes if isinstance(codes, str) else "error"
    return error_body(code_status, code, str(exc.detail))


def exception_handler(exc, context):
    """DRF's EXCEPTION_HANDLER: the standard handling (headers, rollback) with our error body."""
    exc = _translate(exc)
    # DRF sets WWW-Authenticate, Retry-After and marks the transaction for rollback.
    response = drf_exception_handler(exc, context)
    if response is None:
        return None  # an unexpected exception: a bug, left to Django's 500 handling and logging
    response.data = _body_for(exc)
    return response


def _is_api(request) -> bool:
    return request.path.startswith(API_PREFIX)


def bad_request(request, exception=None):
    """handler400 (a Host header not in ALLOWED_HOSTS, say): JSON under /api/, Django's page elsewhere."""
    if _is_api(request):
        # The cause stays in the server's log (django.security); the host is not echoed back.
        return JsonResponse(error_body(400, "bad_request", "Bad request."), status=400)
    return defaults.bad_request(request, exception)


def _api_not_found(request) -> JsonResponse:
    message = "No API endpoint at this path."
    # The API's paths end without a slash (the schema's with one): name the one that exists.
    path = request.path_info
    other = path[:-1] if path.endswith("/") else f"{path}/"
    try:
        exists = resolve(other).url_name != "not-found"
    except Resolver404:
        exists = False
    if exists:
        message += f" Did you mean {other}?"
    return JsonResponse(error_body(404, "not_found", message), status=404)


def not_found(request, exception=None):
    """handler404: the JSON error body under /api/, Django's page (404.html) elsewhere."""
    if _is_api(request):
        return _api_not_found(request)
    return defaults.page_not_found(request, exception)


@csrf_exempt  # it changes nothing; without this, a POST from a session got the CSRF page, not the 404
def api_path_not_found(request, rest: str = ""):
    """The last pattern under /api/: any other path is a JSON 404 in every mode.

    handler404 is not used with DEBUG on (Django shows its HTML debug page instead), so a route
    answers them; and it answers a trailing slash the same way, naming the path without it, rather
    than redirecting (a redirected POST loses its body).
    """
    return _api_not_found(request)


def server_error(request):
    """handler500: the JSON error body under /api/, Django's page (500.html) elsewhere."""
    if _is_api(request):
        return JsonResponse(error_body(500, "server_error", "Internal server error."), status=500)
    return defaults.server_error(request)
