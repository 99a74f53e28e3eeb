"""POST /api/v1/predictions/{id}/outcome: one endpoint for a single prediction and for an item of a batch.

Accounts with predictor.add_outcome only; once per prediction; ``observed`` validated; ``position``
optional for a single prediction (an entry of size 1), required for a batch of more than one.
"""

from __future__ import annotations

import psycopg2
import psycopg2.errors
import pytest
from django.contrib.auth.models import AnonymousUser
from django.db import connection, transaction

from predictor.models import Outcome
from predictor.predictions import services


def url(prediction_id) -> str:
    return f"/api/v1/predictions/{prediction_id}/outcome"


@pytest.fixture
def logged(active_version, log_predictions):
    return log_predictions(active_version, [30.0])[0]


@pytest.fixture
def batch(active_version, log_batch):
    return log_batch(active_version, [22.0, 30.0, 41.0])


@pytest.fixture
def clinician(api_client, clinician_user):
    api_client.force_authenticate(clinician_user)
    return api_client


def post(client, prediction_id, body):
    return client.post(url(prediction_id), body, format="json")


# --- A single prediction ---


@pytest.mark.parametrize(
    ("entry", "extra", "position"),
    [("logged", {}, 0), ("batch", {"position": 2}, 2)],
    ids=["single prediction", "batch item"],
)
def test_outcome_is_recorded_with_who_and_when(request, clinician, clinician_user, entry, extra, position):
    entry = request.getfixturevalue(entry)
    response = post(clinician, entry.pk, {"observed": 151.0, **extra})
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["prediction_id"] == entry.pk
    assert body["position"] == position
    assert body["observed"] == 151.0
    assert body["recorded_by"] == "clinician"
    assert body["source"] == "api"
    assert body["recorded_at"]
    outcome = Outcome.objects.get()
    assert (outcome.log_id, outcome.position, outcome.observed) == (entry.pk, position, 151.0)
    assert outcome.recorded_by == clinician_user


def test_a_single_prediction_may_give_its_position_0(clinician, logged):
    response = post(clinician, logged.pk, {"observed": 151.0, "position": 0})
    assert response.status_code == 201, response.content
    assert Outcome.objects.get().position == 0


@pytest.mark.parametrize("position", [1, 7])
def test_a_single_prediction_has_no_other_position(clinician, logged, position):
    response = post(clinician, logged.pk, {"observed": 151.0, "position": position})
    assert response.status_code == 400
    error = response.json()["error"]
    assert list(error["fields"]) == ["position"]
    assert f"Prediction {logged.pk} is a single prediction: its only position is 0." in error["message"]
    assert not Outcome.objects.exists()


def test_anonymous_caller_is_refused_and_nothing_is_written(api_client, logged):
    response = post(api_client, logged.pk, {"observed": 151.0})
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Token")
    assert not Outcome.objects.exists()


def test_signed_in_user_without_the_add_outcome_permission_is_refused(api_client, plain_user, logged):
    api_client.force_authenticate(plain_user)
    response = post(api_client, logged.pk, {"observed": 151.0})
    assert response.status_code == 403
    assert "predictor.add_outcome" in response.json()["error"]["message"]
    assert not Outcome.objects.exists()


@pytest.mark.parametrize("offset", [1000, 2**70])
def test_unknown_prediction_is_404(clinician, logged, offset):
    unknown = logged.pk + offset
    response = post(clinician, unknown, {"observed": 151.0})
    assert response.status_code == 404
    assert response.json()["error"]["message"] == f"Prediction {unknown} does not exist."
    assert not Outcome.objects.exists()


@pytest.mark.parametrize("path", ["not-a-number", "-1", "1.5"])
def test_malformed_prediction_id_is_404(clinician, logged, path):
    response = post(clinician, path, {"observed": 151.0})
    assert response.status_code == 404
    assert not Outcome.objects.exists()


def test_second_outcome_is_409_and_keeps_the_first(clinician, logged):
    assert post(clinician, logged.pk, {"observed": 151.0}).status_code == 201
    response = post(clinician, logged.pk, {"observed": 99.0, "position": 0})
    assert response.status_code == 409
    assert response.json()["error"]["message"] == f"Prediction {logged.pk} already has an observed outcome."
    assert Outcome.objects.get().observed == 151.0


