"""GET /api/v1/predictions and /api/v1/predictions/<id>: the staff view of the one prediction log.

Every answered request is one entry, single predictions (channel api or web, an entry of one) and
batches (channel batch) alike: listed newest first by id with their BMIs and predictions, filtered,
paged by a cursor, and read back one at a time by the prediction_id or batch_id the caller got.
"""

import base64
import datetime as dt
from urllib.parse import urlencode

import numpy as np
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from predictor.api import serializers
from predictor.models import PredictionLog
from predictor.predictions import serving
from predictor.registry import services

URL = "/api/v1/predictions"
pytestmark = pytest.mark.django_db

NEWEST_FIRST = ["newest", "web40", "triple", "pair", "api30", "api25", "api20"]


def detail_url(prediction_id) -> str:
    return f"{URL}/{prediction_id}"


def _age(log_id: int, hours: float) -> None:
    # Inside a test's transaction PostgreSQL's now() does not move: every entry would share one time.
    PredictionLog.objects.filter(pk=log_id).update(created_at=timezone.now() - dt.timedelta(hours=hours))


def _iso(hours_ago: float) -> str:
    return (timezone.now() - dt.timedelta(hours=hours_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture
def logged(active_version, train_version):
    """Single predictions and batches on two versions, each entry older than the next.

    First version: api 20, 25, 30 (6, 5, 4 h old), a batch of two (3 h), a batch of three (2 h).
    Second version: a web prediction of 40 (1.25 h) and a batch of one (1 h).
    """
    entries = {
        "api20": serving.predict([20.0], channel="api"),
        "api25": serving.predict([25.0], channel="api"),
        "api30": serving.predict([30.0], channel="api"),
        "pair": serving.predict([22.0, 33.0], channel="batch"),
        "triple": serving.predict([18.5, 25.0, 40.0], channel="batch"),
    }
    second = train_version(promote=False, random_state=1)
    services.model_version_promote(version=second.version, actor_name="test")
    entries["web40"] = serving.predict([40.0], channel="web")
    entries["newest"] = serving.predict([30.0], channel="batch")
    hours = {"api20": 6, "api25": 5, "api30": 4, "pair": 3, "triple": 2, "web40": 1.25, "newest": 1}
    for name, result in entries.items():
        _age(result.log_id, hours[name])
    return {"first": active_version, "second": second, **entries}


def ids(logged, names) -> list[int]:
    return [logged[name].log_id for name in names]


# --- The list ----------------------------------------------------------------------------------------


def test_lists_single_predictions_and_batches_newest_first_with_their_values(staff_token_client, logged):
    response = staff_token_client.get(URL)

    assert response.status_code == 200
    results = response.json()["results"]
    assert [r["id"] for r in results] == ids(logged, NEWEST_FIRST)
    assert set(results[0]) == {
        "id",
        "created_at",
        "model_version",
        "channel",
        "count",
        "bmi",
        "predictions",
        "intervals",
    }
    assert [r["channel"] for r in results] == ["batch", "web", "batch", "batch", "api", "api", "api"]
    assert [r["count"] for r in results] == [1, 1, 3, 2, 1, 1, 1]
    first, second = logged["first"].version, logged["second"].version
    assert [r["model_version"] for r in results] == [second, second] + [first] * 5
    for entry, name in zip(results, NEWEST_FIRST, strict=True):
        # Exactly the BMIs sent and the floats answered, in input order.
        assert (entry["bmi"], entry["predictions"]) == (logged[name].bmi, logged[name].predictions), name


def test_a_single_prediction_is_an_entry_of_one(staff_token_client, logged):
    [entry] = staff_token_client.get(URL, {"channel": "web"}).json()["results"]

    assert entry["id"] == logged["web40"].log_id
    assert (entry["count"], entry["bmi"]) == (1, [40.0])
    second = logged["second"]
    assert entry["predictions"] == [pytest.approx(second.slope * 40.0 + second.intercept)]


def test_a_page_is_one_query_on_the_log_joining_its_versions(staff_token_client, logged):
    with CaptureQueriesContext(connection) as captured:
        assert staff_token_client.get(URL).status_code == 200
    log_queries = [q["sql"] for q in captured if '"predictor_predictionlog"' in q["sql"]]
    assert len(log_queries) == 1
    # The intervals' figures come with the join; no query per entry, and no chart data.
    assert [q["sql"] for q in captured if '"predictor_modelversion"' in q["sql"]] == log_queries
    assert '"training_sample"' not in log_queries[0] and '"loss_curve"' not in log_queries[0]


def test_each_entry_carries_the_intervals_its_answer_carried(staff_token_client, logged):
    results = staff_token_client.get(URL).json()["results"]
    for entry, name in zip(results, NEWEST_FIRST, strict=True):
        version = logged["first"] if entry["model_version"] == logged["first"].version else logged["second"]
        half = version.interval.half_width(np.array(entry["bmi"]))
        predicted = np.array(entry["predictions"])
        intervals = entry["intervals"]
        assert intervals["level"] == version.interval_level == 0.95, name
        np.testing.assert_allclose(intervals["low_raw"], predicted - half, rtol=1e-12)
        np.testing.assert_allclose(intervals["high_raw"], predicted + half, rtol=1e-12)
        np.testing.assert_allclose(intervals["low"], np.clip(predicted - half, 25.0, 346.0), rtol=1e-12)
        np.testing.assert_allclose(intervals["high"], np.clip(predicted + half, 25.0, 346.0), rtol=1e-12)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("channel=api", ["api30", "api25", "api20"]),
        ("channel=web", ["web40"]),
        ("channel=batch", ["newest", "triple", "pair"]),
        ("version={first}", ["triple", "pair", "api30", "api25", "api20"]),
        ("version={second}", ["newest", "web40"]),
        ("version={second}&channel=web", ["web40"]),
        ("version={first}&channel=web", []),
        ("version=999", []),
        ("since={h2_5}", ["newest", "web40", "triple"]),
        ("until={h1_5}", ["triple", "pair", "api30", "api25", "api20"]),
        ("since={h2_5}&until={h1_5}", ["triple"]),
        ("version={first}&since={h3_5}", ["triple", "pair"]),
        ("channel=batch&since={h2_5}", ["newest", "triple"]),
    ],
)
def test_filters(staff_token_client, logged, query, expected):
    query = query.format(
        first=logged["first"].version,
        second=logged["second"].version,
        h3_5=_iso(3.5),
        h2_5=_iso(2.5),
        h1_5=_iso(1.5),
    )

    response = staff_token_client.get(f"{URL}?{query}")

    assert response.status_code == 200
    assert [r["id"] for r in response.json()["results"]] == ids(logged, expected)


