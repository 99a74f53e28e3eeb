"""REST API views: validate with a serializer, call serving or a service, shape the output.

No business rule lives here: predictions go through ``predictor.serving`` (which logs each one)
and registry changes through ``predictor.services``, exactly as the management commands do.
"""

from __future__ import annotations

import functools
import uuid
from datetime import UTC

from django.db import Error as DBError
from django.utils.dateparse import parse_datetime
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema, extend_schema_view
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework import generics, status
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.pagination import CursorPagination, PageNumberPagination
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.serializers import Serializer
from rest_framework.views import APIView

from predictor import selectors, services, serving
from predictor.api import fastpath
from predictor.api import serializers as s
from predictor.api.exceptions import PredictionLogUnavailable
from predictor.api.permissions import ManageModels, PredictionAccess, ReadPredictionLog
from predictor.api.renderers import FastJSONRenderer
from predictor.api.schema import errors
from predictor.ml.data import load_diabetes_bmi
from predictor.models import PredictionLog

# Open endpoints: a token or session is optional (unless PREDICTOR_PREDICTIONS_REQUIRE_AUTH is set).
OPTIONAL_AUTH = [{"tokenAuth": []}, {"cookieAuth": []}, {}]

# --- Predictions ---------------------------------------------------------------------------------


