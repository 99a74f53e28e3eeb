"""Property-based tests: arbitrary input gives a correct answer or a clear refusal, never a crash.

The estimator and the CSV loader either return a correct, finite result or raise ``ValueError``
(``DataError`` is one) naming the problem. The prediction endpoints, driven through the whole
middleware stack with arbitrary JSON values and arbitrary bodies, either answer 200 with
``prediction == slope * bmi + intercept`` and exactly the one entry it logged, or a 4xx with the error
body and nothing written. Example counts come from the "ci" profile (conftest.py).
"""

from __future__ import annotations

import io
import json
import math
import warnings

import numpy as np
import pytest
from hypothesis import assume, event, example, given, settings
from hypothesis import strategies as st

from predictor.ml.data import DataError, parse_csv
from predictor.ml.sgd import ConvergenceWarning, SGDLinearRegression
from predictor.models import PredictionLog

# --- Strategies ------------------------------------------------------------------------------------

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**400), max_value=10**400)  # far past float range
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)
# Mostly plausible BMIs, so that the success path is exercised as often as the refusals.
plausible_bmi = st.floats(min_value=10, max_value=80) | st.integers(min_value=10, max_value=80)
bmi_like = plausible_bmi | st.floats(min_value=0, max_value=120) | st.integers(-5, 200) | json_values
any_floats = st.floats(allow_nan=True, allow_infinity=True, width=64)


# --- The estimator -------------------------------------------------------------------------------


def _fit(estimator, X, y):
    with warnings.catch_warnings():
        # Hitting max_epochs warns (and pytest turns that warning into an error); here it is fine.
        warnings.simplefilter("ignore", ConvergenceWarning)
        return estimator.fit(X, y)


@given(
    X=st.lists(any_floats, max_size=30) | st.lists(st.lists(any_floats, max_size=3), max_size=10),
    y=st.lists(any_floats, max_size=30),
    learning_rate=st.floats(allow_nan=True, allow_infinity=True) | st.integers(-2, 2),
    max_epochs=st.integers(-3, 50) | st.floats(allow_nan=False, allow_infinity=False, min_value=-5, max_value=50),
)
# Found by this test: a spread this large overflowed the variance and fit returned a NaN model.
@example(X=[0.0, 1.0], y=[0.0, 1.9e154], learning_rate=1.0, max_epochs=1)
def test_estimator_fits_any_array_correctly_or_raises_value_error(X, y, learning_rate, max_epochs):
    estimator = SGDLinearRegression(learning_rate=learning_rate, max_epochs=max_epochs, random_state=0)
    try:
        _fit(estimator, X, y)
    except ValueError as exc:
        assert str(exc), "a ValueError must say what is wrong"
        return
    # Accepted: the model is finite and predicts exactly its own line.
    assert math.isfinite(estimator.coef_) and math.isfinite(estimator.intercept_)
    x = np.asarray(X, dtype=np.float64).ravel()
    np.testing.assert_allclose(estimator.predict(x), estimator.coef_ * x + estimator.intercept_)


@given(
    slope=st.floats(min_value=-50, max_value=50),
    intercept=st.floats(min_value=-500, max_value=500),
    x=st.lists(st.floats(min_value=10, max_value=80), min_size=5, max_size=60, unique=True),
)
def test_estimator_recovers_any_noiseless_line(slope, intercept, x):
    assume(np.std(x) > 1.0)
    X = np.array(x)
    y = slope * X + intercept
    estimator = _fit(SGDLinearRegression(max_epochs=5000, random_state=0), X, y)
    # SGD stops within its tolerance, not at the exact optimum: compare predictions on the range.
    scale = max(1.0, float(np.abs(y).max()))
    np.testing.assert_allclose(estimator.predict(X), y, atol=0.05 * scale)


# --- The CSV loader ------------------------------------------------------------------------------


def _check_parsed(X, y):
    assert X.dtype == y.dtype == np.float64 and X.shape == y.shape and X.size >= 10
    assert np.isfinite(X).all() and np.isfinite(y).all()
    assert ((X >= 10) & (X <= 80)).all()


# A str is a path to parse_csv; text content arrives as bytes (an upload) or a file object.
@given(source=st.binary(max_size=400) | st.text(max_size=400).map(str.encode))
def test_csv_loader_takes_any_bytes_and_parses_or_raises_data_error(source):
    try:
        X, y = parse_csv(source)
    except DataError as exc:
        assert str(exc)
        return
    _check_parsed(X, y)


cells = st.one_of(
    st.floats(min_value=10, max_value=80).map(repr),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(-(10**30), 10**30).map(str),
    st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=8),
    st.just(""),
    st.just('"unterminated'),
)


