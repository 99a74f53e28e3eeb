"""The /monitoring/ page and GET /api/v1/models/{version}/monitoring."""

from __future__ import annotations

import re

import numpy as np
import pytest

from predictor.models import Outcome
from predictor.monitoring import stats


@pytest.fixture
def traffic(active_version, log_predictions, record_outcomes, diabetes):
    rows = log_predictions(active_version, diabetes.X_train[:50], days_ago=1)
    record_outcomes(rows, diabetes.y_train[:50])
    log_predictions(active_version, np.random.default_rng(2).normal(34, 3, 30))
    return active_version


def test_anonymous_visitor_is_sent_to_the_site_sign_in_and_back(client, db):
    response = client.get("/monitoring/")
    assert response.status_code == 302
    assert response["Location"] == "/login/?next=/monitoring/"


def test_signed_in_non_staff_user_gets_the_site_403_saying_why(client, plain_user):
    client.force_login(plain_user)
    response = client.get("/monitoring/")
    assert response.status_code == 403
    html = response.content.decode()
    assert "Only staff users may use the monitoring page." in html
    assert 'href="/"' in html  # a way back to the site


def test_staff_without_the_log_permission_get_a_403_naming_it(client, view_only_staff, active_version):
    client.force_login(view_only_staff)
    response = client.get("/monitoring/")
    assert response.status_code == 403
    assert "predictor.view_predictionlog" in response.content.decode()
    assert 'href="/monitoring/"' not in response.content.decode()  # no nav link to a page they cannot use


def test_page_shows_figures_and_three_inline_charts_per_version(client, staff_user, traffic, settings):
    settings.PREDICTOR_MONITOR_MIN_PREDICTIONS = 80  # exactly what the fixture served: judged
    client.force_login(staff_user)
    response = client.get("/monitoring/")
    assert response.status_code == 200
    html = response.content.decode()
    quality = stats.version_quality(traffic)
    assert f"Version {traffic.version}" in html
    assert "<td>80</td>" in html  # predictions served
    assert "<td>50</td>" in html  # outcomes received
    assert f"{quality.r2:.3f}" in html
    assert f"{quality.psi:.3f}" in html
    for chart in ("traffic", "r2", "bmi"):
        assert f'id="{chart}-v{traffic.version}"' in html
    # Two days of traffic drawn as two bars; one BMI bar per training bin.
    traffic_svg = re.search(rf'<svg id="traffic-v{traffic.version}".*?</svg>', html, re.S).group(0)
    assert traffic_svg.count("<rect") == 2
    bmi_svg = re.search(rf'<svg id="bmi-v{traffic.version}".*?</svg>', html, re.S).group(0)
    assert bmi_svg.count("<title>BMI ") == len(traffic.training_bmi_histogram["fractions"])
    # Each chart tells a screen reader what it shows, as the other pages' charts do.
    for chart in ("traffic", "r2", "bmi"):
        svg = re.search(rf'<svg id="{chart}-v{traffic.version}".*?</svg>', html, re.S).group(0)
        assert f'aria-labelledby="{chart}-v{traffic.version}-title {chart}-v{traffic.version}-desc"' in svg
    assert "80 in all" in traffic_svg
    assert f"PSI {quality.psi:.3f}" in bmi_svg


def test_page_loads_nothing_from_another_host(client, staff_user, traffic):
    client.force_login(staff_user)
    html = client.get("/monitoring/").content.decode()
    # xmlns is a name, not a fetch; anything else pointing off-site would be a fetch.
    references = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert references, "the page has links at all"
    assert all(not re.match(r"^(https?:)?//", ref) for ref in references), references
    assert "<script" not in html


def test_page_renders_with_no_versions(client, staff_user):
    client.force_login(staff_user)
    response = client.get("/monitoring/")
    assert response.status_code == 200
    assert "No version is active" in response.content.decode()


def test_api_returns_the_same_figures(api_client, staff_user, traffic, settings):
    settings.PREDICTOR_MONITOR_MIN_PREDICTIONS = 80
    api_client.force_authenticate(staff_user)
    response = api_client.get(f"/api/v1/models/{traffic.version}/monitoring")
    assert response.status_code == 200
    body = response.json()
    quality = stats.version_quality(traffic)
    assert body["version"] == traffic.version
    assert body["predictions"] == 80
    assert body["outcomes"] == 50
    assert body["live_r2"] == pytest.approx(quality.r2)
    assert body["live_mae"] == pytest.approx(quality.mae)
    assert body["drift_psi"] == pytest.approx(quality.psi)
    assert body["drift_reading"] == quality.psi_reading
    assert sum(body["bmi_histogram"]["served_counts"]) == 80
    assert [d["predictions"] for d in body["daily"]] == [50, 30]
    assert body["daily"][0]["r2_cumulative"] == pytest.approx(quality.r2)


def test_api_unknown_version_is_404(api_client, staff_user, db):
    api_client.force_authenticate(staff_user)
    response = api_client.get("/api/v1/models/999/monitoring")
    assert response.status_code == 404
    assert "999" in response.content.decode()


