"""REST API views: validate with a serializer, call serving or a service, shape the output.

No business rule lives here: predictions go through ``predictor.predictions.serving`` (which logs each one)
and registry changes through ``predictor.registry.services``, exactly as the management commands do.
"""

from __future__ import annotations

from django.db import Error as DBError
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema, extend_schema_view
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework import generics, status
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.pagination import CursorPagination, PageNumberPagination
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from predictor.api import serializers as s
from predictor.api.exceptions import Conflict, PredictionLogUnavailable
from predictor.api.permissions import ManageModels, PredictionAccess, ReadPredictionLog, RecordOutcomes
from predictor.api.renderers import FastJSONRenderer
from predictor.api.schema import errors
from predictor.ml.data import load_diabetes_bmi
from predictor.monitoring import stats
from predictor.predictions import selectors as predictions
from predictor.predictions import services as outcomes
from predictor.predictions import serving
from predictor.predictions.models import PredictionLog
from predictor.registry import selectors as registry
from predictor.registry import services

# Open endpoints: a token or session is optional (unless PREDICTOR_PREDICTIONS_REQUIRE_AUTH is set).
# No security requirement at all, rather than OpenAPI's "optional" [{token}, {}]: Swagger UI draws
# a lock on any operation with one, which told readers the public endpoints need an account.
# The API's description says how to send a token where a deployment requires one.
OPTIONAL_AUTH: list = []

# --- Predictions ---------------------------------------------------------------------------------


def _logged_predictions(bmis, channel: str) -> serving.LoggedPredictions:
    try:
        return serving.predict(bmis, channel=channel)
    except DBError as exc:
        # Django drops a broken connection itself when the request finishes (close_old_connections).
        raise PredictionLogUnavailable() from exc


# Answers of version 1 trained on the standard split (seed 0), as docs/api.md shows them.
_SCALE_EXAMPLE = {"low": 25.0, "high": 346.0}
_SINGLE_EXAMPLE = {
    "bmi": 27.4,
    "prediction": 163.24,
    "interval": {"level": 0.95, "low": 39.2, "high": 287.3, "low_raw": 39.2, "high_raw": 287.3},
    "scale": _SCALE_EXAMPLE,
    "warnings": [],
    "model_version": 1,
    "prediction_id": 4711,
    "unit": s.PREDICTION_UNIT,
    "bmi_unit": s.BMI_UNIT,
}
_SINGLE_OUTSIDE_EXAMPLE = {
    **_SINGLE_EXAMPLE,
    "bmi": 11.0,
    "prediction": -2.48,
    "interval": {"level": 0.95, "low": 25.0, "high": 123.4, "low_raw": -128.3, "high_raw": 123.4},
    "warnings": [
        {
            "code": "bmi_outside_training_range",
            "message": "BMI 11 kg/m² is outside the BMIs this model was trained on (18.0 to 42.2 kg/m²): the "
            "estimate extends a straight line beyond the data and may be far off.",
        },
        {
            "code": "prediction_outside_scale",
            "message": "The line gives -2.5, a negative score, which is not a possible progression value: do not "
            "rely on this number.",
        },
        {
            "code": "interval_clipped",
            "message": "The interval reaches beyond the scores the training data cover (25 to 346): the lower end "
            "(-128) is shown as 25.",
        },
    ],
}
_BATCH_EXAMPLE = {
    "model_version": 1,
    "batch_id": 4712,
    "count": 3,
    "predictions": [68.3, 163.2, 391.6],
    "intervals": {
        "level": 0.95,
        "low": [25.0, 39.2, 263.5],
        "high": [192.8, 287.3, 346.0],
        "low_raw": [-56.3, 39.2, 263.5],
        "high_raw": [192.8, 287.3, 519.8],
    },
    "scale": _SCALE_EXAMPLE,
    "warnings": [
        {
            "code": "bmi_outside_training_range",
            "message": "BMI outside the BMIs this model was trained on (18.0 to 42.2 kg/m²): the estimate extends "
            "a straight line beyond the data and may be far off.",
            "indices": [2],
        },
        {
            "code": "prediction_outside_scale",
            "message": "Prediction outside the progression scores of the training data (25 to 346): do not rely on it.",
            "indices": [2],
        },
        {
            "code": "interval_clipped",
            "message": "An end of the interval lies beyond the scores of the training data (25 to 346); low and high "
            "are clipped to that scale, low_raw and high_raw are not.",
            "indices": [0, 2],
        },
    ],
    "unit": s.PREDICTION_UNIT,
    "bmi_unit": s.BMI_UNIT,
}


