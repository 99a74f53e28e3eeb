"""The admin: read-only registry and logs, promote/retire actions through the services, no N+1."""

import uuid

import pytest
from django.contrib import messages
from django.contrib.admin.sites import site
from django.contrib.auth.models import Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from predictor import services, serving
from predictor.admin import BATCH_PREVIEW
from predictor.models import BatchOutcome, ModelVersion, Outcome, PredictionBatch, PredictionLog, PromotionEvent

MODELS = [ModelVersion, PromotionEvent, PredictionLog, Outcome, PredictionBatch, BatchOutcome]
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
    """Predictions on two versions, half of them with an observed outcome; and n // 2 batches of
    three predictions, each with an outcome for its second item."""

    def _make(n: int):
        for i in range(n):
            if i == n // 2:
                # Switch to the other passing version, so the logs span two versions.
                idle = ModelVersion.objects.get(pk__in=[v.version for v in registry[:2]], status="candidate")
                services.model_version_promote(version=idle.version, actor_name="test")
            log = serving.predict_one(20.0 + i % 20, channel="web")
            if i % 2 == 0:
                Outcome.objects.create(prediction_id=log.log_id, observed=150.0 + i)
            else:
                batch = serving.predict_batch([20.0 + i % 20, 25.0, 30.0])
                BatchOutcome.objects.create(batch_id=batch.batch_id, position=1, observed=140.0 + i)

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
    ("model", "term"),
    [
        (PredictionLog, "not-a-uuid"),
        (ModelVersion, "abc"),
        (PromotionEvent, "x"),
        (Outcome, "y"),
        (PredictionBatch, "not-a-uuid"),
        (BatchOutcome, "12"),
    ],
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


# --- Batches ------------------------------------------------------------------------------------------


def _batch_url(batch_id) -> str:
    return reverse("admin:predictor_predictionbatch_change", args=[batch_id])


def test_batch_list_shows_id_time_version_and_size_not_the_values(admin_client, registry):
    batch = serving.predict_batch([22.0, 27.4, 31.5])
    with CaptureQueriesContext(connection) as captured:
        response = admin_client.get(changelist_url(PredictionBatch))
    assert response.status_code == 200
    [row] = response.context["cl"].result_list
    assert row.pk == batch.batch_id
    html = response.content.decode()
    assert str(batch.batch_id) in html
    assert f">v{registry[0].version}</a>" in html
    [page_query] = [q["sql"] for q in captured if q["sql"].startswith('SELECT "predictor_predictionbatch"."id"')]
    assert '"size"' in page_query
    assert '"bmi"' not in page_query and '"predictions"' not in page_query


def test_batch_list_filters_by_version(admin_client, logs, registry):
    logs(8)  # batches on both passing versions
    for version in registry[:2]:
        response = admin_client.get(changelist_url(PredictionBatch), {"model_version": str(version.version)})
        assert response.status_code == 200
        rows = response.context["cl"].result_list
        assert rows and {row.model_version_id for row in rows} == {version.version}


@pytest.mark.parametrize("spelling", [str, lambda u: str(u).upper(), lambda u: f"  {u.hex} "])
def test_batch_search_finds_exactly_the_batch_by_its_id(admin_client, registry, spelling):
    wanted = serving.predict_batch([22.0]).batch_id
    serving.predict_batch([23.0])

    response = admin_client.get(changelist_url(PredictionBatch), {"q": spelling(wanted)})

    assert response.status_code == 200
    assert [row.pk for row in response.context["cl"].result_list] == [wanted]


def test_batch_search_for_an_unknown_id_or_other_text_finds_nothing(admin_client, registry):
    serving.predict_batch([22.0])
    for term in (str(uuid.uuid4()), "22.0", "batch"):
        response = admin_client.get(changelist_url(PredictionBatch), {"q": term})
        assert response.status_code == 200
        assert list(response.context["cl"].result_list) == [], term


def test_prediction_log_is_no_longer_searched_by_batch_id(admin_client, logs):
    logs(2)
    batch_id = PredictionBatch.objects.get().pk
    response = admin_client.get(changelist_url(PredictionLog), {"q": str(batch_id)})
    assert response.status_code == 200
    assert list(response.context["cl"].result_list) == []


