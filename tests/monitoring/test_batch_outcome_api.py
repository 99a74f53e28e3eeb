"""POST /api/v1/batches/{batch_id}/predictions/{position}/outcome: as for a single prediction, per batch item."""

from __future__ import annotations

import uuid

import psycopg2
import psycopg2.errors
import pytest
from django.db import connection, transaction

from predictor.models import BatchOutcome
from predictor.monitoring import services


def url(batch_id, position: int) -> str:
    return f"/api/v1/batches/{batch_id}/predictions/{position}/outcome"


@pytest.fixture
def batch(active_version, log_batch):
    return log_batch(active_version, [22.0, 30.0, 41.0])


def test_outcome_of_a_batch_item_is_recorded_with_who_and_when(api_client, clinician_user, batch):
    api_client.force_authenticate(clinician_user)
    response = api_client.post(url(batch.pk, 2), {"observed": 151.0}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["batch_id"] == str(batch.pk)
    assert body["position"] == 2
    assert body["observed"] == 151.0
    assert body["recorded_by"] == "clinician"
    assert body["source"] == "api"
    assert body["recorded_at"]
    outcome = BatchOutcome.objects.get()
    assert (outcome.batch_id, outcome.position, outcome.observed) == (batch.pk, 2, 151.0)
    assert outcome.recorded_by == clinician_user


def test_first_and_last_positions_are_accepted(api_client, clinician_user, batch):
    api_client.force_authenticate(clinician_user)
    assert api_client.post(url(batch.pk, 0), {"observed": 100.0}, format="json").status_code == 201
    assert api_client.post(url(batch.pk, 2), {"observed": 200.0}, format="json").status_code == 201
    assert sorted(BatchOutcome.objects.values_list("position", "observed")) == [(0, 100.0), (2, 200.0)]


def test_anonymous_caller_is_refused_and_nothing_is_written(api_client, batch):
    response = api_client.post(url(batch.pk, 0), {"observed": 151.0}, format="json")
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Token")
    assert not BatchOutcome.objects.exists()


def test_signed_in_user_without_the_add_outcome_permission_is_refused(api_client, plain_user, batch):
    api_client.force_authenticate(plain_user)
    response = api_client.post(url(batch.pk, 0), {"observed": 151.0}, format="json")
    assert response.status_code == 403
    assert "predictor.add_outcome" in response.json()["error"]["message"]
    assert not BatchOutcome.objects.exists()


def test_unknown_batch_is_404(api_client, clinician_user, batch):
    api_client.force_authenticate(clinician_user)
    unknown = uuid.uuid4()
    response = api_client.post(url(unknown, 0), {"observed": 151.0}, format="json")
    assert response.status_code == 404
    assert f"Batch {unknown} does not exist." in response.json()["error"]["message"]
    assert not BatchOutcome.objects.exists()


@pytest.mark.parametrize("position", [3, 4, 2**70])
def test_position_past_the_end_of_the_batch_is_404(api_client, clinician_user, batch, position):
    api_client.force_authenticate(clinician_user)
    response = api_client.post(url(batch.pk, position), {"observed": 151.0}, format="json")
    assert response.status_code == 404
    message = response.json()["error"]["message"]
    assert f"no prediction at position {position}" in message
    assert "positions 0 to 2" in message
    assert not BatchOutcome.objects.exists()


@pytest.mark.parametrize("path", ["not-a-uuid/predictions/0", "{batch}/predictions/-1", "{batch}/predictions/x"])
def test_malformed_batch_id_or_position_is_404(api_client, clinician_user, batch, path):
    api_client.force_authenticate(clinician_user)
    response = api_client.post(f"/api/v1/batches/{path.format(batch=batch.pk)}/outcome", {"observed": 1}, format="json")
    assert response.status_code == 404
    assert not BatchOutcome.objects.exists()


def test_second_outcome_is_409_and_keeps_the_first(api_client, clinician_user, batch):
    api_client.force_authenticate(clinician_user)
    assert api_client.post(url(batch.pk, 1), {"observed": 151.0}, format="json").status_code == 201
    response = api_client.post(url(batch.pk, 1), {"observed": 99.0}, format="json")
    assert response.status_code == 409
    assert f"Prediction 1 of batch {batch.pk} already has an observed outcome." in response.json()["error"]["message"]
    assert BatchOutcome.objects.get().observed == 151.0


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        ({"observed": 1000.5}, "between 0 and 1000"),
        ({"observed": -1}, "between 0 and 1000"),
        ({"observed": "151"}, "Must be a JSON number"),
        ({"observed": True}, "Must be a JSON number"),
        ({"observed": None}, "null"),
        ({}, "required"),
    ],
)
def test_bad_observed_value_is_400_naming_the_field(api_client, clinician_user, batch, payload, reason):
    api_client.force_authenticate(clinician_user)
    response = api_client.post(url(batch.pk, 0), payload, format="json")
    assert response.status_code == 400
    text = response.content.decode()
    assert "observed" in text
    assert reason in text
    assert not BatchOutcome.objects.exists()


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e400"])
def test_non_finite_observed_value_is_400(api_client, clinician_user, batch, literal):
    api_client.force_authenticate(clinician_user)
    body = '{"observed": ' + literal + "}"
    response = api_client.post(url(batch.pk, 0), body, content_type="application/json")
    assert response.status_code == 400
    assert not BatchOutcome.objects.exists()