@given(
    rows=st.lists(st.lists(cells, min_size=0, max_size=4), max_size=25),
    header=st.sampled_from(
        ["bmi,progression", "progression,bmi,extra", "BMI , Progression", "\ufeffbmi,progression", "x,y"]
    ),
    newline=st.sampled_from(["\n", "\r\n"]),
)
def test_csv_loader_with_csv_shaped_garbage_parses_or_raises_data_error(rows, header, newline):
    text = newline.join([header, *(",".join(row) for row in rows)])
    try:
        X, y = parse_csv(text.encode("utf-8"))
    except DataError as exc:
        assert str(exc)
        return
    _check_parsed(X, y)


@given(
    pairs=st.lists(
        # Any float in the plausible ranges, tiny and subnormal ones included (repr's exponent form).
        st.tuples(st.floats(min_value=10, max_value=80), st.floats(min_value=0, max_value=1000)),
        min_size=10,
        max_size=50,
    )
)
def test_csv_loader_reads_back_exactly_what_was_written(pairs):
    assume(len({b for b, _ in pairs}) > 1)
    text = "bmi,progression\n" + "".join(f"{b!r},{p!r}\n" for b, p in pairs)
    X, y = parse_csv(io.StringIO(text))
    assert X.tolist() == [b for b, _ in pairs] and y.tolist() == [p for _, p in pairs]


# --- The prediction endpoints, through the whole Django stack ------------------------------------


def _assert_clear_refusal(response, rows_before):
    assert 400 <= response.status_code < 500, (response.status_code, response.content[:300])
    error = response.json()["error"]
    assert error["status"] == response.status_code and error["message"]
    # Nothing half-written: a refused request logged nothing.
    assert PredictionLog.objects.count() == rows_before


@pytest.mark.django_db
@given(value=bmi_like, extra=st.dictionaries(st.text(max_size=6), json_values, max_size=2))
def test_single_prediction_is_correct_and_logged_or_a_clear_4xx(client, unthrottled, active_version, value, extra):
    body = {**extra, "bmi": value}
    rows_before = PredictionLog.objects.count()
    response = client.post("/api/v1/predict", json.dumps(body), content_type="application/json")
    event(f"HTTP {response.status_code}")
    if response.status_code != 200:
        _assert_clear_refusal(response, rows_before)
        return
    data = response.json()
    assert data["model_version"] == active_version.version
    assert data["prediction"] == pytest.approx(active_version.slope * float(value) + active_version.intercept)
    (row,) = PredictionLog.objects.filter(id__gt=0).order_by("-id")[:1]
    assert PredictionLog.objects.count() == rows_before + 1
    assert (row.pk, row.bmi, row.predictions, row.model_version_id, row.channel, row.size) == (
        data["prediction_id"],
        [data["bmi"]],
        [data["prediction"]],
        data["model_version"],
        "api",
        1,
    )


@pytest.mark.django_db
@given(values=st.lists(plausible_bmi, min_size=1, max_size=12) | st.lists(bmi_like, max_size=12) | json_values)
def test_batch_prediction_is_correct_and_fully_logged_or_a_clear_4xx(client, unthrottled, active_version, values):
    rows_before = PredictionLog.objects.count()
    response = client.post("/api/v1/predict/batch", json.dumps({"bmi": values}), content_type="application/json")
    event(f"HTTP {response.status_code}")
    if response.status_code != 200:
        _assert_clear_refusal(response, rows_before)
        return
    data = response.json()
    expected = [active_version.slope * float(v) + active_version.intercept for v in values]
    assert data["count"] == len(values) and data["predictions"] == pytest.approx(expected)
    assert isinstance(data["batch_id"], int)
    logged = PredictionLog.objects.get(pk=data["batch_id"])
    assert PredictionLog.objects.count() == rows_before + 1
    assert (logged.model_version_id, logged.channel, logged.size) == (active_version.version, "batch", len(values))
    assert list(zip(logged.bmi, logged.predictions, strict=True)) == [
        (float(v), p) for v, p in zip(values, data["predictions"], strict=True)
    ]


@pytest.mark.django_db
@settings(max_examples=150)
@given(
    path=st.sampled_from(["/api/v1/predict", "/api/v1/predict/batch"]),
    body=st.binary(max_size=200) | st.text(max_size=200).map(str.encode),
    content_type=st.sampled_from(
        ["application/json", "application/json; charset=latin-1", "application/json; charset=bogus", "text/plain", ""]
    ),
)
def test_arbitrary_bodies_never_give_a_500(client, unthrottled, active_version, path, body, content_type):
    rows_before = PredictionLog.objects.count()
    response = client.generic("POST", path, body, content_type=content_type)
    event(f"HTTP {response.status_code}")
    if response.status_code == 200:
        assert PredictionLog.objects.count() == rows_before + 1  # valid JSON that happened to be a good input
        return
    _assert_clear_refusal(response, rows_before)
