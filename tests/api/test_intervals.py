"""Every prediction answer carries its interval and its warnings, computed from the stored version."""

import math

import numpy as np
import pytest

from predictor.ml.data import DIABETES_PATIENTS, DIABETES_SCALE, PROGRESSION_UNIT

pytestmark = pytest.mark.django_db

SINGLE, BATCH = "/api/v1/predict", "/api/v1/predict/batch"


def formula(version, bmi: float) -> tuple[float, float, float]:
    """(ŷ, low, high) by the interval formula on the version's stored figures, written out here."""
    predicted = version.slope * bmi + version.intercept
    half = (
        version.interval_t
        * version.residual_std
        * math.sqrt(1 + 1 / version.n_train + (bmi - version.bmi_mean) ** 2 / version.bmi_sxx)
    )
    return predicted, predicted - half, predicted + half


def codes(body) -> list[str]:
    return [warning["code"] for warning in body["warnings"]]


@pytest.mark.parametrize("bmi", [27.4, 18.0, 42.2, 11.0, 50.0, 80.0])
def test_single_interval_is_the_stored_versions_formula_raw_and_clipped(api, active_version, bmi):
    body = api.post(SINGLE, {"bmi": bmi}, format="json").json()
    predicted, low, high = formula(active_version, bmi)
    interval = body["interval"]

    assert body["prediction"] == pytest.approx(predicted, rel=1e-12)
    assert interval["level"] == active_version.interval_level == 0.95
    assert (interval["low_raw"], interval["high_raw"]) == (
        pytest.approx(low, rel=1e-12),
        pytest.approx(high, rel=1e-12),
    )
    scale = (active_version.progression_min, active_version.progression_max)
    assert scale == (25.0, 346.0)
    assert body["scale"] == {"low": 25.0, "high": 346.0}
    assert interval["low"] == pytest.approx(min(max(low, scale[0]), scale[1]), rel=1e-12)
    assert interval["high"] == pytest.approx(min(max(high, scale[0]), scale[1]), rel=1e-12)
    assert ("interval_clipped" in codes(body)) == (low < scale[0] or high > scale[1])


def test_the_standard_answer_at_bmi_27_4_is_39_to_287_without_warnings(api, active_version):
    body = api.post(SINGLE, {"bmi": 27.4}, format="json").json()
    assert round(body["prediction"], 1) == 163.2
    assert (round(body["interval"]["low"], 1), round(body["interval"]["high"], 1)) == (39.2, 287.3)
    assert body["warnings"] == []


def test_bmi_11_says_why_it_is_not_a_usable_estimate(api, active_version):
    body = api.post(SINGLE, {"bmi": 11.0}, format="json").json()

    assert body["prediction"] < 0
    assert codes(body) == ["bmi_outside_training_range", "prediction_outside_scale", "interval_clipped"]
    messages = [w["message"] for w in body["warnings"]]
    assert "18.0 to 42.2 kg/m²" in messages[0]
    assert "not a possible progression value" in messages[1]
    assert body["interval"]["low"] == 25.0 and body["interval"]["low_raw"] < 0
    assert "shown as 25" in messages[2]


def test_warnings_appear_exactly_past_the_training_bmi_range(api, active_version):
    low, high = active_version.training_bmi_range
    assert (low, high) == (18.0, 42.2)
    below, above = np.nextafter(low, 0), np.nextafter(high, 100)
    for bmi in (low, high):
        assert "bmi_outside_training_range" not in codes(api.post(SINGLE, {"bmi": bmi}, format="json").json())
    for bmi in (below, above):
        assert "bmi_outside_training_range" in codes(api.post(SINGLE, {"bmi": float(bmi)}, format="json").json())


def test_warnings_appear_exactly_past_the_scale(api, active_version):
    # The BMIs whose estimate lands on the scale's bounds, and a hair beyond them.
    at_top = (active_version.progression_max - active_version.intercept) / active_version.slope
    at_bottom = (active_version.progression_min - active_version.intercept) / active_version.slope
    for bmi, outside in (
        (at_top - 1e-9, False),
        (at_top + 1e-9, True),
        (at_bottom + 1e-9, False),
        (at_bottom - 1e-9, True),
    ):
        body = api.post(SINGLE, {"bmi": bmi}, format="json").json()
        assert ("prediction_outside_scale" in codes(body)) == outside, bmi


def test_batch_intervals_and_warnings_are_arrays_beside_the_predictions(api, active_version):
    bmis = [18.0, 27.4, 50.0, 11.0]
    body = api.post(BATCH, {"bmi": bmis}, format="json").json()
    intervals = body["intervals"]

    assert intervals["level"] == 0.95
    for i, bmi in enumerate(bmis):
        predicted, low, high = formula(active_version, bmi)
        assert body["predictions"][i] == pytest.approx(predicted, rel=1e-12)
        assert intervals["low_raw"][i] == pytest.approx(low, rel=1e-12)
        assert intervals["high_raw"][i] == pytest.approx(high, rel=1e-12)
        assert intervals["low"][i] == pytest.approx(min(max(low, 25.0), 346.0), rel=1e-12)
        assert intervals["high"][i] == pytest.approx(min(max(high, 25.0), 346.0), rel=1e-12)
    by_code = {warning["code"]: warning["indices"] for warning in body["warnings"]}
    assert by_code == {
        "bmi_outside_training_range": [2, 3],
        "prediction_outside_scale": [2, 3],
        "interval_clipped": [0, 2, 3],
    }
    assert all(warning["message"] for warning in body["warnings"])


def test_a_batch_inside_everything_has_no_warnings(api, active_version):
    # Interval ends stay on the scale from about BMI 26 up to 33 on the standard split.
    body = api.post(BATCH, {"bmi": [27.4, 30.0, 32.0]}, format="json").json()
    assert body["warnings"] == []
    assert body["intervals"]["low"] == body["intervals"]["low_raw"]


def test_unit_text_is_the_one_the_pages_and_docs_use(api, active_version, diabetes):
    body = api.post(SINGLE, {"bmi": 27.4}, format="json").json()
    assert body["unit"] == PROGRESSION_UNIT
    assert f"{DIABETES_SCALE[0]} to {DIABETES_SCALE[1]}" in body["unit"]
    # The wording's figures are the bundled data's own.
    from sklearn.datasets import load_diabetes

    target = load_diabetes().target
    assert (target.min(), target.max(), len(target)) == (*DIABETES_SCALE, DIABETES_PATIENTS)
