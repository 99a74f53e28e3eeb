"""The outcome page: a clinician finds a prediction by its reference and records what was observed."""

import html as html_lib
import re

import pytest

from predictor.predictions import serving
from predictor.predictions.models import Outcome

URL = "/outcomes/"


@pytest.fixture
def clinician(client, clinician_user):
    client.force_login(clinician_user)
    return client


def alert_texts(html: str) -> list[str]:
    return [
        html_lib.unescape(re.sub(r"<[^>]+>", "", m)).strip() for m in re.findall(r'role="alert">(.*?)</p>', html, re.S)
    ]


def test_a_clinician_records_the_outcome_of_a_single_prediction_and_sees_it_confirmed(
    clinician, clinician_user, active_version
):
    logged = serving.predict([27.5], channel="web")
    page = clinician.get(URL, {"reference": f"#{logged.log_id}"})
    html = page.content.decode()
    assert page.status_code == 200
    assert f"Reference #{logged.log_id}" in html
    assert f"{logged.predictions[0]:.1f}" in html
    posted = clinician.post(f"{URL}?reference={logged.log_id}", {"observed": "180,5"})
    assert posted.status_code == 303
    assert posted["Location"] == f"{URL}?reference={logged.log_id}&recorded=0#confirmation"
    outcome = Outcome.objects.get()
    assert (outcome.log_id, outcome.position, outcome.observed) == (logged.log_id, 0, 180.5)
    assert (outcome.recorded_by, outcome.source) == (clinician_user, "web")
    confirmed = clinician.get(posted["Location"]).content.decode()
    assert "Outcome recorded." in confirmed and 'role="status"' in confirmed
    assert "observed 180.5" in confirmed
    # Done: no second form is offered.
    assert 'name="observed"' not in confirmed


def test_a_second_outcome_for_the_same_prediction_is_refused_with_the_existing_rule(clinician, active_version):
    logged = serving.predict([27.5], channel="web")
    clinician.post(f"{URL}?reference={logged.log_id}", {"observed": "180"})
    again = clinician.post(f"{URL}?reference={logged.log_id}", {"observed": "150"})
    assert again.status_code == 409
    assert any("already has an observed outcome" in text for text in alert_texts(again.content.decode()))
    assert list(Outcome.objects.values_list("observed", flat=True)) == [180.0]


def test_a_batch_needs_the_position_and_the_service_checks_its_range(clinician, active_version):
    batch = serving.predict([25.0, 30.0, 35.0], channel="batch")
    url = f"{URL}?reference={batch.log_id}"
    missing = clinician.post(url, {"observed": "200"})
    assert missing.status_code == 400
    assert "Error: Enter the position, 0 to 2." in alert_texts(missing.content.decode())
    outside = clinician.post(url, {"observed": "200", "position": "3"})
    assert outside.status_code == 400
    assert any("its positions are 0 to 2" in text for text in alert_texts(outside.content.decode()))
    assert clinician.post(url, {"observed": "200", "position": "2"}).status_code == 303
    assert list(Outcome.objects.values_list("position", "observed")) == [(2, 200.0)]


@pytest.mark.parametrize(
    ("reference", "status", "message"),
    [
        ("abc", 400, "Enter the reference as a number, for example 146."),
        ("", 400, "Enter the prediction's reference, for example 146."),
        ("999999", 404, "No prediction has the reference #999999."),
    ],
)
def test_an_unknown_or_malformed_reference_is_named_beside_the_field(clinician, db, reference, status, message):
    response = clinician.get(URL, {"reference": reference})
    assert response.status_code == status
    html = response.content.decode()
    assert f"Error: {message}" in alert_texts(html)
    assert re.search(r'<input[^>]*name="reference"[^>]*autofocus', html)


@pytest.mark.parametrize(
    ("observed", "message"),
    [
        ("5000", "Enter the observed progression between 0 and 1000."),
        ("lots", "Enter the observed progression as a number"),
    ],
)
def test_an_implausible_observed_value_is_refused_and_nothing_recorded(clinician, active_version, observed, message):
    logged = serving.predict([27.5], channel="web")
    response = clinician.post(f"{URL}?reference={logged.log_id}", {"observed": observed})
    assert response.status_code == 400
    assert any(message in text for text in alert_texts(response.content.decode()))
    assert Outcome.objects.count() == 0


def test_the_navigation_offers_the_page_to_accounts_that_may_record_outcomes(client, clinician_user, plain_user, db):
    assert 'href="/outcomes/"' not in client.get("/login/").content.decode()
    client.force_login(clinician_user)
    assert 'href="/outcomes/"' in client.get("/login/").content.decode()
