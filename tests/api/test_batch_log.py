"""GET /api/v1/batches and /api/v1/batches/<batch_id>: the staff view of the logged batches.

A batch is one row (its BMIs and predictions as arrays), listed without the arrays and read back
whole by its id.
"""

import base64
import datetime as dt
import uuid
from urllib.parse import urlencode

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from predictor import services, serving
from predictor.models import PredictionBatch

URL = "/api/v1/batches"
pytestmark = pytest.mark.django_db


def detail_url(batch_id) -> str:
    return f"{URL}/{batch_id}"


def _age(batch_id, hours: float) -> None:
    # Inside a test's transaction PostgreSQL's now() does not move: every batch would share one time.
    PredictionBatch.objects.filter(pk=batch_id).update(created_at=timezone.now() - dt.timedelta(hours=hours))


@pytest.fixture
def batches(active_version, train_version):
    """Two batches on the first version (3 h and 2 h old), one on a second version (1 h old)."""
    oldest = serving.predict_batch([22.0, 33.0])
    middle = serving.predict_batch([18.5, 25.0, 40.0])
    second = train_version(promote=False, random_state=1)
    services.model_version_promote(version=second.version, actor_name="test")
    newest = serving.predict_batch([30.0])
    for result, hours in ((oldest, 3), (middle, 2), (newest, 1)):
        _age(result.batch_id, hours)
    return {"first": active_version, "second": second, "oldest": oldest, "middle": middle, "newest": newest}


# --- The list ----------------------------------------------------------------------------------------


def test_lists_newest_first_without_the_values(staff_token_client, batches):
    response = staff_token_client.get(URL)

    assert response.status_code == 200
    results = response.json()["results"]
    expected = [batches["newest"], batches["middle"], batches["oldest"]]
    assert [r["batch_id"] for r in results] == [str(b.batch_id) for b in expected]
    assert [r["count"] for r in results] == [1, 3, 2]
    assert [r["model_version"] for r in results] == [batches["second"].version] + [batches["first"].version] * 2
    assert set(results[0]) == {"batch_id", "created_at", "model_version", "count"}


def test_list_does_not_read_the_arrays_from_the_database(staff_token_client, batches):
    with CaptureQueriesContext(connection) as captured:
        assert staff_token_client.get(URL).status_code == 200
    [page_query] = [q["sql"] for q in captured if 'FROM "predictor_predictionbatch"' in q["sql"]]
    assert '"size"' in page_query
    assert '"bmi"' not in page_query and '"predictions"' not in page_query


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("version={first}", ["middle", "oldest"]),
        ("version={second}", ["newest"]),
        ("version=999", []),
        ("since={h2_5}", ["newest", "middle"]),
        ("until={h1_5}", ["middle", "oldest"]),
        ("since={h2_5}&until={h1_5}", ["middle"]),
        ("version={first}&since={h2_5}", ["middle"]),
    ],
)
def test_filters(staff_token_client, batches, query, expected):
    now = timezone.now()
    query = query.format(
        first=batches["first"].version,
        second=batches["second"].version,
        h2_5=(now - dt.timedelta(hours=2.5)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        h1_5=(now - dt.timedelta(hours=1.5)).strftime("%Y-%m-%dT%H:%M:%SZ"),
    )

    response = staff_token_client.get(f"{URL}?{query}")

    assert response.status_code == 200
    assert [r["batch_id"] for r in response.json()["results"]] == [str(batches[n].batch_id) for n in expected]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("version=abc", "version"),
        ("version=0", "version"),
        ("version=99999999999999999999999", "version"),
        ("since=yesterday", "since"),
        ("until=2025-13-01T00:00:00Z", "until"),
        ("since=2025-02-01T00:00:00Z&until=2025-01-01T00:00:00Z", "until"),
    ],
)
def test_bad_filter_is_a_400_naming_the_parameter(staff_token_client, batches, query, field):
    response = staff_token_client.get(f"{URL}?{query}")

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["message"].startswith(f"{field}: ")
    assert field in error["fields"]


def test_pages_through_the_batches_with_a_cursor(staff_token_client, batches):
    first = staff_token_client.get(URL, {"page_size": 2}).json()
    second = staff_token_client.get(first["next"]).json()

    assert len(first["results"]) == 2
    assert len(second["results"]) == 1
    assert second["next"] is None
    seen = [r["batch_id"] for r in first["results"] + second["results"]]
    assert seen == [str(batches[n].batch_id) for n in ("newest", "middle", "oldest")]


