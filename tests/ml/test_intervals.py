"""The prediction interval against statsmodels' OLS, its measured coverage, and the caution rules.

Our line is fitted by SGD, statsmodels' by least squares, so the two lines differ in the last
digits. Two separate checks follow from that:

* the formula and the figures (t, s, x̄, Sxx) are checked exactly, to 1e-6, by giving them
  statsmodels' own fitted line: ``interval_figures(X, y, ols_fitted)`` then
  ``prediction_interval(x, ols_predicted)`` must reproduce ``get_prediction().summary_frame()``;
* the served, SGD-fitted interval is checked to be the least-squares one up to SGD's own
  tolerance (a few hundredths of a progression unit).
"""

import math

import numpy as np
import pytest
import statsmodels.api as sm
from scipy import stats

from predictor.ml.cautions import (
    BMI_OUTSIDE_TRAINING_RANGE,
    INTERVAL_CLIPPED,
    PREDICTION_OUTSIDE_SCALE,
    Limits,
    explain,
)
from predictor.ml.intervals import (
    IntervalFigures,
    coverage,
    cross_validated_coverage,
    interval_figures,
    prediction_interval,
)
from predictor.ml.sgd import SGDLinearRegression

# The training mean (filled in per test), the training range's edges, and well outside it.
BMIS = [18.0, 42.2, 10.0, 11.0, 50.0, 80.0]


@pytest.fixture(scope="module")
def ols(diabetes):
    return sm.OLS(diabetes.y_train, sm.add_constant(diabetes.X_train)).fit()


def _reference(ols, bmis, alpha=0.05):
    frame = ols.get_prediction(sm.add_constant(np.asarray(bmis), has_constant="add")).summary_frame(alpha=alpha)
    return frame["mean"].to_numpy(), frame["obs_ci_lower"].to_numpy(), frame["obs_ci_upper"].to_numpy()


@pytest.mark.parametrize("level", [0.95, 0.9, 0.99])
def test_interval_matches_statsmodels_given_the_same_line(diabetes, ols, level):
    figures = interval_figures(diabetes.X_train, diabetes.y_train, ols.fittedvalues, level=level)
    bmis = [figures.bmi_mean, *BMIS]
    mean, lower, upper = _reference(ols, bmis, alpha=1 - level)

    low, high = prediction_interval(np.array(bmis), mean, figures)

    np.testing.assert_allclose(low, lower, rtol=0, atol=1e-6)
    np.testing.assert_allclose(high, upper, rtol=0, atol=1e-6)
    # And the figures themselves, by their textbook definitions.
    assert figures.n == 422
    assert figures.residual_std == pytest.approx(math.sqrt(ols.scale), rel=1e-12)
    assert figures.t == pytest.approx(stats.t.ppf((1 + level) / 2, ols.df_resid), rel=1e-12)
    assert figures.bmi_sxx == pytest.approx(np.var(diabetes.X_train) * 422, rel=1e-12)


def test_the_interval_is_narrowest_at_the_training_mean(diabetes, ols):
    figures = interval_figures(diabetes.X_train, diabetes.y_train, ols.fittedvalues, level=0.95)
    widths = figures.half_width(np.array([figures.bmi_mean, 18.0, 42.2, 11.0, 50.0]))
    assert widths[0] == pytest.approx(figures.t * figures.residual_std * math.sqrt(1 + 1 / 422), rel=1e-12)
    assert np.all(widths[1:] > widths[0])
    assert widths[3] > widths[1] and widths[4] > widths[2]  # further out, wider


def test_the_sgd_line_gives_the_least_squares_interval_up_to_its_tolerance(diabetes, ols):
    model = SGDLinearRegression(random_state=0).fit(diabetes.X_train, diabetes.y_train)
    figures = interval_figures(diabetes.X_train, diabetes.y_train, model.predict(diabetes.X_train), level=0.95)
    bmis = np.array([figures.bmi_mean, *BMIS])
    _, lower, upper = _reference(ols, bmis)

    low, high = prediction_interval(bmis, model.predict(bmis), figures)

    # SGD stops within its tolerance of the least-squares line: the ends agree to 0.02-0.14 units
    # within the training BMIs and to 0.4 at BMI 80 (the slopes differ by 0.007), on a 25-346 scale.
    np.testing.assert_allclose(low, lower, atol=0.5)
    np.testing.assert_allclose(high, upper, atol=0.5)
    assert figures.residual_std == pytest.approx(math.sqrt(ols.scale), rel=1e-4)
    # The hand computation: 39 to 287 around 163 at BMI 27.4, s ≈ 63.0, Sxx ≈ 8,227.
    (low_27,), (high_27,) = prediction_interval(np.array([27.4]), model.predict(np.array([27.4])), figures)
    assert (round(low_27), round(high_27)) == (39, 287)
    assert (round(figures.residual_std, 1), round(figures.bmi_sxx)) == (63.0, 8227)