def test_since_is_inclusive_and_until_exclusive(staff_token_client, logged):
    at = PredictionLog.objects.get(pk=logged["triple"].log_id).created_at.isoformat()

    since = staff_token_client.get(URL, {"since": at}).json()["results"]
    until = staff_token_client.get(URL, {"until": at}).json()["results"]

    assert [r["id"] for r in since] == ids(logged, ["newest", "web40", "triple"])
    assert [r["id"] for r in until] == ids(logged, ["pair", "api30", "api25", "api20"])


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("version=abc", "version"),
        ("version=0", "version"),
        ("version=99999999999999999999999", "version"),
        ("channel=sms", "channel"),
        ("channel=BATCH", "channel"),
        ("since=yesterday", "since"),
        ("until=2025-13-01T00:00:00Z", "until"),
        ("since=2025-02-01T00:00:00Z&until=2025-01-01T00:00:00Z", "until"),
        ("since=2025-01-01T00:00:00Z&until=2025-01-01T00:00:00Z", "until"),
    ],
)
def test_bad_filter_is_a_400_naming_the_parameter(staff_token_client, logged, query, field):
    response = staff_token_client.get(f"{URL}?{query}")

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid"
    assert error["message"].startswith(f"{field}: ")
    assert set(error["fields"]) == {field}


# --- Pages ---------------------------------------------------------------------------------------------


def _all_pages(client, **params) -> list[dict]:
    seen, page = [], client.get(URL, params).json()
    seen += page["results"]
    for _ in range(100):  # bounded: a cursor that never ends fails the test instead of hanging it
        if not page["next"]:
            return seen
        page = client.get(page["next"]).json()
        seen += page["results"]
    pytest.fail("the cursor did not reach the last page")


