"""The OpenAPI schema at /api/schema/ and Swagger UI at /docs, served from our own static files."""

import json
import re
from urllib.parse import urlsplit

import pytest
import yaml
from django.contrib.staticfiles import finders
from django.test import override_settings
from drf_spectacular.validation import validate_schema

pytestmark = pytest.mark.django_db

API_PATHS = {
    "/api/v1/predict": {"post"},
    "/api/v1/predict/batch": {"post"},
    "/api/v1/models": {"get"},
    "/api/v1/models/active": {"get"},
    "/api/v1/models/{version}": {"get"},
    "/api/v1/models/train": {"post"},
    "/api/v1/models/{version}/promote": {"post"},
    "/api/v1/models/rollback": {"post"},
    "/api/v1/models/{version}/monitoring": {"get"},
    "/api/v1/predictions": {"get"},
    "/api/v1/predictions/{prediction_id}": {"get"},
    "/api/v1/predictions/{prediction_id}/outcome": {"post"},
}


@pytest.fixture
def schema(api):
    response = api.get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    return json.loads(response.content)


def test_schema_is_valid_openapi_3_with_every_endpoint(schema):
    validate_schema(schema)  # against the OpenAPI 3 JSON Schema drf-spectacular bundles
    assert schema["openapi"].startswith("3.")
    for path, methods in API_PATHS.items():
        assert methods <= set(schema["paths"][path]), path
    # Nothing documented that no longer exists (the batch log had endpoints of its own).
    assert set(schema["paths"]) == set(API_PATHS)


def test_schema_is_also_served_as_yaml(api):
    response = api.get("/api/schema/")

    assert response.status_code == 200
    assert "/api/v1/predict" in yaml.safe_load(response.content)["paths"]


@pytest.mark.parametrize(
    ("path", "method", "codes"),
    [
        ("/api/v1/predict", "post", {"200", "400", "413", "415", "429", "503"}),
        ("/api/v1/predict/batch", "post", {"200", "400", "413", "415", "429", "503"}),
        ("/api/v1/models/{version}/promote", "post", {"200", "401", "403", "404", "409"}),
        ("/api/v1/models/rollback", "post", {"200", "401", "403", "409"}),
        ("/api/v1/models/train", "post", {"201", "400", "401", "403"}),
        ("/api/v1/predictions", "get", {"200", "400", "401", "403"}),
        ("/api/v1/predictions/{prediction_id}", "get", {"200", "401", "403", "404"}),
        (
            "/api/v1/predictions/{prediction_id}/outcome",
            "post",
            {"201", "400", "401", "403", "404", "409", "413", "503"},
        ),
        ("/api/v1/models/{version}/monitoring", "get", {"200", "404", "503"}),
    ],
)
def test_schema_documents_the_error_responses_with_the_error_body(schema, path, method, codes):
    responses = schema["paths"][path][method]["responses"]

    assert codes <= set(responses)
    for code in codes - {"200", "201"}:
        assert responses[code]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}
    error = schema["components"]["schemas"]["ErrorDetail"]
    assert set(error["required"]) == {"status", "code", "message"}


def test_schema_states_the_bmi_range_and_batch_limit(schema, settings):
    components = schema["components"]["schemas"]
    bmi = components["PredictInputRequest"]["properties"]["bmi"]
    batch = components["BatchInputRequest"]["properties"]["bmi"]

    assert (bmi["minimum"], bmi["maximum"]) == (settings.PREDICTOR_BMI_MIN, settings.PREDICTOR_BMI_MAX)
    assert batch["maxItems"] == settings.PREDICTOR_BATCH_MAX


LOG_ENTRY_FIELDS = {"id", "created_at", "model_version", "channel", "count", "bmi", "predictions", "intervals"}


def _ref(container) -> str:
    return container["content"]["application/json"]["schema"]["$ref"].split("/")[-1]


def test_prediction_log_documents_its_filters_and_entries_with_both_arrays(schema):
    operation = schema["paths"]["/api/v1/predictions"]["get"]
    components = schema["components"]["schemas"]
    parameters = {p["name"]: p for p in operation["parameters"]}

    # Single predictions and batches are one log: channel names all three, and no batch_id filter.
    assert set(parameters) == {"version", "channel", "since", "until", "cursor", "page_size"}
    assert parameters["channel"]["schema"]["enum"] == ["api", "web", "batch"]
    # No internal text (a base class's or a mixin's docstring) leaks into the documentation.
    assert "description" not in operation
    page = _ref(operation["responses"]["200"])
    item = components[page]["properties"]["results"]["items"]["$ref"].split("/")[-1]
    properties = components[item]["properties"]
    assert set(properties) == LOG_ENTRY_FIELDS
    for name in ("bmi", "predictions"):
        assert properties[name]["type"] == "array" and properties[name]["items"]["type"] == "number"
    assert {} not in operation["security"]  # staff only, never anonymous


def test_prediction_detail_documents_the_integer_id_and_both_arrays(schema):
    operation = schema["paths"]["/api/v1/predictions/{prediction_id}"]["get"]
    [parameter] = operation["parameters"]
    properties = schema["components"]["schemas"][_ref(operation["responses"]["200"])]["properties"]

    assert (parameter["in"], parameter["schema"]["type"], parameter["schema"]["format"]) == ("path", "integer", "int64")
    assert "batch_id" in parameter["description"]  # a batch is read back by the id it was answered with
    assert set(properties) == LOG_ENTRY_FIELDS
    for name in ("bmi", "predictions"):
        assert properties[name]["type"] == "array" and properties[name]["items"]["type"] == "number"
    assert {} not in operation["security"]  # staff only, never anonymous