def test_coverage_counts_rows_inside_their_interval_ends_included():
    figures = IntervalFigures(level=0.95, t=2.0, residual_std=1.0, n=10**12, bmi_mean=0.0, bmi_sxx=10**12)
    half = figures.half_width(0.0)  # ≈ 2.0
    y = np.array([0.0, half, -half, half + 1e-6, 5.0])
    assert coverage(np.zeros(5), y, np.zeros(5), figures) == 3 / 5


def test_cross_validated_coverage_refits_ten_seeded_folds(diabetes):
    model = SGDLinearRegression(random_state=0)
    first = cross_validated_coverage(model, diabetes.X_train, diabetes.y_train, level=0.95, random_state=0)
    again = cross_validated_coverage(model, diabetes.X_train, diabetes.y_train, level=0.95, random_state=0)
    other = cross_validated_coverage(model, diabetes.X_train, diabetes.y_train, level=0.95, random_state=1)

    assert first == again  # seeded: the same folds and fits
    assert 0.93 < first < 0.99 and 0.93 < other < 0.99  # close to the nominal 95 %
    assert first * 422 == round(first * 422)  # a share of the 422 rows


def test_cross_validated_coverage_needs_four_rows():
    with pytest.raises(ValueError, match="at least 4 training rows"):
        cross_validated_coverage(SGDLinearRegression(), [20.0, 25.0, 30.0], [1.0, 2.0, 3.0], level=0.95)


# --- Cautions ------------------------------------------------------------------------------------

FIGURES = IntervalFigures(level=0.95, t=2.0, residual_std=10.0, n=100, bmi_mean=25.0, bmi_sxx=1000.0)
LIMITS = Limits(bmi=(18.0, 42.0), scale=(25.0, 346.0))


def _codes(bmi, prediction):
    return [c.code for c in explain(bmi, prediction, interval=FIGURES, limits=LIMITS).cautions()]


@pytest.mark.parametrize(
    ("bmi", "expected"),
    [(18.0, False), (42.0, False), (np.nextafter(18.0, 0), True), (np.nextafter(42.0, 99), True)],
)
def test_bmi_rule_fires_exactly_past_the_training_range(bmi, expected):
    assert (BMI_OUTSIDE_TRAINING_RANGE in _codes(bmi, 150.0)) is expected


@pytest.mark.parametrize(
    ("prediction", "expected"),
    [(25.0, False), (346.0, False), (np.nextafter(25.0, 0), True), (np.nextafter(346.0, 999), True), (-2.3, True)],
)
def test_scale_rule_fires_exactly_past_the_training_scores(prediction, expected):
    assert (PREDICTION_OUTSIDE_SCALE in _codes(25.0, prediction)) is expected


def test_interval_ends_are_clipped_to_the_scale_exactly_when_beyond_it():
    half = float(FIGURES.half_width(25.0))
    exact = explain(25.0, 25.0 + half, interval=FIGURES, limits=LIMITS)
    beyond = explain(25.0, 25.0 + half - 1e-9, interval=FIGURES, limits=LIMITS)

    assert INTERVAL_CLIPPED not in [c.code for c in exact.cautions()]
    assert float(exact.low[0]) == pytest.approx(25.0)
    [clipped] = beyond.cautions()
    assert clipped.code == INTERVAL_CLIPPED and "shown as 25" in clipped.message
    assert float(beyond.low[0]) == 25.0 and float(beyond.low_raw[0]) < 25.0
    assert not clipped.unreliable  # it qualifies the interval; the estimate itself is in range


def test_an_impossible_estimate_is_unreliable_and_said_so():
    explained = explain(11.0, -2.3, interval=FIGURES, limits=LIMITS)
    cautions = explained.cautions()

    assert [c.code for c in cautions] == [BMI_OUTSIDE_TRAINING_RANGE, PREDICTION_OUTSIDE_SCALE, INTERVAL_CLIPPED]
    assert "not a possible progression value" in cautions[1].message
    assert explained.unreliable.tolist() == [True]
    assert [c.unreliable for c in cautions] == [True, True, False]


def test_batch_cautions_name_the_items_once_per_rule():
    explained = explain([11.0, 27.0, 50.0], [-2.3, 150.0, 391.6], interval=FIGURES, limits=LIMITS)
    by_code = {c.code: c.indices for c in explained.batch_cautions()}
    assert by_code == {
        BMI_OUTSIDE_TRAINING_RANGE: [0, 2],
        PREDICTION_OUTSIDE_SCALE: [0, 2],
        INTERVAL_CLIPPED: [0, 2],
    }


def test_without_recorded_limits_nothing_is_flagged_or_clipped():
    explained = explain(11.0, -2.3, interval=FIGURES, limits=Limits(bmi=None, scale=None))
    assert explained.cautions() == []
    assert float(explained.low[0]) == float(explained.low_raw[0])
