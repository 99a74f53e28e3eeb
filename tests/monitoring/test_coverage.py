"""Live coverage of the prediction interval on recorded outcomes, and check_model's coverage alert."""

from __future__ import annotations

import math
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from scipy.stats import binom

from predictor.monitoring import stats
from predictor.monitoring.coverage import coverage_pvalue


def half_width(version, bmi: float) -> float:
    """The interval's half-width, written out from the version's stored figures."""
    return (
        version.interval_t
        * version.residual_std
        * math.sqrt(1 + 1 / version.n_train + (bmi - version.bmi_mean) ** 2 / version.bmi_sxx)
    )


def test_live_coverage_counts_outcomes_inside_the_interval_of_their_own_item(
    active_version, log_predictions, log_batch, record_outcomes, record_batch_outcomes
):
    singles = log_predictions(active_version, [20.0, 27.4, 35.0, 50.0])
    # Observed = prediction + k half-widths at that BMI: inside for |k| ≤ 1.
    ks = [0.5, -0.999, 1.001, -2.0]
    record_outcomes(
        singles, [r.predictions[0] + k * half_width(active_version, r.bmi[0]) for r, k in zip(singles, ks, strict=True)]
    )
    # A batch: each outcome is judged against its own item's BMI and prediction (the interval is
    # wider at BMI 45 than at 25, so the same miss is inside there and outside here).
    batch = log_batch(active_version, [25.0, 30.0, 45.0])
    miss = 0.5 * (half_width(active_version, 25.0) + half_width(active_version, 45.0))
    record_batch_outcomes(batch, {0: batch.predictions[0] + miss, 2: batch.predictions[2] + miss})

    quality = stats.version_quality(active_version)

    assert quality.n_outcomes == 6
    assert quality.n_inside == 3  # 0.5, -0.999, and the batch's BMI 45 item
    assert quality.coverage == 0.5
    assert quality.as_dict()["live_coverage"] == 0.5
    assert quality.as_dict()["interval_level"] == 0.95


def test_live_coverage_is_none_without_outcomes(active_version, log_predictions):
    log_predictions(active_version, [27.4])
    quality = stats.version_quality(active_version)
    assert (quality.n_inside, quality.coverage) == (0, None)
    assert quality.as_dict()["live_coverage"] is None


def test_the_pvalue_is_the_binomial_lower_tail():
    assert coverage_pvalue(24, 30, 0.95) == pytest.approx(binom.cdf(24, 30, 0.95), rel=1e-9)
    assert coverage_pvalue(30, 30, 0.95) == 1.0


def _outcomes(version, log_predictions, record_outcomes, n: int, n_inside: int):
    bmis = [20.0 + 15.0 * i / n for i in range(n)]
    rows = log_predictions(version, bmis)
    record_outcomes(
        rows,
        [r.predictions[0] + (0.5 if i < n_inside else 1.5) * half_width(version, r.bmi[0]) for i, r in enumerate(rows)],
    )


def check(**options) -> str:
    out = StringIO()
    call_command("check_model", stdout=out, min_predictions=10**6, **options)
    return out.getvalue()


def test_check_model_alerts_when_live_coverage_is_clearly_below_the_level(
    active_version, log_predictions, record_outcomes
):
    # 24 of 30 inside: P(≤ 24 | 95 %) = 0.003 < 0.01. R² stays high: the misses are 1.5 half-widths.
    _outcomes(active_version, log_predictions, record_outcomes, 30, 24)
    with pytest.raises(
        CommandError, match=r"live coverage 80\.0% \(24 of 30 outcomes inside their interval\) is clearly"
    ):
        check(min_outcomes=30, threshold=-1.0)


def test_check_model_lets_chance_shortfalls_pass(active_version, log_predictions, record_outcomes):
    # 25 of 30 inside: P(≤ 25 | 95 %) = 0.016, not below 0.01: a calibrated interval does that often enough.
    _outcomes(active_version, log_predictions, record_outcomes, 30, 25)
    output = check(min_outcomes=30, threshold=-1.0)
    assert "live coverage 83.3% of a nominal 95.0%" in output
    assert "is healthy" in output


def test_check_model_does_not_judge_coverage_on_too_few_outcomes(active_version, log_predictions, record_outcomes):
    _outcomes(active_version, log_predictions, record_outcomes, 10, 0)  # none inside, but only ten
    output = check(min_outcomes=30)
    assert "Live coverage not judged: 10 outcomes, at least 30 needed." in output
    assert "is healthy" in output


def test_monitoring_api_and_page_show_live_coverage_beside_the_level(
    api_client, client, staff_user, active_version, log_predictions, record_outcomes
):
    _outcomes(active_version, log_predictions, record_outcomes, 30, 24)
    api_client.force_authenticate(staff_user)
    body = api_client.get(f"/api/v1/models/{active_version.version}/monitoring").json()
    assert (body["live_coverage"], body["interval_level"]) == (pytest.approx(0.8), 0.95)

    client.force_login(staff_user)
    html = client.get("/monitoring/").content.decode()
    assert "80 % of 30 outcomes inside their interval" in html
    assert "nominal 95 %" in html
    assert "held-out 100 %, cross-validated 96.7 %" in html
    assert "live coverage 80.0%" in html  # the alert rule's verdict on the page
