"""The admin: read-only registry and logs, promote/retire actions through the services, no N+1."""

import pytest
from django.contrib import messages
from django.contrib.admin.sites import site
from django.contrib.auth.models import Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from predictor import services, serving
from predictor.models import ModelVersion, Outcome, PredictionLog, PromotionEvent

MODELS = [ModelVersion, PromotionEvent, PredictionLog, Outcome]
CHANGELIST = "admin:predictor_modelversion_changelist"


def changelist_url(model) -> str:
    return reverse(f"admin:predictor_{model._meta.model_name}_changelist")


def run_action(client, action: str, versions):
    return client.post(
        reverse(CHANGELIST),
        {"action": action, "_selected_action": [str(v.version) for v in versions]},
        follow=True,
    )


def reported(response) -> list[tuple[int, str]]:
    return [(m.level, m.message) for m in response.context["messages"]]


@pytest.fixture
def registry(train_version):
    """v_a active (via training), v_b candidate, v_c rejected."""
    active = train_version(promote=True)
    candidate = train_version(promote=False, random_state=1)
    rejected = train_version(promote=False, threshold=0.99)
    return active, candidate, rejected


@pytest.fixture
def logs(registry):
    """Predictions on two versions, half of them with an observed outcome."""

    def _make(n: int):
        for i in range(n):
            if i == n // 2:
                # Switch to the other passing version, so the logs span two versions.
                idle = ModelVersion.objects.get(pk__in=[v.version for v in registry[:2]], status="candidate")
                services.model_version_promote(version=idle.version, actor_name="test")
            log = serving.predict_one(20.0 + i % 20, channel="web")
            if i % 2 == 0:
                Outcome.objects.create(prediction_id=log.log_id, observed=150.0 + i)

    return _make


@pytest.fixture
def registry_staff(staff_user):
    """Staff who may view everything and change (promote/retire) model versions."""
    codenames = [f"view_{m._meta.model_name}" for m in MODELS] + ["change_modelversion"]
    staff_user.user_permissions.set(
        Permission.objects.filter(content_type__app_label="predictor", codename__in=codenames)
    )
    return staff_user


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_changelist_loads_for_staff(client, registry_staff, logs, model):
    logs(6)
    client.force_login(registry_staff)
    response = client.get(changelist_url(model))
    assert response.status_code == 200
    assert response.context["cl"].result_count > 0


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_nothing_can_be_added_changed_or_deleted(admin_client, admin_user, rf, model):
    model_admin = site._registry[model]
    request = rf.get("/")
    request.user = admin_user
    assert not model_admin.has_add_permission(request)
    assert not model_admin.has_change_permission(request)
    assert not model_admin.has_delete_permission(request)
    assert "delete_selected" not in model_admin.get_actions(request)
    add_url = reverse(f"admin:predictor_{model._meta.model_name}_add")
    assert admin_client.get(add_url).status_code == 403


def test_each_record_page_loads_read_only(admin_client, logs):
    logs(2)
    for model in MODELS:
        obj = model.objects.first()
        response = admin_client.get(reverse(f"admin:predictor_{model._meta.model_name}_change", args=[obj.pk]))
        assert response.status_code == 200, model.__name__
        assert 'name="_save"' not in response.content.decode()


def test_version_page_is_read_only_and_delete_is_refused(admin_client, registry):
    active = registry[0]
    response = admin_client.get(reverse("admin:predictor_modelversion_change", args=[active.version]))
    html = response.content.decode()
    assert response.status_code == 200
    assert f"{active.r2_test:.4f}"[:5] in html
    assert active.data_fingerprint in html
    assert 'name="_save"' not in html
    delete_url = reverse("admin:predictor_modelversion_delete", args=[active.version])
    assert admin_client.post(delete_url, {"post": "yes"}).status_code == 403
    assert ModelVersion.objects.filter(pk=active.version).exists()
    before = ModelVersion.objects.get(pk=active.version)
    admin_client.post(reverse("admin:predictor_modelversion_change", args=[active.version]), {"status": "retired"})
    assert ModelVersion.objects.get(pk=active.version).status == before.status


def test_promote_action_promotes_through_the_service(client, registry_staff, registry):
    active, candidate, _ = registry
    client.force_login(registry_staff)
    response = run_action(client, "promote_version", [candidate])
    assert reported(response) == [(messages.SUCCESS, f"Version {candidate.version} is now active.")]
    candidate.refresh_from_db()
    active.refresh_from_db()
    assert candidate.status == ModelVersion.Status.ACTIVE
    assert active.status == ModelVersion.Status.CANDIDATE
    event = PromotionEvent.objects.first()
    assert (event.action, event.from_version_id, event.to_version_id) == ("promote", active.version, candidate.version)
    assert event.actor == registry_staff
    assert event.actor_name == "staff"