def test_pages_through_the_log_with_a_cursor(staff_token_client, logged):
    first = staff_token_client.get(URL, {"page_size": 3}).json()
    second = staff_token_client.get(first["next"]).json()
    third = staff_token_client.get(second["next"]).json()

    assert [len(p["results"]) for p in (first, second, third)] == [3, 3, 1]
    assert third["next"] is None
    seen = [r["id"] for r in first["results"] + second["results"] + third["results"]]
    assert seen == ids(logged, NEWEST_FIRST)


def test_pages_neither_skip_nor_repeat_entries_logged_at_the_same_time(staff_token_client, active_version):
    # The cursor holds an id, not a time: entries sharing a created_at are still told apart.
    logged = {serving.predict([20.0 + i], channel="batch" if i % 2 else "api").log_id for i in range(7)}
    PredictionLog.objects.update(created_at=timezone.now() - dt.timedelta(minutes=5))

    seen = _all_pages(staff_token_client, page_size=3)

    assert [r["id"] for r in seen] == sorted(logged, reverse=True)


def test_entries_logged_while_paging_neither_shift_nor_repeat_the_next_page(staff_token_client, logged):
    first = staff_token_client.get(URL, {"page_size": 3}).json()
    serving.predict([27.0], channel="api")
    serving.predict([28.0, 29.0], channel="batch")

    rest = staff_token_client.get(first["next"]).json()

    assert [r["id"] for r in rest["results"]] == ids(logged, NEWEST_FIRST[3:6])


def test_pages_back_with_the_previous_cursor(staff_token_client, logged):
    first = staff_token_client.get(URL, {"page_size": 2}).json()
    second = staff_token_client.get(first["next"]).json()
    back = staff_token_client.get(second["previous"]).json()

    assert [r["id"] for r in back["results"]] == [r["id"] for r in first["results"]]


@pytest.mark.parametrize("position", ["1e5", "abc", "-1", "1; DROP TABLE x", "2025-01-01T00:00:00", "12.5", " 12"])
def test_forged_cursor_position_is_a_404_not_a_500(staff_token_client, logged, position):
    forged = base64.b64encode(urlencode({"p": position}).encode()).decode()
    response = staff_token_client.get(URL, {"cursor": forged})

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_a_cursor_position_of_an_id_lists_the_entries_before_it(staff_token_client, logged):
    # The shape DRF writes into the cursor: the id of the last entry of the page before.
    cursor = base64.b64encode(urlencode({"p": str(logged["triple"].log_id)}).encode()).decode()

    response = staff_token_client.get(URL, {"cursor": cursor})

    assert response.status_code == 200
    assert [r["id"] for r in response.json()["results"]] == ids(logged, ["pair", "api30", "api25", "api20"])


@pytest.mark.parametrize("position", [2**63 - 1, 2**63, 10**30])
def test_a_cursor_position_beyond_every_id_lists_everything(staff_token_client, logged, position):
    cursor = base64.b64encode(urlencode({"p": str(position)}).encode()).decode()

    response = staff_token_client.get(URL, {"cursor": cursor})

    assert response.status_code == 200
    assert [r["id"] for r in response.json()["results"]] == ids(logged, NEWEST_FIRST)


def test_bad_cursor_is_a_404(staff_token_client, logged):
    response = staff_token_client.get(URL, {"cursor": "garbage"})

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


@pytest.mark.parametrize("page_size", ["0", "-1", "abc", "1001", "2.5"])
@pytest.mark.parametrize("url", [URL, "/api/v1/models"])
def test_a_bad_page_size_is_a_400_naming_it(staff_token_client, active_version, url, page_size):
    # DRF would quietly serve its default page instead of the size the client asked for.
    response = staff_token_client.get(url, {"page_size": page_size})
    assert response.status_code == 400
    assert response.json()["error"]["message"] == "page_size: Must be a whole number from 1 to 1000."


# --- One entry ---------------------------------------------------------------------------------------


def test_detail_of_a_batch_returns_the_values_as_answered(staff_token_client, logged):
    result = logged["triple"]

    response = staff_token_client.get(detail_url(result.log_id))

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"id", "created_at", "model_version", "channel", "count", "bmi", "predictions", "intervals"}
    assert (body["id"], body["channel"], body["count"]) == (result.log_id, "batch", 3)
    # The intervals the batch was answered with, reproduced from the version's stored figures.
    assert body["intervals"] == serializers.intervals_body(result.explain())
    assert body["model_version"] == logged["first"].version
    assert body["bmi"] == [18.5, 25.0, 40.0]
    # Exactly the floats the batch call returned, in input order.
    assert body["predictions"] == result.predictions