def test_openapi_schema_documents_the_batch_outcome_endpoint(api_client, staff_user):
    api_client.force_authenticate(staff_user)
    response = api_client.get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    operation = response.json()["paths"]["/api/v1/batches/{batch_id}/predictions/{position}/outcome"]["post"]
    assert {"201", "400", "401", "403", "404", "409"} <= set(operation["responses"])
    parameters = {p["name"]: p["schema"] for p in operation["parameters"]}
    assert parameters["batch_id"] == {"type": "string", "format": "uuid"}
    assert parameters["position"]["type"] == "integer"
    request = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    assert request.endswith("/OutcomeInputRequest")


# --- The service itself: the rules the API and the import share ---


def test_service_refuses_a_batch_id_that_is_not_a_uuid(batch):
    with pytest.raises(services.PredictionNotFound, match="a batch id is a UUID"):
        services.batch_outcome_record(batch_id="nope", position=0, observed=150.0)


def test_service_validates_observed_before_anything_else(batch):
    with pytest.raises(services.InvalidObserved, match="outside the plausible range"):
        services.batch_outcome_record(batch_id=batch.pk, position=0, observed=5000.0)
    assert not BatchOutcome.objects.exists()


def test_service_accepts_the_batch_id_as_text(batch):
    outcome = services.batch_outcome_record(batch_id=str(batch.pk), position=1, observed=140.0, source="clinic")
    assert (outcome.batch_id, outcome.position, outcome.source) == (batch.pk, 1, "clinic")


def test_the_batch_stays_locked_against_a_delete_until_the_outcome_commits(transactional_db, train_version, log_batch):
    # A prune deleting the batch between the size check and the insert would leave an outcome
    # pointing past a deleted batch; the row lock makes such a delete wait for the commit.
    batch = log_batch(train_version(promote=True), [25.0, 30.0])
    db = connection.settings_dict
    other = psycopg2.connect(
        dbname=db["NAME"], user=db["USER"], password=db["PASSWORD"] or None, host=db["HOST"], port=db["PORT"] or 5432
    )
    try:
        with transaction.atomic():
            services.batch_outcome_record(batch_id=batch.pk, position=1, observed=150.0)
            with other.cursor() as cursor:
                cursor.execute("SET lock_timeout = '300ms'")
                with pytest.raises(psycopg2.errors.LockNotAvailable):
                    cursor.execute("DELETE FROM predictor_predictionbatch WHERE id = %s", [str(batch.pk)])
            other.rollback()
    finally:
        other.close()
    assert BatchOutcome.objects.get().position == 1
