"""The common case of ``POST /api/v1/predict``, answered without DRF's request machinery.

Profiling the prediction endpoint under load showed DRF's per-request work (request wrapping,
authenticators, content negotiation, serializer construction, rendering) costing several times
the prediction itself. This module answers only the request that needs none of it: an anonymous
JSON body ``{"bmi": <number in range>}`` under the rate limit. It applies the same rules with the
same code (the serializer's BMI field, the strict JSON parser, the throttle class) and writes the
same response bytes and headers.

Anything else — a token or session, a validation error, a throttled client, no active model, a
database error — returns ``None`` and the request goes to the DRF view, which alone produces
every error response. So error bodies have a single source, and a test compares the two paths'
successful responses byte for byte.
"""

from __future__ import annotations

import json

from django.conf import settings
from django.db import Error as DBError
from django.http import HttpResponse
from django.utils.cache import patch_vary_headers
from rest_framework.exceptions import ValidationError
from rest_framework.fields import empty
from rest_framework.settings import api_settings

from predictor import serving
from predictor.api import strictjson
from predictor.api.serializers import BMI_UNIT, PREDICTION_UNIT, PredictInputSerializer
from predictor.api.throttling import SettingsRateThrottle
from predictor.models import PredictionLog


class _Scope:
    """What the throttle reads from a view: its scope."""

    def __init__(self, scope: str):
        self.throttle_scope = scope


_PREDICT_SCOPE = _Scope("predict")
_BMI_FIELD = PredictInputSerializer().fields["bmi"]


def predict(request, *, allowed_methods: str) -> HttpResponse | None:
    """The 200 response for a plain anonymous prediction, or ``None`` to let DRF handle it."""
    if (
        request.method != "POST"
        or request.content_type != "application/json"
        or request.content_params.get("charset", "utf-8").lower() != "utf-8"
        or "HTTP_AUTHORIZATION" in request.META
        or settings.SESSION_COOKIE_NAME in request.COOKIES  # DRF would authenticate (and check CSRF)
        or settings.PREDICTOR_PREDICTIONS_REQUIRE_AUTH
    ):
        return None
    bmi = _valid_bmi(request)
    if bmi is None:
        return None
    if not SettingsRateThrottle().allow_request(request, _PREDICT_SCOPE):
        return None  # DRF's throttle sees the same history and answers 429 with Retry-After
    try:
        result = serving.predict_one(bmi, channel=PredictionLog.Channel.API)
    except (DBError, serving.NoActiveModel):
        # Nothing was logged; DRF's view tries once more and answers 503 if it fails too. The
        # request is already counted against the rate limit, so DRF must not count it again.
        request.throttle_counted = True
        return None
    body = {
        "bmi": result.bmi,
        "prediction": result.prediction,
        "model_version": result.model.version,
        "prediction_id": result.log_id,
        "unit": PREDICTION_UNIT,
        "bmi_unit": BMI_UNIT,
    }
    response = HttpResponse(_render(body), content_type="application/json")
    # DRF's session authenticator reads the session, so its responses vary by cookie; so does this.
    patch_vary_headers(response, ("Cookie",))
    # The header DRF's Response adds for this view (it adds no Vary: JSON is its only renderer).
    response["Allow"] = allowed_methods
    return response


def _valid_bmi(request) -> float | None:
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return None
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    if length <= 0 or (limit is not None and length > limit):
        return None
    try:
        data = strictjson.loads(request.body.decode("utf-8"))
    except (ValueError, RecursionError):
        return None
    if type(data) is not dict:
        return None
    try:
        # The DRF serializer's own field, so a new rule there applies here too.
        return _BMI_FIELD.run_validation(data.get("bmi", empty))
    except ValidationError:
        return None


def _render(data: dict) -> bytes:
    # Exactly DRF's JSONRenderer with the project's settings: compact, UTF-8, no NaN.
    return json.dumps(
        data,
        ensure_ascii=not api_settings.UNICODE_JSON,
        allow_nan=not api_settings.STRICT_JSON,
        separators=(",", ":") if api_settings.COMPACT_JSON else (", ", ": "),
    ).encode()