BAD_OBSERVED = [
    ({"observed": 1000.5}, "between 0 and 1000"),
    ({"observed": -1}, "between 0 and 1000"),
    ({"observed": "151"}, "Must be a JSON number"),
    ({"observed": True}, "Must be a JSON number"),
    ({"observed": None}, "null"),
    ({}, "required"),
]


@pytest.mark.parametrize(
    ("payload", "reason"),
    [*BAD_OBSERVED, ({"observed": 151, "note": "x"}, "note: Unknown field; this endpoint takes: observed, position.")],
)
def test_bad_observed_value_is_400_naming_the_field(clinician, logged, payload, reason):
    response = post(clinician, logged.pk, payload)
    assert response.status_code == 400
    text = response.content.decode()
    assert "observed" in text
    assert reason in text
    assert not Outcome.objects.exists()


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e400"])
def test_non_finite_observed_value_is_400(clinician, logged, batch, literal):
    for prediction_id, position in [(logged.pk, ""), (batch.pk, ', "position": 0')]:
        body = '{"observed": ' + literal + position + "}"
        response = clinician.post(url(prediction_id), body, content_type="application/json")
        assert response.status_code == 400
    assert not Outcome.objects.exists()


def test_range_comes_from_settings(clinician, logged, settings):
    settings.PREDICTOR_OUTCOME_MAX = 346.0
    response = post(clinician, logged.pk, {"observed": 400.0})
    assert response.status_code == 400
    assert "between 0 and 346" in response.content.decode()


# --- An item of a batch: the same endpoint with the item's position ---


def test_first_and_last_positions_are_accepted(clinician, batch):
    assert post(clinician, batch.pk, {"observed": 100.0, "position": 0}).status_code == 201
    assert post(clinician, batch.pk, {"observed": 200.0, "position": 2}).status_code == 201
    assert sorted(Outcome.objects.values_list("position", "observed")) == [(0, 100.0), (2, 200.0)]


def test_a_batch_item_needs_its_position(clinician, batch):
    response = post(clinician, batch.pk, {"observed": 151.0})
    assert response.status_code == 400
    error = response.json()["error"]
    assert list(error["fields"]) == ["position"]
    assert f"Prediction {batch.pk} is a batch of 3: give the position (0 to 2) of the one observed." in error["message"]
    assert not Outcome.objects.exists()


@pytest.mark.parametrize("position", [3, 4, 2**31 - 1])
def test_position_past_the_end_of_the_batch_is_400_naming_the_position(clinician, batch, position):
    response = post(clinician, batch.pk, {"observed": 151.0, "position": position})
    assert response.status_code == 400
    error = response.json()["error"]
    assert list(error["fields"]) == ["position"]
    assert f"Prediction {batch.pk} is a batch of 3: its positions are 0 to 2." in error["message"]
    assert not Outcome.objects.exists()


@pytest.mark.parametrize(
    ("position", "reason"),
    [
        (-1, "greater than or equal to 0"),
        (2**70, "less than or equal to"),
        ("1", "Must be a JSON integer"),
        (1.5, "Must be a JSON integer"),
        (True, "Must be a JSON integer"),
        (None, "null"),
    ],
)
def test_malformed_position_is_400_naming_the_position(clinician, batch, position, reason):
    response = post(clinician, batch.pk, {"observed": 151.0, "position": position})
    assert response.status_code == 400
    error = response.json()["error"]
    assert list(error["fields"]) == ["position"]
    assert reason in error["message"]
    assert not Outcome.objects.exists()


def test_a_whole_number_position_written_as_a_decimal_is_accepted(clinician, batch):
    # JSON's number model: 1.0 is the integer 1.
    assert post(clinician, batch.pk, {"observed": 151.0, "position": 1.0}).status_code == 201
    assert Outcome.objects.get().position == 1


def test_second_outcome_of_a_batch_item_is_409_and_keeps_the_first(clinician, batch):
    assert post(clinician, batch.pk, {"observed": 151.0, "position": 1}).status_code == 201
    response = post(clinician, batch.pk, {"observed": 99.0, "position": 1})
    assert response.status_code == 409
    message = response.json()["error"]["message"]
    assert message == f"Prediction 1 of batch {batch.pk} already has an observed outcome."
    assert Outcome.objects.get().observed == 151.0
    # Another item of the same batch is still open.
    assert post(clinician, batch.pk, {"observed": 99.0, "position": 0}).status_code == 201


