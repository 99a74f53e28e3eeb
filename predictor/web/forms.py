"""The prediction form: one BMI, validated exactly as the API validates it."""

from __future__ import annotations

from django import forms
from django.conf import settings

from predictor.ml.ranges import NOT_FINITE, OutOfRange, check_range


class BMIField(forms.FloatField):
    """A BMI in kg/m² within ``PREDICTOR_BMI_MIN``..``MAX``; NaN and infinity are refused by name."""

    default_error_messages = {
        "invalid": "Enter the BMI as a number in kg/m², for example 27.5.",
        "not_finite": "Enter a finite number; NaN and infinity are not BMI values.",
    }

    def to_python(self, value):
        if isinstance(value, str):
            # Accept a decimal comma ("27,5"): it is how many clinicians type numbers.
            value = value.strip().replace(",", ".")
        if value not in self.empty_values and isinstance(value, str) and "_" in value:
            # Python's float() reads "1_0.5" as 10.5; typed into a form it is a typo.
            raise forms.ValidationError(self.error_messages["invalid"], code="invalid")
        return super().to_python(value)

    def validate(self, value):
        # Field's own check (required) only: FloatField's would call NaN "not a number"; the range
        # rule below covers finiteness and names it.
        forms.Field.validate(self, value)
        if value in self.empty_values:
            return
        # Read at request time, so the range follows settings (and override_settings in tests).
        low, high = float(settings.PREDICTOR_BMI_MIN), float(settings.PREDICTOR_BMI_MAX)
        try:
            check_range(value, low=low, high=high)
        except OutOfRange as exc:
            if exc.code == NOT_FINITE:
                raise forms.ValidationError(self.error_messages["not_finite"], code="not_finite") from None
            raise forms.ValidationError(f"Enter a BMI between {low:g} and {high:g} kg/m².", code="range") from None


class PredictForm(forms.Form):
    # Browser-side "required" and number spinners would pre-empt the server's messages (and
    # differ between browsers); the server validates and shows the error beside the field.
    use_required_attribute = False

    bmi = BMIField(
        label="Body-mass index (BMI)",
        error_messages={"required": "Enter the patient's BMI in kg/m²."},
        widget=forms.TextInput(
            attrs={"inputmode": "decimal", "autocomplete": "off", "spellcheck": "false", "class": "input-bmi"}
        ),
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        low, high = float(settings.PREDICTOR_BMI_MIN), float(settings.PREDICTOR_BMI_MAX)
        field = self.fields["bmi"]
        field.help_text = f"In kg/m², between {low:g} and {high:g}."
        field.widget.attrs["aria-describedby"] = "id_bmi-hint"

    def full_clean(self):
        super().full_clean()
        # Point the input at its error message too, so a screen reader reads it with the field.
        if self.errors.get("bmi"):
            widget_attrs = self.fields["bmi"].widget.attrs
            widget_attrs["aria-invalid"] = "true"
            widget_attrs["aria-describedby"] = "id_bmi-error id_bmi-hint"