@extend_schema(tags=["predictions"])
class PredictView(APIView):
    permission_classes = [PredictionAccess]
    throttle_scope = "predict"

    @extend_schema(
        operation_id="predict",
        auth=OPTIONAL_AUTH,
        summary="Predict disease progression from one BMI",
        request=s.PredictInputSerializer,
        responses={200: s.PredictOutputSerializer, **errors(400, 401, 403, 413, 415, 429, 503)},
        examples=[
            OpenApiExample("BMI 27.4", value={"bmi": 27.4}, request_only=True),
            OpenApiExample("BMI 27.4 answered", value=_SINGLE_EXAMPLE, response_only=True),
            OpenApiExample("BMI 11: outside the training data", value=_SINGLE_OUTSIDE_EXAMPLE, response_only=True),
        ],
    )
    def post(self, request):
        serializer = s.PredictInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        result = _logged_predictions([serializer.validated_data["bmi"]], PredictionLog.Channel.API)
        # The interval and cautions come from figures cached with the model: a few float operations.
        explained = result.explain()
        return Response(
            {
                "bmi": result.bmi[0],
                "prediction": result.predictions[0],
                "interval": s.interval_body(explained),
                "scale": s.scale_body(explained),
                "warnings": [{"code": c.code, "message": c.message} for c in explained.cautions()],
                "model_version": result.model.version,
                "prediction_id": result.log_id,
                "unit": s.PREDICTION_UNIT,
                "bmi_unit": s.BMI_UNIT,
            }
        )


@extend_schema(tags=["predictions"])
class PredictBatchView(APIView):
    permission_classes = [PredictionAccess]
    throttle_scope = "batch"
    # orjson for the up to 10,000 floats of the answer: same JSON, a fraction of the time.
    renderer_classes = [FastJSONRenderer]

    @extend_schema(
        operation_id="predict_batch",
        auth=OPTIONAL_AUTH,
        summary="Predict for many BMIs at once (all or nothing)",
        request=s.BatchInputSerializer,
        responses={200: s.BatchOutputSerializer, **errors(400, 401, 403, 413, 415, 429, 503)},
        examples=[
            OpenApiExample("Three BMIs", value={"bmi": [18.0, 27.4, 50.0]}, request_only=True),
            OpenApiExample("Three BMIs answered", value=_BATCH_EXAMPLE, response_only=True),
        ],
    )
    def post(self, request):
        serializer = s.BatchInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        result = _logged_predictions(serializer.validated_data["bmi"], PredictionLog.Channel.BATCH)
        explained = result.explain()
        output = {
            "model_version": result.model.version,
            "batch_id": result.log_id,
            "count": len(result.predictions),
            "predictions": result.predictions,
            "intervals": s.intervals_body(explained),
            "scale": s.scale_body(explained),
            "warnings": [vars(caution) for caution in explained.batch_cautions()],
            "unit": s.PREDICTION_UNIT,
            "bmi_unit": s.BMI_UNIT,
        }
        return Response(s.BatchOutputSerializer(output).data)


class StrictPageSizeMixin:
    """``page_size`` is a whole number from 1 to ``max_page_size``, or a 400 naming it.

    DRF quietly serves its default page for ``page_size=0``, ``-1`` or ``abc``, which hides a
    client's bug behind a page of another size than it asked for.
    """

    page_size = 100
    page_size_query_param = "page_size"
    max_page_size = 1000

    def get_page_size(self, request):
        raw = request.query_params.get(self.page_size_query_param)
        if raw is not None and not (raw.isascii() and raw.isdigit() and 1 <= int(raw) <= self.max_page_size):
            raise ValidationError(
                {self.page_size_query_param: [f"Must be a whole number from 1 to {self.max_page_size}."]}
            )
        return super().get_page_size(request)

    def get_schema_operation_parameters(self, view):
        # The schema states the same bounds, so clients (and schema-driven tests) know them.
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.page_size_query_param:
                parameter["schema"] = {**parameter["schema"], "minimum": 1, "maximum": self.max_page_size}
        return parameters


class PredictionPagination(StrictPageSizeMixin, CursorPagination):
    # Cursor pages stay fast on a large log: no COUNT(*), no OFFSET. Newest first by id, which the
    # database hands out in commit-independent order but never twice: following "next" neither
    # skips nor repeats an entry.
    ordering = "-id"

    def decode_cursor(self, request):
        # DRF checks a cursor's offset but passes its position straight into the id filter, where a
        # forged position that is not an id failed when the page was fetched (a 500).
        cursor = super().decode_cursor(request)
        if (
            cursor is not None
            and cursor.position is not None
            and not (cursor.position.isascii() and cursor.position.isdigit())
        ):
            raise NotFound(self.invalid_cursor_message)
        return cursor