@pytest.mark.parametrize(("payload", "reason"), BAD_OBSERVED)
def test_bad_observed_value_of_a_batch_item_is_400_naming_the_field(clinician, batch, payload, reason):
    response = post(clinician, batch.pk, {**payload, "position": 0})
    assert response.status_code == 400
    text = response.content.decode()
    assert "observed" in text
    assert reason in text
    assert not Outcome.objects.exists()


def test_anonymous_and_unpermitted_callers_cannot_record_a_batch_item(api_client, plain_user, batch):
    assert post(api_client, batch.pk, {"observed": 151.0, "position": 0}).status_code == 401
    api_client.force_authenticate(plain_user)
    assert post(api_client, batch.pk, {"observed": 151.0, "position": 0}).status_code == 403
    assert not Outcome.objects.exists()


def test_openapi_schema_documents_the_outcome_and_monitoring_endpoints(api_client, staff_user):
    api_client.force_authenticate(staff_user)
    response = api_client.get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    schema = response.json()
    paths = schema["paths"]
    assert not any(path.startswith("/api/v1/batches") for path in paths)
    outcome = paths["/api/v1/predictions/{prediction_id}/outcome"]["post"]
    assert {"201", "400", "401", "403", "404", "409"} <= set(outcome["responses"])
    parameters = {p["name"]: p["schema"] for p in outcome["parameters"]}
    assert parameters["prediction_id"]["type"] == "integer"
    request = outcome["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    assert request.endswith("/OutcomeInputRequest")
    properties = schema["components"]["schemas"]["OutcomeInputRequest"]["properties"]
    observed, position = properties["observed"], properties["position"]
    assert (observed["type"], observed["minimum"], observed["maximum"]) == ("number", 0.0, 1000.0)
    assert (position["type"], position["minimum"]) == ("integer", 0)
    assert schema["components"]["schemas"]["OutcomeInputRequest"]["required"] == ["observed"]
    monitoring = paths["/api/v1/models/{version}/monitoring"]["get"]
    assert {"200", "401", "403", "404"} <= set(monitoring["responses"])


# --- The service itself: the rules the API and the import share ---


@pytest.mark.parametrize("prediction_id", [0, -5, 2**63])
def test_service_refuses_an_id_no_entry_can_have(batch, prediction_id):
    with pytest.raises(services.PredictionNotFound, match=f"Prediction {prediction_id} does not exist."):
        services.outcome_record(prediction_id=prediction_id, observed=150.0)


def test_service_validates_observed_before_anything_else(batch):
    with pytest.raises(services.InvalidOutcome, match="outside the plausible range") as caught:
        services.outcome_record(prediction_id=batch.pk + 1000, position=99, observed=5000.0)
    assert caught.value.field == "observed"
    assert not Outcome.objects.exists()


def test_service_names_the_position_when_it_is_at_fault(batch):
    with pytest.raises(services.InvalidOutcome) as caught:
        services.outcome_record(prediction_id=batch.pk, position=3, observed=150.0)
    assert caught.value.field == "position"


def test_service_records_the_source_and_no_user_for_an_anonymous_caller(batch):
    outcome = services.outcome_record(
        prediction_id=batch.pk, position=1, observed=140.0, user=AnonymousUser(), source="clinic"
    )
    assert (outcome.log_id, outcome.position, outcome.source, outcome.recorded_by) == (batch.pk, 1, "clinic", None)


def test_the_entry_stays_locked_against_a_delete_until_the_outcome_commits(transactional_db, train_version, log_batch):
    # A prune deleting the entry between the size check and the insert would leave an outcome
    # pointing past a deleted entry; the row lock makes such a delete wait for the commit.
    batch = log_batch(train_version(promote=True), [25.0, 30.0])
    db = connection.settings_dict
    other = psycopg2.connect(
        dbname=db["NAME"], user=db["USER"], password=db["PASSWORD"] or None, host=db["HOST"], port=db["PORT"] or 5432
    )
    try:
        with transaction.atomic():
            services.outcome_record(prediction_id=batch.pk, position=1, observed=150.0)
            with other.cursor() as cursor:
                cursor.execute("SET lock_timeout = '300ms'")
                with pytest.raises(psycopg2.errors.LockNotAvailable):
                    cursor.execute("DELETE FROM predictor_predictionlog WHERE id = %s", [batch.pk])
            other.rollback()
    finally:
        other.close()
    assert Outcome.objects.get().position == 1
