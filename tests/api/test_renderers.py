"""FastJSONRenderer writes the JSON DRF's renderer writes, or hands over to it (predictor/api/renderers.py)."""

import json
import math

import pytest
from rest_framework.renderers import JSONRenderer

from predictor.api.renderers import FastJSONRenderer
from predictor.api.views import PredictBatchView

BATCH_LIKE = {
    "model_version": 7,
    "batch_id": 1234,  # the log entry's id
    "count": 4,
    "predictions": [152.13348416289594, 25.0, -3.5e-05, 346.99999999999994],
    "unit": "disease progression score one year after baseline",
    "bmi_unit": "kg/m²",
}


def _both(data, **context):
    return FastJSONRenderer().render(data, renderer_context=context), JSONRenderer().render(
        data, renderer_context=context
    )


def test_a_batch_answer_is_the_same_json_with_the_same_floats():
    fast, drf = _both(BATCH_LIKE)
    assert json.loads(fast) == json.loads(drf)
    # Bit for bit: every float reads back to the very float that was rendered.
    assert [x.hex() for x in json.loads(fast)["predictions"]] == [x.hex() for x in BATCH_LIKE["predictions"]]


def test_typical_answers_are_byte_identical():
    data = {**BATCH_LIKE, "predictions": [152.13348416289594, 25.0, 346.99999999999994, 0.1, -117.77]}
    fast, drf = _both(data)
    assert fast == drf


@pytest.mark.parametrize(
    "data",
    [
        {"values": [1e16, 1e-7, -0.0, 2.5, 10**18, True, None, "x"], "nested": [{"a": [1, 2.0]}]},
        [[0.1, 0.2], [], {}],
        {"ünïcode": "ß→✓", "empty": ""},
    ],
)
def test_other_plain_data_is_equal_json(data):
    fast, drf = _both(data)
    assert json.loads(fast) == json.loads(drf)


@pytest.mark.parametrize(
    "data",
    [
        {"line separator": "a\u2028b"},  # DRF escapes it; orjson would not
        {"huge": 2**70},  # beyond orjson's integers
        {1: "an integer key"},
        {"decimal": __import__("decimal").Decimal("1.5")},
    ],
)
def test_anything_unusual_is_rendered_by_drf_itself(data):
    fast, drf = _both(data)
    assert fast == drf


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_numbers_are_refused_as_drf_refuses_them(bad):
    with pytest.raises(ValueError, match="Out of range float values are not JSON compliant"):
        FastJSONRenderer().render({"predictions": [1.0, bad]})


def test_indented_output_is_drfs():
    fast, drf = _both(BATCH_LIKE, indent=2)
    assert fast == drf and b"\n  " in fast


def test_the_batch_endpoint_renders_with_it():
    assert PredictBatchView.renderer_classes == [FastJSONRenderer]
