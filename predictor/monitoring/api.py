"""REST endpoints of the feedback loop: record an observed outcome, read a version's monitoring.

Thin: input serializer, service, output. Errors are DRF exceptions; the project's exception
handler (predictor/api) gives them the common error shape.
"""

from __future__ import annotations

from rest_framework import serializers, status
from rest_framework.exceptions import APIException, NotFound, ValidationError
from rest_framework.permissions import IsAdminUser, IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from predictor import selectors
from predictor.monitoring import services, stats


class Conflict(APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "The request conflicts with the current state."
    default_code = "conflict"


class StrictFloatField(serializers.Field):
    """A JSON number and nothing else: no strings ("12"), no booleans (true is not 1)."""

    def to_internal_value(self, data):
        try:
            return services.observed_validate(data)
        except services.InvalidObserved as exc:
            raise serializers.ValidationError(str(exc)) from None

    def to_representation(self, value):
        return value


class OutcomeInputSerializer(serializers.Serializer):
    observed = StrictFloatField(help_text="Observed progression one year after baseline (a finite number).")


class OutcomeOutputSerializer(serializers.Serializer):
    prediction_id = serializers.IntegerField()
    observed = serializers.FloatField()
    recorded_at = serializers.DateTimeField()
    recorded_by = serializers.CharField(source="recorded_by.get_username", default=None)
    source = serializers.CharField()


class OutcomeCreateApi(APIView):
    """Record the progression observed a year later for a logged prediction (once)."""

    permission_classes = [IsAuthenticated]

    def post(self, request, prediction_id: int):
        serializer = OutcomeInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            outcome = services.outcome_record(
                prediction_id=prediction_id, observed=serializer.validated_data["observed"], user=request.user
            )
        except services.PredictionNotFound as exc:
            raise NotFound(str(exc)) from None
        except services.OutcomeExists as exc:
            raise Conflict(str(exc)) from None
        except services.InvalidObserved as exc:
            raise ValidationError({"observed": [str(exc)]}) from None
        return Response(OutcomeOutputSerializer(outcome).data, status=status.HTTP_201_CREATED)


class ModelMonitoringApi(APIView):
    """Live quality and drift of one version, with the per-day series the page charts."""

    permission_classes = [IsAdminUser]

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
                    "day": point.day.isoformat(),
                    "predictions": point.predictions,
                    "outcomes": point.outcomes,
                    "r2": point.r2,
                    "r2_cumulative": point.r2_cumulative,
                }
                for point in stats.daily_series(model_version)
            ],
        }
        return Response(body)