@extend_schema(tags=["predictions"])
class PredictView(APIView):
    permission_classes = [PredictionAccess]
    throttle_scope = "predict"

    @classmethod
    def as_view(cls, **initkwargs):
        """DRF's view behind the fast path for plain anonymous predictions (see ``fastpath``)."""
        drf_view = super().as_view(**initkwargs)
        allowed_methods = ", ".join(cls().allowed_methods)

        @functools.wraps(drf_view)  # keeps .cls, .initkwargs and csrf_exempt for URLs and the schema
        def view(request, *args, **kwargs):
            return fastpath.predict(request, allowed_methods=allowed_methods) or drf_view(request, *args, **kwargs)

        view.drf_view = drf_view
        return view

    def get_throttles(self):
        # A request the fast path already counted (then handed over on a database error or with no
        # active model) must not be counted twice: that would turn a 503 into a 429.
        if getattr(self.request._request, "throttle_counted", False):
            return []
        return super().get_throttles()

    @extend_schema(
        operation_id="predict",
        auth=OPTIONAL_AUTH,
        summary="Predict disease progression from one BMI",
        request=s.PredictInputSerializer,
        responses={200: s.PredictOutputSerializer, **errors(400, 401, 403, 413, 415, 429, 503)},
        examples=[OpenApiExample("BMI 27.4", value={"bmi": 27.4}, request_only=True)],
    )
    def post(self, request):
        serializer = s.PredictInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            result = serving.predict_one(serializer.validated_data["bmi"], channel=PredictionLog.Channel.API)
        except DBError as exc:
            # Django drops a broken connection itself when the request finishes (close_old_connections).
            raise PredictionLogUnavailable() from exc
        return Response(
            {
                "bmi": result.bmi,
                "prediction": result.prediction,
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
        examples=[OpenApiExample("Three BMIs", value={"bmi": [22.0, 27.4, 31.5]}, request_only=True)],
    )
    def post(self, request):
        serializer = s.BatchInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            result = serving.predict_batch(serializer.validated_data["bmi"])
        except DBError as exc:
            # Django drops a broken connection itself when the request finishes (close_old_connections).
            raise PredictionLogUnavailable() from exc
        output = {
            "model_version": result.model.version,
            "batch_id": result.batch_id,
            "count": len(result.predictions),
            "predictions": result.predictions,
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


class LogPagination(StrictPageSizeMixin, CursorPagination):
    # Cursor pages stay fast on a large log: no COUNT(*), no OFFSET.

    def decode_cursor(self, request):
        # DRF checks a cursor's offset but passes its position straight into the ordering field's
        # filter, where a forged position of the wrong type failed when the page was fetched (a 500).
        cursor = super().decode_cursor(request)
        if cursor is not None and cursor.position is not None and not self.is_valid_position(cursor.position):
            raise NotFound(self.invalid_cursor_message)
        return cursor

    def is_valid_position(self, position: str) -> bool:
        """Whether a cursor's position can be a value of this pagination's ordering field.

        Each subclass answers for its own ordering (an id, a time); an unknown one accepts none.
        """
        return False


class PredictionPagination(LogPagination):
    ordering = "-id"

    def is_valid_position(self, position: str) -> bool:
        return position.isdigit()


class LogListView(generics.ListAPIView):
    # A page of the log: the query string validated by filter_class, the rows from select. (A comment,
    # not a docstring: drf-spectacular would publish a docstring as every subclass's description.)
    permission_classes = [ReadPredictionLog]
    filter_class: type[Serializer]
    select: staticmethod

    def get_queryset(self):
        filters = self.filter_class(data=self.request.query_params)
        filters.is_valid(raise_exception=True)
        return self.select(**filters.validated_data)


@extend_schema_view(
    get=extend_schema(
        tags=["management"],
        operation_id="prediction_list",
        summary="The prediction log of single predictions, newest first (staff); batches are at /api/v1/batches",
        parameters=[s.PredictionFilterSerializer],
        responses={200: s.PredictionLogSerializer(many=True), **errors(400, 401, 403, 404, 429)},
    )
)
class PredictionListView(LogListView):
    serializer_class = s.PredictionLogSerializer
    pagination_class = PredictionPagination
    filter_class = s.PredictionFilterSerializer
    select = staticmethod(selectors.prediction_list)


class BatchPagination(LogPagination):
    # Newest first by time: batch ids are random UUIDs and cannot order the pages. DRF's cursor holds
    # the time of the page's last batch and an offset past others of the same time, and the id
    # makes the order total: following "next" neither skips nor repeats a batch. Going back with
    # "previous" across batches logged in the same microsecond can shift a page by one (a DRF
    # cursor limitation); batches are committed one transaction each, so such ties are rare.
    ordering = ("-created_at", "-id")

    def is_valid_position(self, position: str) -> bool:
        try:
            value = parse_datetime(position)
            if value is None or value.tzinfo is None:
                return False
            value.astimezone(UTC)  # as the database adapter will; a year-1 time with an offset overflows
        except (ValueError, OverflowError):
            return False
        return True


@extend_schema_view(
    get=extend_schema(
        tags=["management"],
        operation_id="batch_list",
        summary="The logged batches, newest first, without their values (staff)",
        parameters=[s.BatchFilterSerializer],
        responses={200: s.BatchSummarySerializer(many=True), **errors(400, 401, 403, 404, 429)},
    )
)
class BatchListView(LogListView):
    serializer_class = s.BatchSummarySerializer
    pagination_class = BatchPagination
    filter_class = s.BatchFilterSerializer
    select = staticmethod(selectors.batch_list)


@extend_schema(tags=["management"])
class BatchDetailView(APIView):
    permission_classes = [ReadPredictionLog]
    # Up to 20,000 floats, as the batch call's answer: the same fast renderer.
    renderer_classes = [FastJSONRenderer]

    @extend_schema(
        operation_id="batch_detail",
        summary="One logged batch: its BMIs and predictions in input order (staff)",
        parameters=[
            OpenApiParameter(
                "batch_id", OpenApiTypes.UUID, OpenApiParameter.PATH, description="As the batch call returned it."
            )
        ],
        responses={200: s.BatchDetailSerializer, **errors(401, 403, 404, 429)},
    )
    def get(self, request, batch_id: uuid.UUID):
        batch = selectors.batch_get(batch_id=batch_id)
        if batch is None:
            raise NotFound(f"Batch {batch_id} does not exist.")
        return Response(s.BatchDetailSerializer(batch).data)


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
        return selectors.version_list().select_related("created_by")


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
        model_version = selectors.version_get(version=version)
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
        model_version = selectors.active_version()
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
        params = serializer.validated_data
        try:
            result = services.model_version_train(
                dataset=load_diabetes_bmi(),
                learning_rate=params["learning_rate"],
                decay=params["decay"],
                max_epochs=params["epochs"],
                tol=params["tol"],
                random_state=params["seed"],
                threshold=params["threshold"],
                promote=params["promote"],
                user=request.user,
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