def test_api_is_staff_only(api_client, plain_user, active_version):
    assert api_client.get(f"/api/v1/models/{active_version.version}/monitoring").status_code in (401, 403)
    api_client.force_authenticate(plain_user)
    assert api_client.get(f"/api/v1/models/{active_version.version}/monitoring").status_code == 403


def test_api_refuses_staff_without_the_log_permission(api_client, view_only_staff, active_version):
    api_client.force_authenticate(view_only_staff)
    response = api_client.get(f"/api/v1/models/{active_version.version}/monitoring")
    assert response.status_code == 403
    assert "predictor.view_predictionlog" in response.json()["error"]["message"]


def test_page_shows_the_check_model_verdict_per_version(client, staff_user, traffic, settings):
    settings.PREDICTOR_MONITOR_MIN_OUTCOMES = 1000  # too few outcomes and predictions to judge
    settings.PREDICTOR_MONITOR_MIN_PREDICTIONS = 1000
    client.force_login(staff_user)
    html = client.get("/monitoring/").content.decode()
    assert re.search(r'<td data-testid="health"><span class="status status-pending">Not enough data</span>', html)
    settings.PREDICTOR_MONITOR_MIN_PREDICTIONS = 10
    settings.PREDICTOR_MONITOR_PSI_ALERT = 0.0001  # any shift is drift
    html = client.get("/monitoring/").content.decode()
    assert re.search(
        r'<td data-testid="health"><span class="status status-alert">Needs attention</span> BMI drift PSI [\d.]+ '
        r"exceeds",
        html,
    )


def test_one_prediction_is_not_enough_data_for_drift_on_the_page_the_api_and_check_model(
    client, api_client, staff_user, active_version, log_predictions
):
    log_predictions(active_version, [60.0])  # far from the training BMIs: PSI about 8
    quality = stats.version_quality(active_version)
    assert quality.psi > 1
    client.force_login(staff_user)
    html = client.get("/monitoring/").content.decode()
    drift = re.search(r'<td data-testid="drift">(.*?)</td>', html).group(1)
    assert drift == "not enough data (1 prediction, at least 100 needed)"
    assert "PSI" not in re.search(r'<desc id="bmi-v\d+-desc">(.*?)</desc>', html).group(1)
    api_client.force_authenticate(staff_user)
    body = api_client.get(f"/api/v1/models/{active_version.version}/monitoring").json()
    assert (body["drift_psi"], body["drift_reading"]) == (None, "not enough data")
    assert stats.version_health(active_version).problems == []


def test_api_shows_live_coverage_and_the_interval_level(api_client, staff_user, active_version, log_predictions):
    rows = log_predictions(active_version, [22.0, 27.0, 33.0, 38.0])
    half = active_version.interval.half_width([r.bmi[0] for r in rows])
    # Two inside their interval, two outside it (one above, one below).
    observed = [rows[0].predictions[0] + 0.5 * half[0], rows[1].predictions[0] - 0.9 * half[1]]
    observed += [rows[2].predictions[0] + 1.5 * half[2], rows[3].predictions[0] - 2.0 * half[3]]
    Outcome.objects.bulk_create(Outcome(log=r, observed=o) for r, o in zip(rows, observed, strict=True))
    api_client.force_authenticate(staff_user)
    body = api_client.get(f"/api/v1/models/{active_version.version}/monitoring").json()
    assert body["live_coverage"] == pytest.approx(0.5)
    assert body["interval_level"] == active_version.interval_level == pytest.approx(0.95)
    assert stats.version_quality(active_version).n_inside == 2


def test_api_live_coverage_is_null_without_outcomes(api_client, staff_user, active_version, log_predictions):
    log_predictions(active_version, [25.0])
    api_client.force_authenticate(staff_user)
    body = api_client.get(f"/api/v1/models/{active_version.version}/monitoring").json()
    assert body["live_coverage"] is None


def test_page_lists_every_version_that_served_five_per_page(client, staff_user, train_version, log_predictions):
    active = train_version(promote=True)
    log_predictions(active, [25.0])
    served = []
    for seed in range(1, 8):
        version = train_version(promote=False, random_state=seed)
        log_predictions(version, [26.0])
        served.append(version.version)
    train_version(promote=False, random_state=99)  # never served: not listed
    client.force_login(staff_user)

    pages = [client.get("/monitoring/", {"page": n}).content.decode() for n in (1, 2)]

    shown = [
        [int(v) for v in re.findall(r'<section class="card monitoring-version" id="v(\d+)"', html)] for html in pages
    ]
    assert shown == [[active.version, *sorted(served, reverse=True)[:4]], sorted(served, reverse=True)[4:]]
    assert 'href="?page=2" rel="next"' in pages[0] and "Page 1 of 2 (8 versions)" in pages[0]
    assert 'href="?page=1" rel="prev"' in pages[1]
