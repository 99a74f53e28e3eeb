"""POST /api/v1/predictions/{id}/outcome: accounts with predictor.add_outcome, once per prediction, validated."""

from __future__ import annotations

import pytest

from predictor.models import Outcome


def url(prediction_id: int) -> str:
    return f"/api/v1/predictions/{prediction_id}/outcome"


@pytest.fixture
def logged(active_version, log_predictions):
    return log_predictions(active_version, [30.0])[0]


def test_outcome_is_recorded_with_who_and_when(api_client, clinician_user, logged):
    api_client.force_authenticate(clinician_user)
    response = api_client.post(url(logged.pk), {"observed": 151.0}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["prediction_id"] == logged.pk
    assert body["observed"] == 151.0
    assert body["recorded_by"] == "clinician"
    assert body["source"] == "api"
    outcome = Outcome.objects.get(pk=logged.pk)
    assert outcome.observed == 151.0
    assert outcome.recorded_by == clinician_user


def test_anonymous_caller_is_refused_and_nothing_is_written(api_client, logged):
    response = api_client.post(url(logged.pk), {"observed": 151.0}, format="json")
    assert response.status_code in (401, 403)
    assert not Outcome.objects.exists()


def test_signed_in_user_without_the_add_outcome_permission_is_refused(api_client, plain_user, logged):
    api_client.force_authenticate(plain_user)
    response = api_client.post(url(logged.pk), {"observed": 151.0}, format="json")
    assert response.status_code == 403
    assert "predictor.add_outcome" in response.json()["error"]["message"]
    assert not Outcome.objects.exists()


def test_unknown_prediction_is_404(api_client, clinician_user, logged):
    api_client.force_authenticate(clinician_user)
    response = api_client.post(url(logged.pk + 1000), {"observed": 151.0}, format="json")
    assert response.status_code == 404
    assert f"{logged.pk + 1000}" in response.content.decode()
    assert not Outcome.objects.exists()


def test_second_outcome_is_409_and_keeps_the_first(api_client, clinician_user, logged):
    api_client.force_authenticate(clinician_user)
    assert api_client.post(url(logged.pk), {"observed": 151.0}, format="json").status_code == 201
    response = api_client.post(url(logged.pk), {"observed": 99.0}, format="json")
    assert response.status_code == 409
    assert "already has an observed outcome" in response.content.decode()
    assert Outcome.objects.get(pk=logged.pk).observed == 151.0


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        ({"observed": 1000.5}, "between 0 and 1000"),
        ({"observed": -1}, "between 0 and 1000"),
        ({"observed": "151"}, "Must be a JSON number"),
        ({"observed": True}, "Must be a JSON number"),
        ({"observed": None}, "null"),
        ({}, "required"),
        ({"observed": 151, "note": "x"}, "note: Unknown field; this endpoint takes: observed."),
    ],
)
def test_bad_observed_value_is_400_naming_the_field(api_client, clinician_user, logged, payload, reason):
    api_client.force_authenticate(clinician_user)
    response = api_client.post(url(logged.pk), payload, format="json")
    assert response.status_code == 400
    text = response.content.decode()
    assert "observed" in text
    assert reason in text
    assert not Outcome.objects.exists()


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e400"])
def test_non_finite_observed_value_is_400(api_client, clinician_user, logged, literal):
    api_client.force_authenticate(clinician_user)
    body = '{"observed": ' + literal + "}"
    response = api_client.post(url(logged.pk), body, content_type="application/json")
    assert response.status_code == 400
    assert not Outcome.objects.exists()


def test_range_comes_from_settings(api_client, clinician_user, logged, settings):
    settings.PREDICTOR_OUTCOME_MAX = 346.0
    api_client.force_authenticate(clinician_user)
    response = api_client.post(url(logged.pk), {"observed": 400.0}, format="json")
    assert response.status_code == 400
    assert "between 0 and 346" in response.content.decode()


def test_openapi_schema_documents_the_monitoring_endpoints(api_client, staff_user):
    api_client.force_authenticate(staff_user)
    response = api_client.get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    paths = response.json()["paths"]
    outcome = paths["/api/v1/predictions/{prediction_id}/outcome"]["post"]
    assert {"201", "400", "401", "404", "409"} <= set(outcome["responses"])
    observed = response.json()["components"]["schemas"]["OutcomeInputRequest"]["properties"]["observed"]
    assert (observed["type"], observed["minimum"], observed["maximum"]) == ("number", 0.0, 1000.0)
    monitoring = paths["/api/v1/models/{version}/monitoring"]["get"]
    assert {"200", "401", "403", "404"} <= set(monitoring["responses"])