@extend_schema_view(
    get=extend_schema(
        tags=["management"],
        operation_id="prediction_list",
        summary="The prediction log, newest first: single predictions and batches (staff)",
        parameters=[s.PredictionFilterSerializer],
        responses={200: s.PredictionLogSerializer(many=True), **errors(400, 401, 403, 404, 429)},
    )
)
class PredictionListView(generics.ListAPIView):
    permission_classes = [ReadPredictionLog]
    serializer_class = s.PredictionLogSerializer
    pagination_class = PredictionPagination
    # A page can hold batches of 10,000 values each: the fast renderer.
    renderer_classes = [FastJSONRenderer]

    def get_queryset(self):
        filters = s.PredictionFilterSerializer(data=self.request.query_params)
        filters.is_valid(raise_exception=True)
        return predictions.prediction_list(**filters.validated_data)


_PREDICTION_ID = OpenApiParameter(
    "prediction_id",
    OpenApiTypes.INT64,
    OpenApiParameter.PATH,
    description="The prediction_id of a single prediction, or the batch_id of a batch.",
)


@extend_schema(tags=["management"])
class PredictionDetailView(APIView):
    permission_classes = [ReadPredictionLog]
    renderer_classes = [FastJSONRenderer]

    @extend_schema(
        operation_id="prediction_detail",
        summary="One entry of the prediction log: its BMIs and predictions in input order (staff)",
        parameters=[_PREDICTION_ID],
        responses={200: s.PredictionLogSerializer, **errors(401, 403, 404, 429)},
    )
    def get(self, request, prediction_id: int):
        log = predictions.prediction_get(prediction_id=prediction_id)
        if log is None:
            raise NotFound(f"Prediction {prediction_id} does not exist.")
        return Response(s.PredictionLogSerializer(log).data)


@extend_schema(tags=["monitoring"])
class OutcomeCreateView(APIView):
    """Record the progression observed a year later for a logged prediction (once)."""

    permission_classes = [RecordOutcomes]

    @extend_schema(
        operation_id="outcome_create",
        summary="Record the observed progression for a logged prediction (a batch item: with its position)",
        parameters=[_PREDICTION_ID],
        request=s.OutcomeInputSerializer,
        responses={201: s.OutcomeOutputSerializer, **errors(400, 401, 403, 404, 409, 413, 415, 429, 503)},
        examples=[
            OpenApiExample("Observed 151", value={"observed": 151}, request_only=True),
            OpenApiExample("Item 3 of a batch", value={"observed": 151, "position": 3}, request_only=True),
        ],
    )
    def post(self, request, prediction_id: int):
        serializer = s.OutcomeInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            outcome = outcomes.outcome_record(
                prediction_id=prediction_id, user=request.user, **serializer.validated_data
            )
        except outcomes.PredictionNotFound as exc:
            raise NotFound(str(exc)) from None
        except outcomes.OutcomeExists as exc:
            raise Conflict(str(exc)) from None
        except outcomes.InvalidOutcome as exc:
            raise ValidationError({exc.field: [str(exc)]}) from None
        return Response(s.OutcomeOutputSerializer(outcome).data, status=status.HTTP_201_CREATED)


@extend_schema(tags=["monitoring"])
class ModelMonitoringView(APIView):
    """Live quality and drift of one version, with the per-day series the page charts."""

    permission_classes = [ReadPredictionLog]

    @extend_schema(
        operation_id="model_monitoring",
        summary="Live quality and input drift of one model version",
        responses={200: s.MonitoringOutputSerializer, **errors(401, 403, 404, 429, 503)},
    )
    def get(self, request, version: int):
        model_version = registry.version_get(version=version)
        if model_version is None:
            raise NotFound(f"Version {version} does not exist.")
        quality, days = stats.version_report(model_version)
        body = {
            **quality.as_dict(),
            "status": model_version.status,
            "held_out_r2": model_version.r2_test,
            "threshold": model_version.threshold,
            "daily": [vars(point) for point in days],
        }
        return Response(s.MonitoringOutputSerializer(body).data)


# --- The model registry --------------------------------------------------------------------------


class VersionPagination(StrictPageSizeMixin, PageNumberPagination):
    pass


