"""The pages' forms: a BMI for a prediction, an observed outcome for a reference; validated as the API validates."""

from __future__ import annotations

import re

from django import forms
from django.conf import settings

from predictor.ml.ranges import OutOfRange, check_range
from predictor.predictions.services import InvalidOutcome, observed_validate

# Longer than any number a person types (the API's JSON numbers are not limited by this).
NUMBER_MAX_LENGTH = 20
# What a person types for a number: digits with one optional decimal point (a decimal comma is
# read as a point first). No exponent: "1e1" typed into a BMI field is a typo far more often than 10.
_PLAIN_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)")
_NOT_FINITE_WORDS = {"nan", "inf", "infinity", "+inf", "-inf", "+infinity", "-infinity"}


class NumberField(forms.FloatField):
    """A number as a person types it: "27.5" or "27,5"; no exponent, underscores or endless digits.

    Subclasses give ``validate_number`` (the range) and the messages; ``check_range``'s
    "not finite" message is for NaN and infinity typed as words; an infinite value that reaches
    ``validate_number`` came from too many digits and is out of range.
    """

    default_error_messages = {
        "invalid": "Enter a number, for example 27.5.",
        "exponent": "Enter the number without an exponent (e.g. 10, not 1e1).",
        "too_long": f"Enter at most {NUMBER_MAX_LENGTH} characters.",
        "not_finite": "Enter a finite number; NaN and infinity are not valid here.",
    }

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.widget.attrs.setdefault("maxlength", str(NUMBER_MAX_LENGTH))

    def widget_attrs(self, widget):
        # FloatField would add step="any" and min/max for a NumberInput; the pages use a text input.
        return {}

    def to_python(self, value):
        text = "" if value in self.empty_values else str(value).strip().replace(",", ".")
        if not text:
            return None
        if _PLAIN_NUMBER.fullmatch(text):
            # However many digits: 5,000 of them are a number far out of range (float() gives
            # inf), and the range message says what is wrong.
            return float(text)
        if text.lower() in _NOT_FINITE_WORDS:
            raise forms.ValidationError(self.error_messages["not_finite"], code="not_finite")
        if len(text) > NUMBER_MAX_LENGTH:
            raise forms.ValidationError(self.error_messages["too_long"], code="too_long")
        code = "exponent" if re.fullmatch(r"[+-]?[\d.]+[eE][+-]?\d+", text) else "invalid"
        raise forms.ValidationError(self.error_messages[code], code=code)

    def validate(self, value):
        # Field's own check (required) only; the range rule of the subclass names what is wrong.
        forms.Field.validate(self, value)
        if value not in self.empty_values:
            self.validate_number(value)

    def validate_number(self, value: float) -> None:
        raise NotImplementedError


class BMIField(NumberField):
    """A BMI in kg/m² within ``PREDICTOR_BMI_MIN``..``MAX``."""

    default_error_messages = {
        "invalid": "Enter the BMI as a number in kg/m², for example 27.5.",
        "not_finite": "Enter a finite number; NaN and infinity are not BMI values.",
    }

    def validate_number(self, value: float) -> None:
        # Read at request time, so the range follows settings (and override_settings in tests).
        low, high = float(settings.PREDICTOR_BMI_MIN), float(settings.PREDICTOR_BMI_MAX)
        try:
            check_range(value, low=low, high=high)
        except OutOfRange:
            raise forms.ValidationError(f"Enter a BMI between {low:g} and {high:g} kg/m².", code="range") from None


class ObservedField(NumberField):
    """The progression observed a year later, in the range the API accepts (``observed_validate``)."""

    default_error_messages = {"invalid": "Enter the observed progression as a number, for example 180."}

    def validate_number(self, value: float) -> None:
        try:
            observed_validate(value)
        except InvalidOutcome:
            low, high = settings.PREDICTOR_OUTCOME_MIN, settings.PREDICTOR_OUTCOME_MAX
            raise forms.ValidationError(
                f"Enter the observed progression between {low:g} and {high:g}.", code="range"
            ) from None


def shown(value: float) -> str:
    """A number as the form shows it back: "50", not "50.0"."""
    return f"{value:g}"


