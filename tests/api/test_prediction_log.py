"""GET /api/v1/predictions: the staff view of the log of single predictions, filters and pages.

Batches are logged apart, one row each, and read at /api/v1/batches (tests/api/test_batch_log.py).
"""

import datetime as dt

import pytest
from django.utils import timezone

from predictor import services, serving
from predictor.models import PredictionLog

URL = "/api/v1/predictions"
pytestmark = pytest.mark.django_db


@pytest.fixture
def logged(active_version, train_version):
    """Three single predictions and a batch of two on the first version, one on a second version.

    The batch is logged as a batch, not in this log: no request here may see its BMIs (22, 33).
    """
    for bmi in (20.0, 25.0, 30.0):
        serving.predict_one(bmi, channel="api")
    batch = serving.predict_batch([22.0, 33.0])
    second = train_version(promote=False, random_state=1)
    services.model_version_promote(version=second.version, actor_name="test")
    serving.predict_one(40.0, channel="web")
    return {"first": active_version, "second": second, "batch_id": batch.batch_id}


def test_lists_newest_first_with_fields(staff_token_client, logged):
    response = staff_token_client.get(URL)

    assert response.status_code == 200
    results = response.json()["results"]
    assert [r["bmi"] for r in results] == [40.0, 30.0, 25.0, 20.0]
    assert set(results[0]) == {"id", "created_at", "model_version", "bmi", "prediction", "channel"}
    assert results[0]["model_version"] == logged["second"].version


@pytest.mark.parametrize(
    ("query", "expected_bmis"),
    [
        ("channel=api", [30.0, 25.0, 20.0]),
        ("channel=web", [40.0]),
        ("version={first}", [30.0, 25.0, 20.0]),
        ("version={second}&channel=web", [40.0]),
        ("version={first}&channel=web", []),
        ("version=999", []),
    ],
)
def test_filters(staff_token_client, logged, query, expected_bmis):
    query = query.format(first=logged["first"].version, second=logged["second"].version)

    response = staff_token_client.get(f"{URL}?{query}")

    assert response.status_code == 200
    assert [r["bmi"] for r in response.json()["results"]] == expected_bmis


def test_time_range_filter(staff_token_client, logged):
    old = PredictionLog.objects.get(bmi=20.0)
    PredictionLog.objects.filter(pk=old.pk).update(created_at=timezone.now() - dt.timedelta(days=10))
    since = (timezone.now() - dt.timedelta(days=1)).isoformat()
    until = (timezone.now() - dt.timedelta(days=5)).strftime("%Y-%m-%dT%H:%M:%SZ")

    recent = staff_token_client.get(URL, {"since": since})
    older = staff_token_client.get(URL, {"until": until})

    assert 20.0 not in [r["bmi"] for r in recent.json()["results"]]
    assert len(recent.json()["results"]) == 3
    assert [r["bmi"] for r in older.json()["results"]] == [20.0]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("version=abc", "version"),
        ("version=0", "version"),
        ("channel=sms", "channel"),
        ("since=yesterday", "since"),
        ("until=2025-13-01T00:00:00Z", "until"),
        ("batch_id=not-a-uuid", "batch_id"),
        ("since=2025-02-01T00:00:00Z&until=2025-01-01T00:00:00Z", "until"),
    ],
)
def test_bad_filter_is_a_400_naming_the_parameter(staff_token_client, logged, query, field):
    response = staff_token_client.get(f"{URL}?{query}")

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["message"].startswith(f"{field}: ")
    assert field in error["fields"]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("channel=batch", "channel"),
        ("batch_id={batch_id}", "batch_id"),
        ("version={first}&batch_id={batch_id}", "batch_id"),
    ],
)
def test_asking_the_log_for_batches_is_a_400_that_says_where_they_went(staff_token_client, logged, query, field):
    # Ignoring a batch_id would answer with every single prediction; the caller must hear the news.
    query = query.format(first=logged["first"].version, batch_id=logged["batch_id"])

    response = staff_token_client.get(f"{URL}?{query}")

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid"
    assert error["message"].startswith(f"{field}: Batches are no longer rows of the prediction log")
    assert "/api/v1/batches" in error["message"]
    assert set(error["fields"]) == {field}


def test_channel_batch_and_batch_id_together_name_both(staff_token_client, logged):
    response = staff_token_client.get(URL, {"channel": "batch", "batch_id": str(logged["batch_id"])})

    assert response.status_code == 400
    fields = response.json()["error"]["fields"]
    assert set(fields) == {"channel", "batch_id"}
    assert "/api/v1/batches/<batch_id>" in fields["batch_id"][0]


def test_pages_through_the_log_with_a_cursor(staff_token_client, logged):
    first = staff_token_client.get(URL, {"page_size": 3}).json()
    second = staff_token_client.get(first["next"]).json()

    assert len(first["results"]) == 3
    assert len(second["results"]) == 1
    assert second["next"] is None
    seen = [r["id"] for r in first["results"] + second["results"]]
    assert seen == sorted(seen, reverse=True)
    assert len(set(seen)) == 4


@pytest.mark.parametrize("position", ["1e5", "abc", "-1", "1; DROP TABLE x"])
def test_forged_cursor_position_is_a_404_not_a_500(staff_token_client, logged, position):
    import base64
    from urllib.parse import urlencode

    forged = base64.b64encode(urlencode({"p": position}).encode()).decode()
    response = staff_token_client.get(URL, {"cursor": forged})

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_bad_cursor_is_a_404(staff_token_client, logged):
    response = staff_token_client.get(URL, {"cursor": "garbage"})

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


@pytest.mark.parametrize("page_size", ["0", "-1", "abc", "1001", "2.5"])
@pytest.mark.parametrize("url", [URL, "/api/v1/batches", "/api/v1/models"])
def test_a_bad_page_size_is_a_400_naming_it(staff_token_client, active_version, url, page_size):
    # DRF would quietly serve its default page instead of the size the client asked for.
    response = staff_token_client.get(url, {"page_size": page_size})
    assert response.status_code == 400
    assert response.json()["error"]["message"] == "page_size: Must be a whole number from 1 to 1000."
