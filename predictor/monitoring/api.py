"""REST endpoints of the feedback loop: record an observed outcome (of a single prediction or of
one prediction of a batch), read a version's monitoring.

Thin: input serializer, service, output. Errors are DRF exceptions; the project's exception
handler (predictor/api) gives them the common error shape.
"""

from __future__ import annotations

import uuid
from functools import partial

from django.conf import settings
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from predictor import selectors
from predictor.api.exceptions import Conflict
from predictor.api.permissions import ReadPredictionLog, RecordOutcomes
from predictor.api.schema import errors
from predictor.api.serializers import RejectUnknownFieldsMixin, SettingsRangeFloatField
from predictor.monitoring import services, stats


@extend_schema_field(
    {
        "type": "number",
        "format": "double",
        "minimum": settings.PREDICTOR_OUTCOME_MIN,
        "maximum": settings.PREDICTOR_OUTCOME_MAX,
    }
)
class ObservedField(SettingsRangeFloatField):
    """Observed progression: a finite JSON number within ``PREDICTOR_OUTCOME_MIN``..``MAX``."""

    min_setting, max_setting = "PREDICTOR_OUTCOME_MIN", "PREDICTOR_OUTCOME_MAX"
    default_error_messages = {
        "invalid": "Must be a JSON number (the observed progression), not {type}.",
        "min_value": "Must be between {min_value:g} and {max_value:g} (plausible progression).",
        "max_value": "Must be between {min_value:g} and {max_value:g} (plausible progression).",
    }


class OutcomeInputSerializer(RejectUnknownFieldsMixin, serializers.Serializer):
    observed = ObservedField(help_text="Observed progression one year after baseline (a finite number).")


class OutcomeOutputSerializer(serializers.Serializer):
    prediction_id = serializers.IntegerField()
    observed = serializers.FloatField()
    recorded_at = serializers.DateTimeField()
    recorded_by = serializers.CharField(source="recorded_by.get_username", default=None)
    source = serializers.CharField()


class BatchOutcomeOutputSerializer(serializers.Serializer):
    batch_id = serializers.UUIDField()
    position = serializers.IntegerField(help_text="The prediction's index in its batch, from 0.")
    observed = serializers.FloatField()
    recorded_at = serializers.DateTimeField()
    recorded_by = serializers.CharField(source="recorded_by.get_username", default=None)
    source = serializers.CharField()


class HistogramSerializer(serializers.Serializer):
    edges = serializers.ListField(child=serializers.FloatField(), help_text="Training BMI deciles (kg/m²).")
    training_fractions = serializers.ListField(child=serializers.FloatField())
    served_counts = serializers.ListField(child=serializers.IntegerField())
    served_fractions = serializers.ListField(child=serializers.FloatField())


class DaySerializer(serializers.Serializer):
    day = serializers.DateField()
    predictions = serializers.IntegerField()
    outcomes = serializers.IntegerField()
    r2 = serializers.FloatField(allow_null=True)
    r2_cumulative = serializers.FloatField(allow_null=True)


class MonitoringOutputSerializer(serializers.Serializer):
    version = serializers.IntegerField()
    status = serializers.CharField()
    held_out_r2 = serializers.FloatField()
    threshold = serializers.FloatField()
    predictions = serializers.IntegerField(help_text="Predictions served and logged.")
    outcomes = serializers.IntegerField(help_text="Observed outcomes recorded.")
    live_r2 = serializers.FloatField(allow_null=True, help_text="R² on observed outcomes; null below two.")
    live_mae = serializers.FloatField(allow_null=True)
    drift_psi = serializers.FloatField(allow_null=True, help_text="PSI of served vs training BMI.")
    drift_reading = serializers.CharField(help_text="stable (< 0.1), watch (0.1-0.25), drift (> 0.25), no data.")
    bmi_histogram = HistogramSerializer()
    daily = DaySerializer(many=True, help_text="Last 90 days, by the day of the prediction (UTC).")


def _outcome_created(request, record, output_serializer) -> Response:
    """Validate the body, call ``record(observed=..., user=...)`` and map its refusals to 400/404/409."""
    serializer = OutcomeInputSerializer(data=request.data)
    serializer.is_valid(raise_exception=True)
    try:
        outcome = record(observed=serializer.validated_data["observed"], user=request.user)
    except services.PredictionNotFound as exc:
        raise NotFound(str(exc)) from None
    except services.OutcomeExists as exc:
        raise Conflict(str(exc)) from None
    except services.InvalidObserved as exc:
        raise ValidationError({"observed": [str(exc)]}) from None
    return Response(output_serializer(outcome).data, status=status.HTTP_201_CREATED)


_OBSERVED_EXAMPLE = OpenApiExample("Observed 151", value={"observed": 151}, request_only=True)


@extend_schema(tags=["monitoring"])
class OutcomeCreateApi(APIView):
    """Record the progression observed a year later for a logged prediction (once)."""

    permission_classes = [RecordOutcomes]

    @extend_schema(
        operation_id="outcome_create",
        summary="Record the observed progression for a logged prediction",
        request=OutcomeInputSerializer,
        responses={201: OutcomeOutputSerializer, **errors(400, 401, 403, 404, 409, 413, 415, 429, 503)},
        examples=[_OBSERVED_EXAMPLE],
    )
    def post(self, request, prediction_id: int):
        record = partial(services.outcome_record, prediction_id=prediction_id)
        return _outcome_created(request, record, OutcomeOutputSerializer)


@extend_schema(tags=["monitoring"])
class BatchOutcomeCreateApi(APIView):
    """Record the progression observed a year later for one prediction of a logged batch (once)."""

    permission_classes = [RecordOutcomes]

    @extend_schema(
        operation_id="batch_outcome_create",
        summary="Record the observed progression for one prediction of a logged batch",
        parameters=[
            OpenApiParameter("batch_id", uuid.UUID, OpenApiParameter.PATH, description="The batch_id it returned."),
            OpenApiParameter(
                "position", int, OpenApiParameter.PATH, description="The prediction's index in the batch, from 0."
            ),
        ],
        request=OutcomeInputSerializer,
        responses={201: BatchOutcomeOutputSerializer, **errors(400, 401, 403, 404, 409, 413, 415, 429, 503)},
        examples=[_OBSERVED_EXAMPLE],
    )
    def post(self, request, batch_id: uuid.UUID, position: int):
        record = partial(services.batch_outcome_record, batch_id=batch_id, position=position)
        return _outcome_created(request, record, BatchOutcomeOutputSerializer)


@extend_schema(tags=["monitoring"])
class ModelMonitoringApi(APIView):
    """Live quality and drift of one version, with the per-day series the page charts."""

    permission_classes = [ReadPredictionLog]

    @extend_schema(
        operation_id="model_monitoring",
        summary="Live quality and input drift of one model version",
        responses={200: MonitoringOutputSerializer, **errors(401, 403, 404, 429, 503)},
    )
    def get(self, request, version: int):
        model_version = selectors.version_get(version=version)
        if model_version is None:
            raise NotFound(f"Version {version} does not exist.")
        quality = stats.version_quality(model_version)
        body = {
            **quality.as_dict(),
            "status": model_version.status,
            "held_out_r2": model_version.r2_test,
            "threshold": model_version.threshold,
            "daily": [
                {
                    "day": point.day,
                    "predictions": point.predictions,
                    "outcomes": point.outcomes,
                    "r2": point.r2,
                    "r2_cumulative": point.r2_cumulative,
                }
                for point in stats.daily_series(model_version)
            ],
        }
        return Response(MonitoringOutputSerializer(body).data)