def _component(schema, container) -> dict:
    return schema["components"]["schemas"][_ref(container)]


def test_single_answer_documents_its_interval_and_warnings_with_examples(schema):
    components = schema["components"]["schemas"]
    operation = schema["paths"]["/api/v1/predict"]["post"]
    properties = _component(schema, operation["responses"]["200"])["properties"]

    assert {"interval", "scale", "warnings"} <= set(properties)
    interval = components[properties["interval"]["allOf"][0]["$ref"].split("/")[-1]]
    assert set(interval["properties"]) == {"level", "low", "high", "low_raw", "high_raw"}
    warning = components[properties["warnings"]["items"]["$ref"].split("/")[-1]]
    assert set(warning["properties"]) == {"code", "message"}
    for code in ("bmi_outside_training_range", "prediction_outside_scale", "interval_clipped"):
        assert code in warning["properties"]["code"]["description"]
    examples = operation["responses"]["200"]["content"]["application/json"]["examples"]
    values = [example["value"] for example in examples.values()]
    assert [v["interval"]["low"] for v in values] == [39.2, 25.0]  # an ordinary answer and a clipped one
    assert [w["code"] for w in values[1]["warnings"]] == [
        "bmi_outside_training_range",
        "prediction_outside_scale",
        "interval_clipped",
    ]


def test_batch_answer_documents_intervals_as_arrays_with_an_example(schema):
    components = schema["components"]["schemas"]
    operation = schema["paths"]["/api/v1/predict/batch"]["post"]
    properties = _component(schema, operation["responses"]["200"])["properties"]

    intervals = components[properties["intervals"]["allOf"][0]["$ref"].split("/")[-1]]["properties"]
    for name in ("low", "high", "low_raw", "high_raw"):
        assert intervals[name]["type"] == "array" and intervals[name]["items"]["type"] == "number"
    warning = components[properties["warnings"]["items"]["$ref"].split("/")[-1]]
    assert set(warning["properties"]) == {"code", "message", "indices"}
    [example] = operation["responses"]["200"]["content"]["application/json"]["examples"].values()
    assert len(example["value"]["intervals"]["low"]) == len(example["value"]["predictions"]) == 3


def test_batch_response_points_at_the_logged_entry_and_the_outcome_position(schema):
    batch_id = schema["components"]["schemas"]["BatchOutput"]["properties"]["batch_id"]
    assert batch_id["type"] == "integer"
    assert "/api/v1/predictions/{batch_id}" in batch_id["description"]
    assert "position" in batch_id["description"]


def test_outcome_request_documents_the_optional_position(schema):
    operation = schema["paths"]["/api/v1/predictions/{prediction_id}/outcome"]["post"]
    body = schema["components"]["schemas"][_ref(operation["requestBody"])]

    assert body["required"] == ["observed"]
    assert (body["properties"]["position"]["type"], body["properties"]["position"]["minimum"]) == ("integer", 0)
    assert {} not in operation["security"]  # signed-in accounts only


def test_prediction_endpoints_are_public_in_the_schema_so_swagger_draws_no_lock(schema):
    # Swagger UI draws a lock on every operation with a security requirement, even an optional one.
    assert "security" not in schema["paths"]["/api/v1/predict"]["post"]
    assert "security" not in schema
    assert {} not in schema["paths"]["/api/v1/models/train"]["post"]["security"]


def test_the_public_predictions_group_is_listed_first(schema):
    assert schema["tags"][0]["name"] == "predictions"
    assert {tag["name"] for tag in schema["tags"]} >= {
        tag for path in schema["paths"].values() for op in path.values() for tag in op.get("tags", [])
    }


# The test settings use the manifest storage of production, which needs collectstatic first.
@override_settings(STORAGES={"staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}})
def test_docs_page_loads_everything_from_our_own_static_files(api):
    response = api.get("/docs")

    assert response.status_code == 200
    html = response.content.decode()
    assert "swagger-ui" in html
    urls = re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)["']""", html)
    urls += re.findall(r"""["'](https?://[^"']+|//[^"']+)["']""", html)
    assert urls
    for url in urls:
        parts = urlsplit(url)
        assert not parts.netloc, f"/docs references another host: {url}"
    static = [u for u in urls if u.startswith("/static/")]
    assert len(static) >= 3  # the CSS, the bundle and the standalone preset
    for url in static:
        assert finders.find(url.removeprefix("/static/")), f"{url} is not one of our static files"
    # The init script is a same-origin file (script-src 'self' under the CSP), and it loads our schema.
    assert '<script src="/docs?script="></script>' in html
    assert "/api/schema/" in api.get("/docs?script=").content.decode()


def test_docs_with_a_trailing_slash_redirects_to_the_docs(api):
    response = api.get("/docs/")
    assert response.status_code == 302 and response["Location"] == "/docs"


@pytest.mark.parametrize("path", ["/api/v1/predictions", "/api/v1/models"])
def test_page_size_bounds_are_in_the_schema(schema, path):
    (page_size,) = [p for p in schema["paths"][path]["get"]["parameters"] if p["name"] == "page_size"]
    assert (page_size["schema"]["minimum"], page_size["schema"]["maximum"]) == (1, 1000)
    assert "400" in schema["paths"][path]["get"]["responses"]


def test_docs_page_points_to_the_schema_without_javascript_and_links_back(client, db):
    html = client.get("/docs").content.decode()
    noscript = html[html.index("<noscript>") : html.index("</noscript>")]
    assert 'href="/api/schema/"' in noscript
    assert '<a href="/">← Back to the prediction service</a>' in html