def test_detail_of_a_single_prediction_is_what_the_api_answered(staff_token_client, active_version):
    answered = APIClient().post("/api/v1/predict", {"bmi": 27.4}, format="json").json()

    body = staff_token_client.get(detail_url(answered["prediction_id"])).json()

    assert (body["id"], body["channel"], body["count"]) == (answered["prediction_id"], "api", 1)
    assert body["model_version"] == answered["model_version"] == active_version.version
    assert (body["bmi"], body["predictions"]) == ([27.4], [answered["prediction"]])


def test_detail_of_a_full_batch_returns_every_value_in_order(staff_token_client, active_version, settings):
    bmis = [18.0 + (i % 300) / 10 for i in range(settings.PREDICTOR_BATCH_MAX)]
    answered = APIClient().post("/api/v1/predict/batch", {"bmi": bmis}, format="json").json()

    body = staff_token_client.get(detail_url(answered["batch_id"])).json()

    assert body["count"] == settings.PREDICTOR_BATCH_MAX
    assert body["bmi"] == bmis
    assert body["predictions"] == answered["predictions"]


@pytest.mark.parametrize("offset", [1, 1000])
def test_unknown_entry_is_a_404_with_the_error_body(staff_token_client, logged, offset):
    missing = max(ids(logged, NEWEST_FIRST)) + offset

    response = staff_token_client.get(detail_url(missing))

    assert response.status_code == 404
    assert response.json() == {
        "error": {"status": 404, "code": "not_found", "message": f"Prediction {missing} does not exist."}
    }


@pytest.mark.parametrize("prediction_id", [0, 2**63, 10**30])
def test_an_id_outside_the_id_range_is_a_404_not_a_500(staff_token_client, logged, prediction_id):
    response = staff_token_client.get(detail_url(prediction_id))

    assert response.status_code == 404
    assert response.json()["error"]["message"] == f"Prediction {prediction_id} does not exist."


@pytest.mark.parametrize("prediction_id", ["abc", "-1", "12.5", "1e3", "5dc67933-af01-4ae1-b400-37b4c3ead916"])
def test_an_id_that_is_not_a_whole_number_is_a_404_not_a_500(staff_token_client, logged, prediction_id):
    # UUIDs were batch ids once; an old link now finds no endpoint rather than a server error.
    response = staff_token_client.get(detail_url(prediction_id))

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


# --- Who may read the log ----------------------------------------------------------------------------


@pytest.fixture
def urls(logged):
    return [URL, detail_url(logged["api20"].log_id), detail_url(logged["pair"].log_id)]


def test_anonymous_callers_get_a_401(api, urls):
    for url in urls:
        response = api.get(url)
        assert response.status_code == 401, url
        assert response.json()["error"]["code"] == "not_authenticated"


def test_signed_in_non_staff_get_a_403(plain_token_client, client, plain_user, urls):
    client.force_login(plain_user)
    for url in urls:
        assert plain_token_client.get(url).status_code == 403, url
        assert client.get(url).status_code == 403, url


def test_staff_without_the_log_permission_get_a_403_naming_it(api, view_only_staff, urls):
    api.force_authenticate(view_only_staff)
    for url in urls:
        response = api.get(url)
        assert response.status_code == 403, url
        error = response.json()["error"]
        assert error["code"] == "permission_denied"
        assert "predictor.view_predictionlog" in error["message"]


@pytest.mark.parametrize("client_fixture", ["staff_token_client", "staff_session_client"])
def test_staff_with_the_log_permission_read_it_by_token_and_session(request, client_fixture, urls):
    staff = request.getfixturevalue(client_fixture)
    for url in urls:
        assert staff.get(url).status_code == 200, url


def test_superusers_read_it(api, admin_user, urls):
    api.force_authenticate(admin_user)
    for url in urls:
        assert api.get(url).status_code == 200, url


@pytest.mark.parametrize("method", ["post", "put", "patch", "delete"])
def test_the_log_cannot_be_written_through_the_api(staff_token_client, urls, method):
    for url in urls:
        response = getattr(staff_token_client, method)(url, {}, format="json")
        assert response.status_code == 405, (method, url)
    assert PredictionLog.objects.count() == len(NEWEST_FIRST)