def test_page_of_a_full_batch_shows_a_summary_and_the_first_values_not_all_of_them(admin_client, registry, settings):
    size = settings.PREDICTOR_BATCH_MAX
    bmis = [18.0 + (i % 300) / 10 for i in range(size)]
    result = serving.predict_batch(bmis)

    response = admin_client.get(_batch_url(result.batch_id))

    assert response.status_code == 200
    html = response.content.decode()
    assert 'name="_save"' not in html
    assert f"{BATCH_PREVIEW} of {size}" in html
    assert f"min 18, mean {sum(bmis) / size:g}, max 47.9 kg/m²" in html
    # The first values, item by item; not the ten thousand (the whole page stays small).
    assert f"<td>0</td><td>18</td><td>{result.predictions[0]:.2f}</td>" in html
    assert f"<td>{BATCH_PREVIEW - 1}</td>" in html
    assert f"<td>{BATCH_PREVIEW}</td>" not in html
    assert html.count("<tr>") < BATCH_PREVIEW + 10
    assert len(response.content) < 100_000


def test_batch_page_links_to_its_outcomes(admin_client, registry):
    batch = serving.predict_batch([22.0, 27.4, 31.5])
    other = serving.predict_batch([25.0])
    BatchOutcome.objects.create(batch_id=batch.batch_id, position=0, observed=120.0)
    BatchOutcome.objects.create(batch_id=batch.batch_id, position=2, observed=180.0)
    BatchOutcome.objects.create(batch_id=other.batch_id, position=0, observed=99.0)

    html = admin_client.get(_batch_url(batch.batch_id)).content.decode()
    outcomes_url = f"{changelist_url(BatchOutcome)}?q={batch.batch_id}"
    assert f'<a href="{outcomes_url}">2 of 3</a>' in html

    response = admin_client.get(outcomes_url)
    assert response.status_code == 200
    assert sorted(row.position for row in response.context["cl"].result_list) == [0, 2]


def test_a_log_reader_without_the_outcome_permission_sees_the_count_without_a_dead_link(client, staff_user, registry):
    batch = serving.predict_batch([22.0, 27.4, 31.5])
    BatchOutcome.objects.create(batch_id=batch.batch_id, position=1, observed=150.0)
    assert not staff_user.has_perm("predictor.view_batchoutcome")
    client.force_login(staff_user)

    html = client.get(_batch_url(batch.batch_id)).content.decode()

    assert "1 of 3" in html
    assert changelist_url(BatchOutcome) not in html
    assert client.get(changelist_url(BatchOutcome)).status_code == 403


def test_batch_outcome_page_shows_the_item_it_observes(admin_client, registry):
    batch = serving.predict_batch([22.0, 27.4, 31.5])
    outcome = BatchOutcome.objects.create(batch_id=batch.batch_id, position=1, observed=160.0)

    response = admin_client.get(reverse("admin:predictor_batchoutcome_change", args=[outcome.pk]))

    assert response.status_code == 200
    html = response.content.decode()
    assert 'name="_save"' not in html
    assert _batch_url(batch.batch_id) in html
    assert "27.4" in html and f"{batch.predictions[1]:.1f}" in html


def test_batches_cannot_be_changed_or_deleted_from_the_admin(admin_client, registry):
    batch = serving.predict_batch([22.0, 27.4])
    BatchOutcome.objects.create(batch_id=batch.batch_id, position=0, observed=120.0)
    before = PredictionBatch.objects.values().get(pk=batch.batch_id)

    admin_client.post(_batch_url(batch.batch_id), {"size": "1", "bmi": "[40.0]", "predictions": "[1.0]"})
    delete_url = reverse("admin:predictor_predictionbatch_delete", args=[batch.batch_id])
    assert admin_client.post(delete_url, {"post": "yes"}).status_code == 403
    bulk_delete = {"action": "delete_selected", "_selected_action": [str(batch.batch_id)], "post": "yes"}
    admin_client.post(changelist_url(PredictionBatch), bulk_delete)
    outcome_delete = reverse("admin:predictor_batchoutcome_delete", args=[BatchOutcome.objects.get().pk])
    assert admin_client.post(outcome_delete, {"post": "yes"}).status_code == 403

    assert PredictionBatch.objects.values().get(pk=batch.batch_id) == before
    assert BatchOutcome.objects.count() == 1


def test_whoever_reads_the_prediction_log_reads_its_batches(client, staff_user, view_only_staff, registry):
    # As in the API: predictor.view_predictionlog opens batches too (staff_user has no batch permission).
    batch = serving.predict_batch([22.0])
    assert not staff_user.has_perm("predictor.view_predictionbatch")
    client.force_login(staff_user)
    assert client.get(changelist_url(PredictionBatch)).status_code == 200
    assert client.get(_batch_url(batch.batch_id)).status_code == 200
    client.force_login(view_only_staff)
    assert client.get(changelist_url(PredictionBatch)).status_code == 403
    assert client.get(_batch_url(batch.batch_id)).status_code == 403