def test_pages_neither_skip_nor_repeat_batches_logged_at_the_same_time(staff_token_client, active_version):
    # The cursor holds a time; batches sharing it are told apart by their ids.
    ids = {serving.predict_batch([20.0 + i]).batch_id for i in range(7)}
    PredictionBatch.objects.update(created_at=timezone.now() - dt.timedelta(minutes=5))

    seen, page = [], staff_token_client.get(URL, {"page_size": 3}).json()
    seen += page["results"]
    while page["next"]:
        page = staff_token_client.get(page["next"]).json()
        seen += page["results"]

    assert [r["batch_id"] for r in seen] == sorted((str(i) for i in ids), reverse=True)


def test_pages_back_with_the_previous_cursor(staff_token_client, batches):
    first = staff_token_client.get(URL, {"page_size": 2}).json()
    second = staff_token_client.get(first["next"]).json()
    back = staff_token_client.get(second["previous"]).json()

    assert [r["batch_id"] for r in back["results"]] == [r["batch_id"] for r in first["results"]]


@pytest.mark.parametrize(
    "position",
    ["1e5", "abc", "12345", "2025-01-01T00:00:00", "2025-02-30T00:00:00+00:00", "0001-01-01T00:00:00+05:00"],
)
def test_forged_cursor_position_is_a_404_not_a_500(staff_token_client, batches, position):
    forged = base64.b64encode(urlencode({"p": position}).encode()).decode()
    response = staff_token_client.get(URL, {"cursor": forged})

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_a_cursor_position_of_an_aware_time_is_accepted(staff_token_client, batches):
    # The shape DRF writes into the cursor (str() of the last batch's created_at).
    between = timezone.now() - dt.timedelta(hours=1.5)
    cursor = base64.b64encode(urlencode({"p": str(between)}).encode()).decode()

    response = staff_token_client.get(URL, {"cursor": cursor})

    assert response.status_code == 200
    expected = [str(batches[n].batch_id) for n in ("middle", "oldest")]
    assert [r["batch_id"] for r in response.json()["results"]] == expected


def test_bad_cursor_is_a_404(staff_token_client, batches):
    response = staff_token_client.get(URL, {"cursor": "garbage"})

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


# --- One batch ---------------------------------------------------------------------------------------


def test_detail_returns_the_values_as_answered(staff_token_client, batches):
    result = batches["middle"]

    response = staff_token_client.get(detail_url(result.batch_id))

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"batch_id", "created_at", "model_version", "count", "bmi", "predictions"}
    assert body["batch_id"] == str(result.batch_id)
    assert body["model_version"] == batches["first"].version
    assert body["count"] == 3
    assert body["bmi"] == [18.5, 25.0, 40.0]
    # Exactly the floats the batch call returned, in input order.
    assert body["predictions"] == result.predictions


def test_detail_of_a_full_batch_returns_every_value_in_order(staff_token_client, active_version, settings):
    bmis = [18.0 + (i % 300) / 10 for i in range(settings.PREDICTOR_BATCH_MAX)]
    answered = APIClient().post("/api/v1/predict/batch", {"bmi": bmis}, format="json").json()

    body = staff_token_client.get(detail_url(answered["batch_id"])).json()

    assert body["count"] == settings.PREDICTOR_BATCH_MAX
    assert body["bmi"] == bmis
    assert body["predictions"] == answered["predictions"]


def test_unknown_batch_is_a_404_with_the_error_body(staff_token_client, batches):
    missing = uuid.uuid4()

    response = staff_token_client.get(detail_url(missing))

    assert response.status_code == 404
    assert response.json() == {
        "error": {"status": 404, "code": "not_found", "message": f"Batch {missing} does not exist."}
    }


@pytest.mark.parametrize("batch_id", ["not-a-uuid", "12345", "5DC67933-AF01-4AE1-B400-37B4C3EAD916x"])
def test_a_batch_id_that_is_not_a_uuid_is_a_404_not_a_500(staff_token_client, batches, batch_id):
    response = staff_token_client.get(detail_url(batch_id))

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


# --- Who may read them: as the prediction log --------------------------------------------------------


@pytest.fixture
def urls(batches):
    return [URL, detail_url(batches["oldest"].batch_id)]


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
def test_staff_with_the_log_permission_read_them_by_token_and_session(request, client_fixture, urls):
    staff = request.getfixturevalue(client_fixture)
    for url in urls:
        assert staff.get(url).status_code == 200, url


def test_superusers_read_them(api, admin_user, urls):
    api.force_authenticate(admin_user)
    for url in urls:
        assert api.get(url).status_code == 200, url


@pytest.mark.parametrize("method", ["post", "put", "patch", "delete"])
def test_batches_cannot_be_written_through_the_api(staff_token_client, urls, method):
    for url in urls:
        response = getattr(staff_token_client, method)(url, {}, format="json")
        assert response.status_code == 405, (method, url)
    assert PredictionBatch.objects.count() == 3
