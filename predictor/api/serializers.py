"""Input validation and output shapes for the REST API.

Inputs are strict JSON: a number must be a JSON number (``"27.4"``, ``true`` and ``null`` are
refused, as are NaN and Infinity), so a caller's type bug surfaces as a 400 instead of a guess.
"""

from __future__ import annotations

import math

import numpy as np
from django.conf import settings
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from predictor.ml.cautions import Explained
from predictor.ml.data import PROGRESSION_UNIT
from predictor.ml.ranges import NOT_FINITE, TOO_LOW, OutOfRange, check_range, out_of_range
from predictor.predictions.models import PredictionLog
from predictor.registry import services
from predictor.registry.models import ModelVersion

PREDICTION_UNIT = PROGRESSION_UNIT
BMI_UNIT = "kg/m²"
# A validation error lists at most this many bad batch items; one is enough to fix the input.
MAX_ITEM_ERRORS = 10


def _json_type(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a decimal number"
    return type(value).__name__


# Exact types: bool is a subclass of int, and JSON true is not a number.
_NUMBER_TYPES = frozenset({int, float})


def _is_number(value) -> bool:
    return type(value) in _NUMBER_TYPES


@extend_schema_field(OpenApiTypes.DOUBLE)
class StrictFloatField(serializers.Field):
    """A JSON number (integer or decimal), finite, optionally bounded."""

    default_error_messages = {
        "invalid": "Must be a JSON number, not {type}.",
        "not_finite": "Must be a finite number.",
        "min_value": "Must be at least {min_value:g}.",
        "max_value": "Must be at most {max_value:g}.",
        "exclusive_min": "Must be greater than {min_value:g}.",
    }

    def __init__(self, *, min_value=None, max_value=None, exclusive_min=False, **kwargs):
        self.min_value = min_value
        self.max_value = max_value
        self.exclusive_min = exclusive_min
        super().__init__(**kwargs)

    def bounds(self) -> tuple[float | None, float | None]:
        return self.min_value, self.max_value

    def to_internal_value(self, data) -> float:
        if not _is_number(data):
            self.fail("invalid", type=_json_type(data))
        low, high = self.bounds()
        try:
            return check_range(data, low=low, high=high, exclusive_low=self.exclusive_min)
        except OutOfRange as exc:
            if exc.code == NOT_FINITE:
                self.fail("not_finite")
            if exc.code == TOO_LOW:
                self.fail("exclusive_min" if self.exclusive_min else "min_value", min_value=low)
            self.fail("max_value", max_value=high)

    def to_representation(self, value):
        # Stored metrics can be NaN (e.g. a diverged fit); JSON has no NaN, so they read as null.
        if value is None or not math.isfinite(value):
            return None
        return float(value)


class SettingsRangeFloatField(StrictFloatField):
    """A finite JSON number between two settings, read at request time so an override takes effect.

    Subclasses name the settings; both range messages get both bounds, so an error reads
    "between 10 and 80" whichever side was crossed.
    """

    min_setting: str
    max_setting: str

    def bounds(self):
        return getattr(settings, self.min_setting), getattr(settings, self.max_setting)

    def fail(self, key, **kwargs):
        low, high = self.bounds()
        kwargs.setdefault("min_value", low)
        kwargs.setdefault("max_value", high)
        super().fail(key, **kwargs)


@extend_schema_field(
    {"type": "number", "format": "double", "minimum": settings.PREDICTOR_BMI_MIN, "maximum": settings.PREDICTOR_BMI_MAX}
)
class BMIField(SettingsRangeFloatField):
    """BMI in kg/m², within ``PREDICTOR_BMI_MIN``..``PREDICTOR_BMI_MAX``."""

    min_setting, max_setting = "PREDICTOR_BMI_MIN", "PREDICTOR_BMI_MAX"
    default_error_messages = {
        "invalid": "Must be a JSON number (kg/m²), not {type}.",
        "min_value": "Must be between {min_value:g} and {max_value:g} kg/m².",
        "max_value": "Must be between {min_value:g} and {max_value:g} kg/m².",
    }


class StrictIntegerField(serializers.IntegerField):
    """A JSON integer: ``"5"``, ``5.5`` and ``true`` are refused."""

    default_error_messages = {"invalid": "Must be a JSON integer, not {type}."}

    def to_internal_value(self, data):
        if type(data) is not int:
            if type(data) is float and data.is_integer():
                data = int(data)  # 100.0 is an integer in JSON's number model
            else:
                self.fail("invalid", type="a decimal number" if type(data) is float else _json_type(data))
        return super().to_internal_value(data)


class StrictBooleanField(serializers.BooleanField):
    """JSON ``true`` or ``false`` only (DRF's BooleanField also takes "yes", 1, "on"...)."""

    default_error_messages = {"invalid": "Must be true or false, not {type}."}

    def to_internal_value(self, data):
        if type(data) is not bool:
            self.fail("invalid", type=_json_type(data))
        return data


@extend_schema_field(
    {
        "type": "array",
        "minItems": 1,
        "maxItems": settings.PREDICTOR_BATCH_MAX,
        "items": {
            "type": "number",
            "format": "double",
            "minimum": settings.PREDICTOR_BMI_MIN,
            "maximum": settings.PREDICTOR_BMI_MAX,
        },
    }
)
class BMIListField(serializers.Field):
    """A non-empty JSON array of BMIs (kg/m²), at most ``PREDICTOR_BATCH_MAX`` long.

    Validated in bulk with NumPy: a 10,000-value batch costs one pass, not 10,000 field objects.
    Errors name the index of each bad value (the first ten of them).
    """

    default_error_messages = {
        "not_a_list": "Must be a JSON array of numbers, not {type}.",
        "empty": "Must contain at least one value.",
        "too_long": "Must contain at most {limit} values; got {count}. Split the batch.",
        "item_type": "Must be a JSON number (kg/m²), not {type}.",
        "item_not_finite": "Must be a finite number.",
        "item_range": "Must be between {low:g} and {high:g} kg/m².",
    }

    def to_internal_value(self, data) -> np.ndarray:
        if not isinstance(data, list):
            self.fail("not_a_list", type=_json_type(data))
        if not data:
            self.fail("empty")
        limit = settings.PREDICTOR_BATCH_MAX
        if len(data) > limit:
            self.fail("too_long", limit=limit, count=len(data))
        errors: dict[int, list[str]] = {}
        # The common case in one C-level pass (a third of the time of a Python loop); only a batch
        # holding a non-number is walked item by item, to name the bad indices.
        if not set(map(type, data)) <= _NUMBER_TYPES:
            for index, item in enumerate(data):
                if not _is_number(item):
                    errors[index] = [self.error_messages["item_type"].format(type=_json_type(item))]
                    if len(errors) >= MAX_ITEM_ERRORS:
                        break
            raise serializers.ValidationError(errors)
        try:
            values = np.asarray(data, dtype=np.float64)
        except OverflowError:  # integers too large for a float
            values = np.array([float(v) if abs(v) < 1e308 else np.inf for v in data], dtype=np.float64)
        low, high = settings.PREDICTOR_BMI_MIN, settings.PREDICTOR_BMI_MAX
        bad = out_of_range(values, low=low, high=high)
        if bad.size:
            for index in bad[:MAX_ITEM_ERRORS].tolist():
                if math.isfinite(values[index]):
                    errors[index] = [self.error_messages["item_range"].format(low=low, high=high)]
                else:
                    errors[index] = [self.error_messages["item_not_finite"]]
            raise serializers.ValidationError(errors)
        return values


class FloatListField(serializers.ListField):
    child = serializers.FloatField()

    def to_representation(self, data):
        return data  # already a list of floats; skip 10,000 per-item calls


# --- Predictions ---------------------------------------------------------------------------------


class PredictInputSerializer(serializers.Serializer):
    bmi = BMIField(help_text="Body mass index in kg/m² (a JSON number; strings are refused).")


_LEVEL_HELP = "Nominal coverage: the share of patients with this BMI expected inside the interval, e.g. 0.95."
_CLIPPED_HELP = "clipped to the scale of the training data (what to show)"
_RAW_HELP = "as the formula gives it, unclipped: what coverage is measured on"


class IntervalSerializer(serializers.Serializer):
    """The prediction interval ŷ ± t · s · √(1 + 1/n + (x − x̄)² / Sxx) of one prediction."""

    level = serializers.FloatField(help_text=_LEVEL_HELP)
    low = serializers.FloatField(help_text=f"Lower end, {_CLIPPED_HELP}.")
    high = serializers.FloatField(help_text=f"Upper end, {_CLIPPED_HELP}.")
    low_raw = serializers.FloatField(help_text=f"Lower end {_RAW_HELP}.")
    high_raw = serializers.FloatField(help_text=f"Upper end {_RAW_HELP}.")


class IntervalsSerializer(serializers.Serializer):
    """The prediction intervals of a batch: arrays in the order of the predictions."""

    level = serializers.FloatField(help_text=_LEVEL_HELP)
    low = FloatListField(help_text=f"Lower ends, {_CLIPPED_HELP}.")
    high = FloatListField(help_text=f"Upper ends, {_CLIPPED_HELP}.")
    low_raw = FloatListField(help_text=f"Lower ends {_RAW_HELP}.")
    high_raw = FloatListField(help_text=f"Upper ends {_RAW_HELP}.")


class ScaleSerializer(serializers.Serializer):
    low = serializers.FloatField(help_text="Lowest progression score in the version's training data.")
    high = serializers.FloatField(help_text="Highest progression score in the version's training data.")


_WARNING_CODES = (
    "bmi_outside_training_range (the BMI lies outside the training BMIs), prediction_outside_scale (the "
    "estimate lies outside the training scores: do not rely on it), interval_clipped (an interval end was "
    "clipped to the scale)"
)


class WarningSerializer(serializers.Serializer):
    code = serializers.CharField(help_text=f"Stable machine-readable code: {_WARNING_CODES}.")
    message = serializers.CharField(help_text="The same, in words for a clinician, with this prediction's figures.")


class BatchWarningSerializer(WarningSerializer):
    indices = serializers.ListField(
        child=serializers.IntegerField(), help_text="The items (from 0) the warning applies to."
    )


def interval_body(explained: Explained, item: int = 0) -> dict:
    """The ``interval`` of one answer (IntervalSerializer's shape)."""
    return {
        "level": explained.level,
        "low": float(explained.low[item]),
        "high": float(explained.high[item]),
        "low_raw": float(explained.low_raw[item]),
        "high_raw": float(explained.high_raw[item]),
    }


def intervals_body(explained: Explained) -> dict:
    """The ``intervals`` of a batch or a log entry (IntervalsSerializer's shape)."""
    return {
        "level": explained.level,
        "low": explained.low.tolist(),
        "high": explained.high.tolist(),
        "low_raw": explained.low_raw.tolist(),
        "high_raw": explained.high_raw.tolist(),
    }


def scale_body(explained: Explained) -> dict | None:
    scale = explained.limits.scale
    return None if scale is None else {"low": scale[0], "high": scale[1]}


class PredictOutputSerializer(serializers.Serializer):
    bmi = serializers.FloatField(help_text="The BMI predicted for, kg/m².")
    prediction = serializers.FloatField(
        help_text=f"Predicted {PREDICTION_UNIT}: the fitted line's value, never clipped (see warnings)."
    )
    interval = IntervalSerializer(help_text="Where the progression of patients with this BMI is expected.")
    scale = ScaleSerializer(allow_null=True, help_text="The progression scores the training data cover.")
    warnings = WarningSerializer(
        many=True, help_text="Why this prediction deserves less trust than usual; empty when none applies."
    )
    model_version = serializers.IntegerField(help_text="The model version that made the prediction.")
    prediction_id = serializers.IntegerField(
        help_text="The prediction's row in the log: record the observed outcome against it later."
    )
    unit = serializers.CharField(help_text="Unit of the prediction.")
    bmi_unit = serializers.CharField(help_text="Unit of the BMI: kg/m².")


class BatchInputSerializer(serializers.Serializer):
    bmi = BMIListField(help_text="BMIs in kg/m²: a JSON array of 1 to PREDICTOR_BATCH_MAX (10,000) numbers.")


class BatchOutputSerializer(serializers.Serializer):
    model_version = serializers.IntegerField(help_text="The model version that made every prediction.")
    batch_id = serializers.IntegerField(
        help_text=(
            "The batch's entry in the prediction log: staff read it back at /api/v1/predictions/{batch_id}; "
            "record the outcome of item i with position i."
        )
    )
    count = serializers.IntegerField()
    predictions = FloatListField(help_text="Predictions in the order of the input BMIs.")
    intervals = IntervalsSerializer(help_text="Each prediction's interval: item i belongs to predictions[i].")
    scale = ScaleSerializer(allow_null=True, help_text="The progression scores the training data cover.")
    warnings = BatchWarningSerializer(
        many=True, help_text="One entry per rule that applies to some items, naming them; empty when none."
    )
    unit = serializers.CharField(help_text="Unit of the predictions.")
    bmi_unit = serializers.CharField()


# --- The model registry --------------------------------------------------------------------------


class MetricsSerializer(serializers.Serializer):
    r2_test = StrictFloatField(help_text="Held-out R².", allow_null=True)
    mse_test = StrictFloatField(help_text="Held-out mean squared error (units²).", allow_null=True)
    mae_test = StrictFloatField(help_text="Held-out mean absolute error (units).", allow_null=True)
    r2_train = StrictFloatField(help_text="Training R².", allow_null=True)
    mse_train = StrictFloatField(help_text="Training mean squared error (units²).", allow_null=True)


class StaffOnlyUsernameField(serializers.CharField):
    """A username for staff callers only; anyone else gets no such key (optional in the schema).

    Who trained a version is internal. The view must pass ``context={"request": request}``; without
    a request the field is left out, the safe default. Output only (the serializer takes no input).
    """

    def get_attribute(self, instance):
        request = self.context.get("request")
        if request is None or not request.user.is_staff:
            raise serializers.SkipField()
        return super().get_attribute(instance)


class IntervalFiguresSerializer(serializers.Serializer):
    """What the version's prediction intervals are computed from, and how well they were calibrated."""

    level = StrictFloatField(source="interval_level", help_text=_LEVEL_HELP)
    t = StrictFloatField(source="interval_t", help_text="Student's t quantile at (1 + level) / 2, n_train − 2 df.")
    residual_std = StrictFloatField(help_text="Residual standard error s on the training rows.")
    bmi_mean = StrictFloatField(help_text="Mean training BMI x̄, kg/m².")
    bmi_sxx = StrictFloatField(help_text="Σ (x − x̄)² over the training BMIs, (kg/m²)².")
    coverage_test = StrictFloatField(help_text="Share of the held-out rows inside their interval.")
    coverage_cv = StrictFloatField(
        help_text="Share of the training rows inside their interval in 10-fold cross-validation (seeded)."
    )
    bmi_range = serializers.ListField(
        source="training_bmi_range",
        child=serializers.FloatField(),
        allow_null=True,
        help_text="Lowest and highest training BMI, kg/m²: outside, answers warn bmi_outside_training_range.",
    )
    scale = serializers.SerializerMethodField(help_text="Lowest and highest training progression score.")

    def get_scale(self, version) -> list[float]:
        return [version.progression_min, version.progression_max]


class ModelVersionSerializer(serializers.ModelSerializer):
    slope = StrictFloatField(help_text="Progression units per kg/m² of BMI.", allow_null=True)
    intercept = StrictFloatField(help_text="Progression units at BMI 0 kg/m² (extrapolated).", allow_null=True)
    threshold = StrictFloatField(help_text="The R² gate this version was judged against.", allow_null=True)
    metrics = MetricsSerializer(source="*", read_only=True)
    interval = IntervalFiguresSerializer(
        source="*", read_only=True, help_text="ŷ ± t · s · √(1 + 1/n_train + (bmi − bmi_mean)² / bmi_sxx)."
    )
    passed_gate = serializers.BooleanField(read_only=True)
    created_by = StaffOnlyUsernameField(
        source="created_by.username", allow_null=True, required=False, help_text="Staff callers only."
    )

    class Meta:
        model = ModelVersion
        fields = [
            "version",
            "status",
            "passed_gate",
            "slope",
            "intercept",
            "metrics",
            "threshold",
            "interval",
            "n_train",
            "n_test",
            "n_outcome_rows",
            "hyperparameters",
            "random_state",
            "n_epochs",
            "converged",
            "training_seconds",
            "dataset_name",
            "data_fingerprint",
            "code_version",
            "created_by",
            "created_at",
            "promoted_at",
            "retired_at",
            "previous_active",
        ]
        read_only_fields = fields


class ModelVersionDetailSerializer(ModelVersionSerializer):
    class Meta(ModelVersionSerializer.Meta):
        fields = [*ModelVersionSerializer.Meta.fields, "loss_curve", "training_bmi_histogram"]
        read_only_fields = fields


# The estimator's defaults, so an empty training request trains exactly what `manage.py train` does.
DEFAULTS = services.DEFAULT_HYPERPARAMETERS


class RejectUnknownFieldsMixin:
    """Refuses a body with a field the endpoint does not take, naming it.

    For the endpoints that change the registry or the records: DRF ignores unknown fields, so a
    misspelt or wrongly named ``max_epochs`` used to train (and promote) with the default instead.
    """

    def to_internal_value(self, data):
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                accepted = ", ".join(sorted(self.fields))
                raise serializers.ValidationError(
                    {name: [f"Unknown field; this endpoint takes: {accepted}."] for name in unknown}
                )
        return super().to_internal_value(data)


class TrainInputSerializer(RejectUnknownFieldsMixin, serializers.Serializer):
    """Hyperparameters for a new version; every one is optional. Trains on the diabetes data."""

    learning_rate = StrictFloatField(
        required=False,
        default=DEFAULTS["learning_rate"],
        min_value=0.0,
        exclusive_min=True,
        max_value=1.0,
        help_text="SGD step size.",
    )
    decay = StrictFloatField(
        required=False, default=DEFAULTS["decay"], min_value=0.0, max_value=100.0, help_text="Step decay."
    )
    # The public names (as the train command's options): the estimator's are max_epochs and random_state.
    epochs = StrictIntegerField(
        source="max_epochs",
        required=False,
        default=DEFAULTS["max_epochs"],
        min_value=1,
        max_value=10_000,
        help_text="Max epochs.",
    )
    tol = StrictFloatField(
        required=False, default=DEFAULTS["tol"], min_value=0.0, max_value=1.0, help_text="Stop tolerance."
    )
    seed = StrictIntegerField(
        source="random_state",
        required=False,
        default=0,
        min_value=0,
        max_value=services.RANDOM_STATE_MAX,
        help_text="Random seed.",
    )
    threshold = StrictFloatField(
        required=False,
        allow_null=True,
        default=None,
        min_value=-1.0,
        max_value=1.0,
        help_text="Held-out R² to exceed; default PREDICTOR_PROMOTION_THRESHOLD, which the API may raise, not lower.",
    )
    promote = StrictBooleanField(required=False, default=True, help_text="Promote when it passes the gate.")

    def validate_threshold(self, value):
        if value is not None and value >= 1.0:
            # R² is at most 1: a gate of 1 lets nothing serve (the service refuses it too).
            raise serializers.ValidationError("Must be below 1; no version can exceed an R² gate of 1.")
        # Over HTTP the gate can only be tightened: lowering it would let any staff account put a
        # weak model into service. An operator with a shell can still use `train --threshold`.
        if value is not None and value < settings.PREDICTOR_PROMOTION_THRESHOLD:
            raise serializers.ValidationError(
                f"Must be at least the configured gate {settings.PREDICTOR_PROMOTION_THRESHOLD:g}; "
                "the API can raise the threshold, not lower it."
            )
        return value


class TrainOutputSerializer(ModelVersionDetailSerializer):
    promoted = serializers.SerializerMethodField()
    decision = serializers.SerializerMethodField()
    warnings = serializers.SerializerMethodField()

    class Meta(ModelVersionDetailSerializer.Meta):
        fields = [*ModelVersionDetailSerializer.Meta.fields, "promoted", "decision", "warnings"]
        read_only_fields = fields

    def get_promoted(self, obj) -> bool:
        return self.context["result"].promoted

    def get_decision(self, obj) -> str:
        return self.context["result"].decision

    def get_warnings(self, obj) -> list[str]:
        return self.context["result"].warnings


class ReasonInputSerializer(RejectUnknownFieldsMixin, serializers.Serializer):
    reason = serializers.CharField(
        required=False, default="", allow_blank=True, max_length=2000, help_text="Recorded in the audit trail."
    )

    def to_internal_value(self, data):
        # CharField would turn a number into a string; a reason must be a JSON string.
        if isinstance(data, dict) and "reason" in data and not isinstance(data["reason"], str):
            raise serializers.ValidationError({"reason": [f"Must be a JSON string, not {_json_type(data['reason'])}."]})
        return super().to_internal_value(data)


# --- The prediction log --------------------------------------------------------------------------


class PredictionFilterSerializer(serializers.Serializer):
    """Query parameters of the prediction log (all optional).

    Parameters it does not name are ignored, as DRF does: ``cursor`` and ``page_size`` belong to the
    pagination.
    """

    version = serializers.IntegerField(
        required=False, min_value=1, max_value=ModelVersion.VERSION_MAX, help_text="Only this model version."
    )
    channel = serializers.ChoiceField(
        required=False, choices=PredictionLog.Channel.choices, help_text="api, web (single predictions) or batch."
    )
    since = serializers.DateTimeField(required=False, help_text="ISO 8601; from this time on (inclusive).")
    until = serializers.DateTimeField(required=False, help_text="ISO 8601; before this time (exclusive).")

    def validate(self, attrs):
        if "since" in attrs and "until" in attrs and attrs["until"] <= attrs["since"]:
            raise serializers.ValidationError({"until": ["Must be later than since."]})
        return attrs


class PredictionLogSerializer(serializers.ModelSerializer):
    model_version = serializers.IntegerField(
        source="model_version_id", read_only=True, help_text="The model version that made every prediction."
    )
    count = serializers.IntegerField(
        source="size", read_only=True, help_text="How many predictions (1 unless a batch)."
    )
    bmi = FloatListField(read_only=True, help_text="The BMIs sent, kg/m², in the order they were sent.")
    predictions = FloatListField(read_only=True, help_text="Predictions in the order of the BMIs: item i is bmi[i]'s.")
    intervals = serializers.SerializerMethodField(
        help_text="The intervals the answer carried, recomputed from the version's stored figures."
    )

    class Meta:
        model = PredictionLog
        fields = ["id", "created_at", "model_version", "channel", "count", "bmi", "predictions", "intervals"]
        read_only_fields = fields

    @extend_schema_field(IntervalsSerializer)
    def get_intervals(self, log) -> dict:
        return intervals_body(log.model_version.explain(log.bmi, log.predictions))


# --- Outcomes and monitoring ---------------------------------------------------------------------


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
    position = StrictIntegerField(
        required=False,
        min_value=0,
        max_value=2**31 - 1,
        help_text="For a batch: the prediction's index in it, from 0. A single prediction needs none (or 0).",
    )


class OutcomeOutputSerializer(serializers.Serializer):
    prediction_id = serializers.IntegerField(source="log_id", help_text="The log entry: prediction_id or batch_id.")
    position = serializers.IntegerField(help_text="The prediction's index in its entry, from 0.")
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
    live_coverage = serializers.FloatField(
        allow_null=True,
        help_text="Share of outcomes inside the prediction interval their answer carried; null without outcomes.",
    )
    interval_level = serializers.FloatField(help_text="The interval's nominal coverage, to compare live_coverage with.")
    drift_psi = serializers.FloatField(
        allow_null=True,
        help_text="PSI of served vs training BMI; null below PREDICTOR_MONITOR_MIN_PREDICTIONS predictions.",
    )
    drift_reading = serializers.CharField(
        help_text="stable (< 0.1), watch (0.1-0.25), drift (> 0.25), no data, not enough data."
    )
    bmi_histogram = HistogramSerializer()
    daily = DaySerializer(
        many=True, help_text="Every day the version served, oldest first, by the day of the prediction (UTC)."
    )


class ErrorDetailSerializer(serializers.Serializer):
    status = serializers.IntegerField(help_text="The HTTP status code, repeated.")
    code = serializers.CharField(help_text="Stable machine-readable code, e.g. invalid, not_found, throttled.")
    message = serializers.CharField(help_text="What went wrong, for a person; names the field for input errors.")
    fields = serializers.DictField(
        required=False,
        child=serializers.JSONField(),
        help_text="Validation errors only: field name -> list of messages (for arrays: index -> messages).",
    )


class ErrorSerializer(serializers.Serializer):
    """The body of every error response."""

    error = ErrorDetailSerializer()