class PageForm(forms.Form):
    """A form whose fields point at their hint and error, and whose first invalid field takes focus.

    Each field's hint is ``id_<name>-hint`` and its error ``id_<name>-error`` (see the templates), so a
    screen reader reads them with the field; ``autofocus`` on the first invalid one brings the user
    (and a screen reader's cursor) to it, without JavaScript.
    """

    # Browser-side "required" and number spinners would pre-empt the server's messages (and
    # differ between browsers); the server validates and shows the error beside the field.
    use_required_attribute = False

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name, field in self.fields.items():
            if field.help_text:
                field.widget.attrs["aria-describedby"] = f"id_{name}-hint"

    def full_clean(self):
        super().full_clean()
        self._point_at_errors()

    def add_error(self, field, error):
        # Errors found after cleaning (a service's refusal) are pointed at the same way.
        super().add_error(field, error)
        if self._errors is not None and getattr(self, "cleaned_data", None) is not None:
            self._point_at_errors()

    def _point_at_errors(self) -> None:
        first = True
        for name in self._errors or ():
            if name not in self.fields:
                continue
            attrs = self.fields[name].widget.attrs
            attrs["aria-invalid"] = "true"
            attrs["aria-describedby"] = f"id_{name}-error" + (f" id_{name}-hint" if self.fields[name].help_text else "")
            if first:
                attrs["autofocus"] = True
                first = False


_NUMBER_INPUT = {"inputmode": "decimal", "autocomplete": "off", "spellcheck": "false", "class": "input-number"}


class PredictForm(PageForm):
    bmi = BMIField(
        label="Body-mass index (BMI)",
        error_messages={"required": "Enter the patient's BMI in kg/m²."},
        widget=forms.TextInput(attrs={**_NUMBER_INPUT, "class": "input-bmi"}),
    )

    def __init__(self, *args, **kwargs):
        low, high = float(settings.PREDICTOR_BMI_MIN), float(settings.PREDICTOR_BMI_MAX)
        super().__init__(*args, **kwargs)
        self.fields["bmi"].help_text = f"In kg/m², between {low:g} and {high:g}."
        self.fields["bmi"].widget.attrs["aria-describedby"] = "id_bmi-hint"


class ReferenceForm(PageForm):
    """Find a prediction by the reference its result showed ("#146")."""

    reference = forms.CharField(
        label="Reference",
        help_text="The number after “Reference #” on the prediction's result, for example 146.",
        max_length=NUMBER_MAX_LENGTH,
        error_messages={"required": "Enter the prediction's reference, for example 146."},
        widget=forms.TextInput(attrs={**_NUMBER_INPUT, "inputmode": "numeric"}),
    )

    def clean_reference(self) -> int:
        text = self.cleaned_data["reference"].strip().lstrip("#").strip()
        if not (text.isascii() and text.isdigit()):
            raise forms.ValidationError("Enter the reference as a number, for example 146.", code="invalid")
        return int(text)


class OutcomeForm(PageForm):
    """The progression observed a year later, for one prediction (``position`` for a batch's)."""

    observed = ObservedField(
        label="Observed progression after one year",
        error_messages={"required": "Enter the progression observed a year after the prediction."},
        widget=forms.TextInput(attrs=_NUMBER_INPUT),
    )
    position = forms.IntegerField(
        label="Position in the batch",
        required=False,
        min_value=0,
        help_text="Which prediction of the batch was observed, counting from 0.",
        widget=forms.TextInput(attrs={**_NUMBER_INPUT, "inputmode": "numeric"}),
    )

    def __init__(self, *args, size: int = 1, **kwargs):
        super().__init__(*args, **kwargs)
        low, high = settings.PREDICTOR_OUTCOME_MIN, settings.PREDICTOR_OUTCOME_MAX
        self.fields["observed"].help_text = f"The same measure as the prediction, between {low:g} and {high:g}."
        self.fields["observed"].widget.attrs["aria-describedby"] = "id_observed-hint"
        if size == 1:
            del self.fields["position"]  # a single prediction has one position
        else:
            # Its range is checked by outcome_record, the API's rule, and reported on this field.
            self.fields["position"].required = True
            self.fields["position"].help_text = f"Which of the {size} predictions was observed: 0 to {size - 1}."
            self.fields["position"].error_messages["required"] = f"Enter the position, 0 to {size - 1}."