def test_promote_action_reports_a_refusal_at_error_level(admin_client, registry):
    active, _, rejected = registry
    events = PromotionEvent.objects.count()
    response = run_action(admin_client, "promote_version", [rejected])
    [(level, message)] = reported(response)
    assert level == messages.ERROR
    assert message.startswith(f"Not promoted: Version {rejected.version} was rejected when trained")
    assert ModelVersion.objects.get(status=ModelVersion.Status.ACTIVE) == active
    assert PromotionEvent.objects.count() == events


def test_promote_action_needs_exactly_one_version(admin_client, registry):
    active, candidate, _ = registry
    response = run_action(admin_client, "promote_version", [candidate, active])
    assert reported(response) == [(messages.ERROR, "Select exactly one version to promote (2 selected).")]
    assert ModelVersion.objects.get(status=ModelVersion.Status.ACTIVE) == active


def test_retire_action_retires_candidates_and_reports_each_refusal(admin_client, registry):
    active, candidate, rejected = registry
    response = run_action(admin_client, "retire_versions", [active, candidate, rejected])
    assert reported(response) == [
        (
            messages.ERROR,
            f"Not retired: Version {active.version} is active; promote another version or roll back first.",
        ),
        (messages.ERROR, f"Not retired: Version {rejected.version} is rejected; only candidates can be retired."),
        (messages.SUCCESS, f"Retired v{candidate.version}."),
    ]
    statuses = dict(ModelVersion.objects.values_list("version", "status"))
    assert statuses == {active.version: "active", candidate.version: "retired", rejected.version: "rejected"}
    event = PromotionEvent.objects.first()
    assert (event.action, event.from_version_id, event.to_version_id) == ("retire", candidate.version, None)


def test_view_only_staff_see_no_actions_and_cannot_run_them(client, view_only_staff, registry):
    client.force_login(view_only_staff)
    response = client.get(reverse(CHANGELIST))
    assert response.status_code == 200
    assert "promote_version" not in response.content.decode()
    candidate = registry[1]
    run_action(client, "promote_version", [candidate])
    candidate.refresh_from_db()
    assert candidate.status == ModelVersion.Status.CANDIDATE


def test_staff_without_permissions_are_refused(client, staff_user, registry):
    staff_user.user_permissions.clear()
    client.force_login(staff_user)
    assert client.get(reverse(CHANGELIST)).status_code == 403


def _queries(client, url) -> int:
    with CaptureQueriesContext(connection) as captured:
        assert client.get(url).status_code == 200
    return len(captured)


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_changelist_query_count_does_not_grow_with_rows(admin_client, logs, model, django_assert_max_num_queries):
    url = changelist_url(model)
    logs(4)
    few = _queries(admin_client, url)
    logs(40)
    assert PredictionLog.objects.count() == 44
    # Same page, ten times the rows: no query per row.
    with django_assert_max_num_queries(few):
        assert admin_client.get(url).status_code == 200


def test_prediction_log_changelist_stays_within_a_fixed_query_budget(admin_client, logs, django_assert_max_num_queries):
    logs(60)
    # Session, user, version filter choices, count, the page (logs joined to versions and outcomes),
    # and the date hierarchy's two: seven, whatever the number of rows.
    with django_assert_max_num_queries(7):
        response = admin_client.get(changelist_url(PredictionLog))
    assert response.status_code == 200
    assert len(response.context["cl"].result_list) == 60


def test_prediction_log_list_does_not_load_the_versions_training_data(admin_client, logs):
    logs(4)
    with CaptureQueriesContext(connection) as captured:
        admin_client.get(changelist_url(PredictionLog))
    [page_query] = [q["sql"] for q in captured if q["sql"].startswith('SELECT "predictor_predictionlog"."id"')]
    assert "training_sample" not in page_query
    assert "predictor_outcome" in page_query


@pytest.mark.parametrize(
    ("model", "term"), [(PredictionLog, "not-a-uuid"), (ModelVersion, "abc"), (PromotionEvent, "x"), (Outcome, "y")]
)
def test_search_with_any_text_does_not_fail(admin_client, logs, model, term):
    logs(2)
    assert admin_client.get(changelist_url(model), {"q": term}).status_code == 200


def test_prediction_log_filters_by_version(admin_client, logs, registry):
    logs(4)
    response = admin_client.get(changelist_url(PredictionLog), {"model_version": str(registry[0].version)})
    assert response.status_code == 200
    rows = response.context["cl"].result_list
    assert rows and {row.model_version_id for row in rows} == {registry[0].version}
