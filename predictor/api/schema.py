"""OpenAPI pieces: the documented error responses of each endpoint."""

from drf_spectacular.utils import OpenApiResponse

from predictor.api.serializers import ErrorSerializer

_DESCRIPTIONS = {
    400: "Invalid input: the message and `fields` name each bad field and why.",
    401: (
        "Authentication required: send `Authorization: Token <secret>` (an API token from "
        "`manage.py create_token`) or use a session."
    ),
    403: "Authenticated but not allowed (management endpoints are for staff users).",
    404: "Not found.",
    409: "Refused: the registry's state does not allow it; the message says why.",
    413: "Request body larger than DATA_UPLOAD_MAX_MEMORY_SIZE.",
    415: "Content-Type is not application/json.",
    429: "Too many requests from this client; retry after the `Retry-After` header's seconds.",
    503: "No active model version, or the database (prediction log) is unavailable.",
}


def errors(*codes: int) -> dict[int, OpenApiResponse]:
    """``{status: OpenApiResponse(ErrorSerializer)}`` for ``extend_schema(responses=...)``."""
    return {code: OpenApiResponse(ErrorSerializer, description=_DESCRIPTIONS[code]) for code in codes}
