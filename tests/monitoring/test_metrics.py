"""/metrics in-process (no PROMETHEUS_MULTIPROC_DIR): route labels, prediction counters, access, gauges."""

from __future__ import annotations

import re

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import REGISTRY

from predictor.monitoring import metrics, rollups, stats
from predictor.predictions import serving

OUTCOME_ROUTE = "api/v1/predictions/<int:prediction_id>/outcome"


def sample(name: str, **labels) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def scrape(response) -> dict[tuple[str, tuple], float]:
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain")
    values = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for s in family.samples:
            values[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return values


@pytest.fixture(autouse=True)
def _fresh_gauges(settings):
    # The quality gauges are cached per process; each test wants its own database's figures.
    settings.PREDICTOR_METRICS_CACHE_SECONDS = 0


def test_requests_are_labelled_by_route_pattern_not_path(client, clinician_user, active_version, log_predictions):
    row = log_predictions(active_version, [25.0])[0]
    client.force_login(clinician_user)
    before = sample("bmi_http_requests_total", method="POST", route=OUTCOME_ROUTE, status="201")
    latency_before = sample("bmi_http_request_duration_seconds_count", method="POST", route=OUTCOME_ROUTE)
    response = client.post(f"/api/v1/predictions/{row.pk}/outcome", {"observed": 120}, content_type="application/json")
    assert response.status_code == 201
    assert sample("bmi_http_requests_total", method="POST", route=OUTCOME_ROUTE, status="201") == before + 1
    assert sample("bmi_http_request_duration_seconds_count", method="POST", route=OUTCOME_ROUTE) == latency_before + 1
    # No series carries the raw path (with the id in it).
    paths = [s.labels.get("route") for f in REGISTRY.collect() for s in f.samples if "route" in s.labels]
    assert f"api/v1/predictions/{row.pk}/outcome" not in paths


def test_unknown_urls_share_one_label_and_count_as_errors(client, db):
    before = sample("bmi_http_requests_total", method="GET", route="<unmatched>", status="404")
    errors_before = sample("bmi_http_errors_total", status="404", route="<unmatched>")
    for path in ("/wp-login.php", "/.env", "/random/123"):
        assert client.get(path).status_code == 404
    assert sample("bmi_http_requests_total", method="GET", route="<unmatched>", status="404") == before + 3
    assert sample("bmi_http_errors_total", status="404", route="<unmatched>") == errors_before + 3


def test_served_predictions_are_counted_per_version_and_channel(active_version, django_capture_on_commit_callbacks):
    version = str(active_version.version)
    single = sample("bmi_predictions_total", model_version=version, channel="web")
    batch = sample("bmi_predictions_total", model_version=version, channel="batch")
    serving.predict([27.0], channel="web")
    with django_capture_on_commit_callbacks(execute=True):
        serving.predict([20.0, 25.0, 30.0], channel="batch")
    assert sample("bmi_predictions_total", model_version=version, channel="web") == single + 1
    assert sample("bmi_predictions_total", model_version=version, channel="batch") == batch + 3


def test_metrics_are_refused_to_anonymous_and_plain_users(client, plain_user):
    assert client.get("/metrics").status_code == 403
    client.force_login(plain_user)
    response = client.get("/metrics")
    assert response.status_code == 403
    assert "Only staff users may use /metrics." in response.content.decode()


def test_metrics_open_to_staff(client, staff_user):
    client.force_login(staff_user)
    values = scrape(client.get("/metrics"))
    assert values[("bmi_model_active_version", ())] == 0  # nothing active yet
    assert values[("bmi_model_quality_up", ())] == 1


def test_bearer_token_when_configured(client, settings, db):
    settings.PREDICTOR_METRICS_TOKEN = "scrape-secret"
    refused = client.get("/metrics")
    assert refused.status_code == 401
    assert refused["WWW-Authenticate"].startswith("Bearer")
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    scrape(client.get("/metrics", headers={"Authorization": "Bearer scrape-secret"}))


def test_allowed_ip_when_configured(client, settings, db):
    settings.PREDICTOR_METRICS_ALLOWED_IPS = ["10.0.0.7"]
    assert client.get("/metrics", REMOTE_ADDR="10.0.0.8").status_code == 403
    scrape(client.get("/metrics", REMOTE_ADDR="10.0.0.7"))


def test_quality_gauges_match_the_monitoring_figures(
    client, staff_user, active_version, log_predictions, record_outcomes, diabetes
):
    rows = log_predictions(active_version, diabetes.X_train[:60])
    record_outcomes(rows, diabetes.y_train[:60])
    client.force_login(staff_user)
    values = scrape(client.get("/metrics"))
    quality = stats.version_quality(active_version)
    label = (("model_version", str(active_version.version)),)
    assert values[("bmi_model_active_version", ())] == active_version.version
    assert values[("bmi_model_predictions_logged", label)] == 60
    assert values[("bmi_model_outcomes", label)] == 60
    assert values[("bmi_model_live_r2", label)] == pytest.approx(quality.r2)
    assert values[("bmi_model_live_mae", label)] == pytest.approx(quality.mae)
    assert values[("bmi_model_drift_psi", label)] == pytest.approx(quality.psi)


def test_quality_gauges_count_batch_items_and_their_outcomes(
    client, staff_user, active_version, log_predictions, log_batch, record_batch_outcomes, diabetes
):
    log_predictions(active_version, diabetes.X_train[:20])
    batch = log_batch(active_version, diabetes.X_train[20:60])
    record_batch_outcomes(batch, dict(enumerate(diabetes.y_train[20:50])))
    client.force_login(staff_user)
    values = scrape(client.get("/metrics"))
    label = (("model_version", str(active_version.version)),)
    assert values[("bmi_model_predictions_logged", label)] == 60
    assert values[("bmi_model_outcomes", label)] == 30
    observed = diabetes.y_train[20:50]
    served = active_version.slope * diabetes.X_train[20:50] + active_version.intercept
    r2 = 1 - np.sum((observed - served) ** 2) / np.sum((observed - observed.mean()) ** 2)
    assert values[("bmi_model_live_r2", label)] == pytest.approx(r2, rel=1e-9)


def test_quality_gauges_are_cached_for_the_configured_time(active_version, log_predictions):
    collector = metrics.ModelQualityCollector(cache_seconds=3600)

    def logged() -> float:
        family = next(f for f in collector.collect() if f.name == "bmi_model_predictions_logged")
        return family.samples[0].value

    log_predictions(active_version, [25.0])
    assert logged() == 1
    log_predictions(active_version, [26.0, 27.0])
    assert logged() == 1  # still the cached figure: scrapes do not rerun the queries
    fresh = metrics.ModelQualityCollector(cache_seconds=0)
    family = next(f for f in fresh.collect() if f.name == "bmi_model_predictions_logged")
    assert family.samples[0].value == 3


def test_metrics_refused_to_staff_without_the_log_permission(client, view_only_staff):
    client.force_login(view_only_staff)
    response = client.get("/metrics")
    assert response.status_code == 403
    text = response.content.decode()
    assert "predictor.view_predictionlog" in text
    assert "Your account is staff but lacks" in text
    assert "permission /metrics needs." in text


TASK_IP_HOST = "10.0.3.17:8000"  # an ECS task's private address: never in ALLOWED_HOSTS


def test_a_scrape_by_task_ip_with_the_token_is_answered_before_host_validation_and_redirect(client, settings, db):
    settings.PREDICTOR_METRICS_TOKEN = "scrape-secret"
    settings.SECURE_SSL_REDIRECT = True
    response = client.get("/metrics", HTTP_HOST=TASK_IP_HOST, headers={"Authorization": "Bearer scrape-secret"})
    assert scrape(response)[("bmi_model_quality_up", ())] == 1
    # Without the token the request takes the normal path, where the host is refused.
    assert client.get("/metrics", HTTP_HOST=TASK_IP_HOST).status_code == 400


def test_a_scrape_from_an_allowed_network_by_task_ip(client, settings, db):
    settings.PREDICTOR_METRICS_ALLOWED_IPS = ["10.0.0.0/16"]
    scrape(client.get("/metrics", HTTP_HOST=TASK_IP_HOST, REMOTE_ADDR="10.0.200.9"))
    assert client.get("/metrics", REMOTE_ADDR="10.1.0.9").status_code == 403


def test_scrapes_are_not_counted_as_traffic(client, settings, db):
    settings.PREDICTOR_METRICS_TOKEN = "scrape-secret"
    before = sample("bmi_http_requests_total", method="GET", route="metrics", status="200")
    scrape(client.get("/metrics", headers={"Authorization": "Bearer scrape-secret"}))
    assert sample("bmi_http_requests_total", method="GET", route="metrics", status="200") == before


def test_https_redirect_exempts_metrics(settings):
    assert any(re.search(pattern, "metrics") for pattern in settings.SECURE_REDIRECT_EXEMPT)


def test_rollup_age_is_absent_before_the_first_fold_then_counts_from_it(client, staff_user, active_version):
    client.force_login(staff_user)
    assert ("bmi_monitoring_rollup_age_seconds", ()) not in scrape(client.get("/metrics"))
    rollups.rollups_fold()
    age = scrape(client.get("/metrics"))[("bmi_monitoring_rollup_age_seconds", ())]
    assert 0 <= age < 60