@extend_schema_view(
    get=extend_schema(
        tags=["models"],
        operation_id="model_list",
        auth=OPTIONAL_AUTH,
        summary="Model versions with their metrics and status, newest first",
        responses={200: s.ModelVersionSerializer(many=True), **errors(400, 401, 403, 404, 429)},
    )
)
class ModelListView(generics.ListAPIView):
    permission_classes = [PredictionAccess]
    serializer_class = s.ModelVersionSerializer
    pagination_class = VersionPagination

    def get_queryset(self):
        return registry.version_list().select_related("created_by")


@extend_schema(tags=["models"])
class ModelDetailView(APIView):
    permission_classes = [PredictionAccess]

    @extend_schema(
        operation_id="model_detail",
        auth=OPTIONAL_AUTH,
        summary="One model version, with its loss curve and training BMI histogram",
        responses={200: s.ModelVersionDetailSerializer, **errors(401, 403, 404, 429)},
    )
    def get(self, request, version: int):
        model_version = registry.version_get(version=version)
        if model_version is None:
            raise NotFound(f"Version {version} does not exist.")
        return Response(s.ModelVersionDetailSerializer(model_version, context={"request": request}).data)


@extend_schema(tags=["models"])
class ActiveModelView(APIView):
    permission_classes = [PredictionAccess]

    @extend_schema(
        operation_id="model_active",
        auth=OPTIONAL_AUTH,
        summary="The version serving predictions now",
        responses={200: s.ModelVersionDetailSerializer, **errors(401, 403, 404, 429)},
    )
    def get(self, request):
        model_version = registry.active_version()
        if model_version is None:
            raise NotFound("No model version is active.")
        return Response(s.ModelVersionDetailSerializer(model_version, context={"request": request}).data)


@extend_schema(tags=["management"])
class TrainView(APIView):
    permission_classes = [ManageModels]

    @extend_schema(
        operation_id="model_train",
        summary="Train a version on the diabetes data; promote it if it passes the gate (staff)",
        description=(
            "Always creates a version. One that fails the R² gate is stored as `rejected` and returned "
            'with `"promoted": false` and the decision; one that passes is promoted unless `promote` is false.'
        ),
        request=s.TrainInputSerializer,
        responses={201: s.TrainOutputSerializer, **errors(400, 401, 403, 409, 413, 415, 429, 503)},
    )
    def post(self, request):
        serializer = s.TrainInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            result = services.model_version_train(
                dataset=load_diabetes_bmi(), user=request.user, **serializer.validated_data
            )
        except ValueError as exc:  # hyperparameters the estimator refuses; nothing was written
            raise ValidationError({"non_field_errors": [str(exc)]}) from exc
        output = s.TrainOutputSerializer(result.version, context={"result": result, "request": request})
        return Response(output.data, status=status.HTTP_201_CREATED)


@extend_schema(tags=["management"])
class PromoteView(APIView):
    permission_classes = [ManageModels]

    @extend_schema(
        operation_id="model_promote",
        summary="Make a version the active one (staff)",
        request=s.ReasonInputSerializer,
        responses={200: s.ModelVersionSerializer, **errors(400, 401, 403, 404, 409, 413, 415, 429, 503)},
    )
    def post(self, request, version: int):
        serializer = s.ReasonInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        promoted = services.model_version_promote(
            version=version, user=request.user, reason=serializer.validated_data["reason"]
        )
        return Response(s.ModelVersionSerializer(promoted, context={"request": request}).data)


@extend_schema(tags=["management"])
class RollbackView(APIView):
    permission_classes = [ManageModels]

    @extend_schema(
        operation_id="model_rollback",
        summary="Return to the previously active version (staff)",
        request=s.ReasonInputSerializer,
        responses={200: s.ModelVersionSerializer, **errors(400, 401, 403, 409, 413, 415, 429, 503)},
    )
    def post(self, request):
        serializer = s.ReasonInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        target = services.model_version_rollback(user=request.user, reason=serializer.validated_data["reason"])
        return Response(s.ModelVersionSerializer(target, context={"request": request}).data)


# --- Schema and docs -----------------------------------------------------------------------------


class SchemaView(SpectacularAPIView):
    # The schema comes as YAML or JSON (?format=json), so this view negotiates, unlike the API.
    content_negotiation_class = DefaultContentNegotiation
    permission_classes = [AllowAny]
    throttle_classes = []


class SwaggerView(SpectacularSwaggerSplitView):
    # The split view serves Swagger UI's init script as a file (?script=), not inline, so the
    # Content-Security-Policy can keep script-src 'self'.
    content_negotiation_class = DefaultContentNegotiation
    permission_classes = [AllowAny]
    throttle_classes = []
    # Adds a link back to the site and a <noscript> pointing at the schema (the UI is all script).
    template_name = "predictor/swagger_ui.html"
