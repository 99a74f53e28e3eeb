"""The admin: read-only registry and logs, promote/retire actions through the services, no N+1."""

import pytest
from django.contrib import messages
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.admin.sites import site
from django.contrib.auth.models import Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from predictor.admin import VALUES_PREVIEW
from predictor.models import ModelVersion, Outcome, PredictionLog, PromotionEvent
from predictor.predictions import serving
from predictor.registry import services

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
    """n single predictions (web form) on two versions, half of them with an observed outcome; and
    n // 2 batches of three predictions, each with an outcome for its second item."""

    def _make(n: int):
        for i in range(n):
            if i == n // 2:
                # Switch to the other passing version, so the logs span two versions.
                idle = ModelVersion.objects.get(pk__in=[v.version for v in registry[:2]], status="candidate")
                services.model_version_promote(version=idle.version, actor_name="test")
            single = serving.predict([20.0 + i % 20], channel="web")
            if i % 2 == 0:
                Outcome.objects.create(log_id=single.log_id, observed=150.0 + i)
            else:
                batch = serving.predict([20.0 + i % 20, 25.0, 30.0], channel="batch")
                Outcome.objects.create(log_id=batch.log_id, position=1, observed=140.0 + i)

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
    assert f"{active.r2_test:.3f}" in html
    assert active.data_fingerprint in html
    assert "Prediction interval" in html and "Share of the held-out rows inside their prediction interval." in html
    assert 'name="_save"' not in html
    delete_url = reverse("admin:predictor_modelversion_delete", args=[active.version])
    refused = admin_client.post(delete_url, {"post": "yes"}, follow=True)
    # A superuser is told plainly why, not "Your account does not have permission".
    [(level, message)] = reported(refused)
    assert level == messages.ERROR and message.startswith("Model versions cannot be deleted")
    assert ModelVersion.objects.filter(pk=active.version).exists()
    before = ModelVersion.objects.get(pk=active.version)
    admin_client.post(reverse("admin:predictor_modelversion_change", args=[active.version]), {"status": "retired"})
    assert ModelVersion.objects.get(pk=active.version).status == before.status


def confirm(client, response, reason: str):
    """Follow an action to its confirmation page and confirm it with ``reason``."""
    assert response.redirect_chain, "the action did not lead to a confirmation page"
    return client.post(
        response.request["PATH_INFO"] + "?" + response.request.get("QUERY_STRING", ""), {"reason": reason}, follow=True
    )


def test_promote_action_asks_for_confirmation_and_a_reason_then_promotes_through_the_service(
    client, registry_staff, registry
):
    active, candidate, _ = registry
    client.force_login(registry_staff)
    page = run_action(client, "promote_version", [candidate])
    html = page.content.decode()
    # Nothing has changed yet; the page says what will: from which version to which, with their R².
    assert ModelVersion.objects.get(status=ModelVersion.Status.ACTIVE) == active
    assert f"Promote version {candidate.version} to active?" in html
    assert f"<td>v{active.version}</td>" in html and f"<td>v{candidate.version}</td>" in html
    assert f"{active.r2_test:.3f}" in html and f"{candidate.r2_test:.3f}" in html
    assert 'name="reason"' in html
    missing = client.post(page.request["PATH_INFO"], {"reason": ""})
    assert "Say why" in missing.content.decode()
    response = confirm(client, page, "better held-out R² on the new data")
    assert reported(response) == [(messages.SUCCESS, f"Version {candidate.version} is now active.")]
    candidate.refresh_from_db()
    active.refresh_from_db()
    assert candidate.status == ModelVersion.Status.ACTIVE
    assert active.status == ModelVersion.Status.CANDIDATE
    event = PromotionEvent.objects.first()
    assert (event.action, event.from_version_id, event.to_version_id) == ("promote", active.version, candidate.version)
    assert (event.actor, event.actor_name) == (registry_staff, "staff")
    assert event.reason == "better held-out R² on the new data"
    # "Recent actions" lists it (LogEntry), as it lists any change made in the admin.
    entry = LogEntry.objects.get()
    assert (entry.object_id, entry.user, entry.action_flag) == (str(candidate.version), registry_staff, CHANGE)
    assert entry.get_change_message() == "Promote: better held-out R² on the new data"
    assert f"v{candidate.version}" in client.get(reverse("admin:index")).content.decode()


def test_the_version_page_has_the_buttons_for_its_status(admin_client, registry):
    active, candidate, _ = registry
    html = admin_client.get(reverse("admin:predictor_modelversion_change", args=[candidate.version])).content.decode()
    assert f'href="/admin/predictor/modelversion/{candidate.version}/promote/">Promote…' in html
    assert f'href="/admin/predictor/modelversion/{candidate.version}/retire/">Retire…' in html
    html = admin_client.get(reverse("admin:predictor_modelversion_change", args=[active.version])).content.decode()
    assert 'href="/admin/predictor/modelversion/rollback/">Roll back…' in html
    assert "/promote/" not in html


def test_rollback_confirmation_names_both_versions_and_rolls_back(admin_client, registry):
    active, candidate, _ = registry
    services.model_version_promote(version=candidate.version, actor_name="test")
    page = admin_client.get(reverse("admin:predictor_modelversion_rollback"))
    html = page.content.decode()
    assert f"Serving now</th><td>v{candidate.version}</td>" in html
    assert f"Serving after</th><td>v{active.version}</td>" in html
    admin_client.post(reverse("admin:predictor_modelversion_rollback"), {"reason": "live R² fell"})
    assert ModelVersion.objects.get(status=ModelVersion.Status.ACTIVE) == active
    assert PromotionEvent.objects.first().reason == "live R² fell"


def test_created_by_shows_the_audit_actor_of_a_command_run(admin_client, train_version):
    version = train_version(promote=True)  # no account, as `manage.py train` runs
    assert version.created_by is None
    actor = PromotionEvent.objects.get(to_version=version).actor_name
    html = admin_client.get(reverse("admin:predictor_modelversion_change", args=[version.version])).content.decode()
    assert f"{actor} (from the audit trail)" in html


def test_admin_is_branded_and_tables_round_their_figures(admin_client, registry):
    html = admin_client.get(reverse(CHANGELIST)).content.decode()
    assert "BMI progression administration" in html
    active = registry[0]
    assert f'<td class="field-held_out_r2">{active.r2_test:.3f}</td>' in html
    assert repr(active.r2_test) not in html


def test_promote_action_reports_a_refusal_at_error_level(admin_client, registry):
    active, _, rejected = registry
    events = PromotionEvent.objects.count()
    response = confirm(admin_client, run_action(admin_client, "promote_version", [rejected]), "try it")
    [(level, message)] = reported(response)
    assert level == messages.ERROR
    assert message.startswith(f"Not promoted: Version {rejected.version} was rejected when trained")
    assert ModelVersion.objects.get(status=ModelVersion.Status.ACTIVE) == active
    assert PromotionEvent.objects.count() == events
    assert not LogEntry.objects.exists()


def test_promote_action_needs_exactly_one_version(admin_client, registry):
    active, candidate, _ = registry
    response = run_action(admin_client, "promote_version", [candidate, active])
    assert reported(response) == [(messages.ERROR, "Select exactly one version to promote (2 selected).")]
    assert ModelVersion.objects.get(status=ModelVersion.Status.ACTIVE) == active


def test_retire_action_retires_candidates_and_reports_each_refusal(admin_client, registry):
    active, candidate, rejected = registry
    page = run_action(admin_client, "retire_versions", [active, candidate, rejected])
    assert "The serving model does not change" in page.content.decode()
    response = confirm(admin_client, page, "superseded")
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
    assert event.reason == "superseded"


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
    assert PredictionLog.objects.count() == 44 + 22  # single predictions and batches
    # Same page, ten times the rows: no query per row.
    with django_assert_max_num_queries(few):
        assert admin_client.get(url).status_code == 200


def test_prediction_log_changelist_stays_within_a_fixed_query_budget(admin_client, logs, django_assert_max_num_queries):
    logs(60)
    # Session, user, version filter choices, count, the page (entries with their first values),
    # and the date hierarchy's two: seven, whatever the number of rows.
    with django_assert_max_num_queries(7):
        response = admin_client.get(changelist_url(PredictionLog))
    assert response.status_code == 200
    assert len(response.context["cl"].result_list) == 90  # 60 single predictions and 30 batches


def test_prediction_log_list_loads_neither_the_versions_training_data_nor_whole_arrays(admin_client, logs):
    logs(4)
    with CaptureQueriesContext(connection) as captured:
        response = admin_client.get(changelist_url(PredictionLog))
    [page_query] = [q["sql"] for q in captured if q["sql"].startswith('SELECT "predictor_predictionlog"."id"')]
    assert "training_sample" not in page_query
    assert "predictor_modelversion" not in page_query  # the version link needs only the id on the row
    rows = response.context["cl"].result_list
    # A batch's arrays hold up to 160 kB: a list reads each entry's first values in SQL instead.
    assert all({"bmi", "predictions"} <= row.get_deferred_fields() for row in rows)
    logged = PredictionLog.objects.values_list("pk", "bmi", "predictions")
    assert {row.pk: (row.bmi_0, row.prediction_0) for row in rows} == {pk: (b[0], p[0]) for pk, b, p in logged}


@pytest.mark.parametrize(
    ("model", "term"),
    [
        (PredictionLog, "not-a-number"),
        (PredictionLog, str(2**70)),  # beyond the id column's range
        (PredictionLog, "-1"),
        (ModelVersion, "abc"),
        (PromotionEvent, "x"),
        (Outcome, "y"),
        (Outcome, str(2**70)),
        (Outcome, "12"),
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


# --- The prediction log's entries: single predictions and batches ------------------------------


def _entry_url(log_id) -> str:
    return reverse("admin:predictor_predictionlog_change", args=[log_id])


def test_prediction_log_filters_by_channel(admin_client, logs):
    logs(4)
    for channel, size in [("web", 1), ("batch", 3)]:
        response = admin_client.get(changelist_url(PredictionLog), {"channel__exact": channel})
        assert response.status_code == 200
        rows = response.context["cl"].result_list
        assert rows and {(row.channel, row.size) for row in rows} == {(channel, size)}


def test_list_shows_id_time_version_channel_size_and_the_first_values(admin_client, registry):
    single = serving.predict([27.4], channel="api")
    batch = serving.predict([22.0, 27.4, 31.5], channel="batch")
    response = admin_client.get(changelist_url(PredictionLog))
    assert response.status_code == 200
    assert [row.pk for row in response.context["cl"].result_list] == [batch.log_id, single.log_id]  # newest first
    html = response.content.decode()
    assert f">v{registry[0].version}</a>" in html
    assert f"{single.predictions[0]:.1f}</td>" in html  # a single prediction: its value, no ellipsis
    assert "22 …</td>" in html and f"{batch.predictions[0]:.1f} …</td>" in html  # a batch: its first, and more
    assert "31.5" not in html  # a batch's other values are on its page, not in the list


def test_log_filters_by_version_on_both_kinds_of_entry(admin_client, logs, registry):
    logs(8)  # single predictions and batches on both passing versions
    for version in registry[:2]:
        response = admin_client.get(changelist_url(PredictionLog), {"model_version": str(version.version)})
        assert response.status_code == 200
        rows = response.context["cl"].result_list
        assert rows and {row.model_version_id for row in rows} == {version.version}
        assert {row.channel for row in rows} == {"web", "batch"}


@pytest.mark.parametrize("spelling", [str, lambda i: f"  {i} "])
@pytest.mark.parametrize("channel", ["api", "batch"])
def test_search_finds_exactly_the_entry_by_its_id(admin_client, registry, spelling, channel):
    wanted = serving.predict([22.0], channel=channel).log_id
    serving.predict([23.0], channel=channel)

    response = admin_client.get(changelist_url(PredictionLog), {"q": spelling(wanted)})

    assert response.status_code == 200
    assert [row.pk for row in response.context["cl"].result_list] == [wanted]


def test_search_for_an_unknown_id_or_other_text_finds_nothing(admin_client, registry):
    known = serving.predict([22.0, 23.0], channel="batch").log_id
    for term in (str(known + 1000), str(2**70), "22.0", "batch"):
        response = admin_client.get(changelist_url(PredictionLog), {"q": term})
        assert response.status_code == 200
        assert list(response.context["cl"].result_list) == [], term


def test_page_of_a_full_batch_shows_a_summary_and_the_first_values_not_all_of_them(admin_client, registry, settings):
    size = settings.PREDICTOR_BATCH_MAX
    bmis = [18.0 + (i % 300) / 10 for i in range(size)]
    result = serving.predict(bmis, channel="batch")

    response = admin_client.get(_entry_url(result.log_id))

    assert response.status_code == 200
    html = response.content.decode()
    assert 'name="_save"' not in html
    assert f"{VALUES_PREVIEW} of {size}" in html
    assert f"GET /api/v1/predictions/{result.log_id}" in html  # where all of them are
    assert f"min 18, mean {sum(bmis) / size:g}, max 47.9 kg/m²" in html
    # The first values, item by item; not the ten thousand (the whole page stays small).
    assert f"<td>0</td><td>18</td><td>{result.predictions[0]:.2f}</td>" in html
    assert f"<td>{VALUES_PREVIEW - 1}</td>" in html
    assert f"<td>{VALUES_PREVIEW}</td>" not in html
    assert html.count("<tr>") < VALUES_PREVIEW + 10
    assert len(response.content) < 100_000


def test_page_of_a_single_prediction_shows_its_value(admin_client, registry):
    result = serving.predict([27.4], channel="web")
    html = admin_client.get(_entry_url(result.log_id)).content.decode()
    assert "1 of 1" in html
    assert f"<td>0</td><td>27.4</td><td>{result.predictions[0]:.2f}</td>" in html
    assert "0 of 1" in html  # observed outcomes: none yet


def test_entry_page_links_to_its_outcomes(admin_client, registry):
    batch = serving.predict([22.0, 27.4, 31.5], channel="batch")
    other = serving.predict([25.0], channel="api")
    Outcome.objects.create(log_id=batch.log_id, position=0, observed=120.0)
    Outcome.objects.create(log_id=batch.log_id, position=2, observed=180.0)
    Outcome.objects.create(log_id=other.log_id, observed=99.0)

    html = admin_client.get(_entry_url(batch.log_id)).content.decode()
    outcomes_url = f"{changelist_url(Outcome)}?q={batch.log_id}"
    assert f'<a href="{outcomes_url}">2 of 3</a>' in html

    response = admin_client.get(outcomes_url)
    assert response.status_code == 200
    assert sorted(row.position for row in response.context["cl"].result_list) == [0, 2]


def test_a_log_reader_without_the_outcome_permission_sees_the_count_without_a_dead_link(client, staff_user, registry):
    batch = serving.predict([22.0, 27.4, 31.5], channel="batch")
    Outcome.objects.create(log_id=batch.log_id, position=1, observed=150.0)
    assert not staff_user.has_perm("predictor.view_outcome")
    client.force_login(staff_user)

    html = client.get(_entry_url(batch.log_id)).content.decode()

    assert "1 of 3" in html
    assert changelist_url(Outcome) not in html
    assert client.get(changelist_url(Outcome)).status_code == 403


@pytest.mark.parametrize("channel", ["api", "batch"])
def test_outcome_page_shows_the_prediction_it_observes(admin_client, registry, channel):
    bmis = [22.0, 27.4, 31.5] if channel == "batch" else [27.4]
    position = 1 if channel == "batch" else 0
    result = serving.predict(bmis, channel=channel)
    outcome = Outcome.objects.create(log_id=result.log_id, position=position, observed=160.0)

    response = admin_client.get(reverse("admin:predictor_outcome_change", args=[outcome.pk]))

    assert response.status_code == 200
    html = response.content.decode()
    assert 'name="_save"' not in html
    assert _entry_url(result.log_id) in html
    assert "27.4" in html and f"{result.predictions[position]:.1f}" in html
    assert f">v{registry[0].version}</a>" in html


def test_outcome_list_shows_each_outcome_beside_the_prediction_it_observes(admin_client, registry):
    batch = serving.predict([22.0, 27.4, 31.5], channel="batch")
    Outcome.objects.create(log_id=batch.log_id, position=2, observed=180.0)
    response = admin_client.get(changelist_url(Outcome))
    assert response.status_code == 200
    [row] = response.context["cl"].result_list
    assert (row.position, row.predicted_value) == (2, batch.predictions[2])
    html = response.content.decode()
    assert f">#{batch.log_id}</a>" in html and f"{batch.predictions[2]:.1f}" in html


def test_outcome_list_query_count_does_not_grow_with_rows(admin_client, logs, django_assert_max_num_queries):
    logs(4)
    few = _queries(admin_client, changelist_url(Outcome))
    logs(40)
    with django_assert_max_num_queries(few):
        response = admin_client.get(changelist_url(Outcome))
    assert len(response.context["cl"].result_list) == Outcome.objects.count()


def test_entries_and_outcomes_cannot_be_changed_or_deleted_from_the_admin(admin_client, registry):
    batch = serving.predict([22.0, 27.4], channel="batch")
    Outcome.objects.create(log_id=batch.log_id, position=0, observed=120.0)
    before = PredictionLog.objects.values().get(pk=batch.log_id)
    outcome_before = Outcome.objects.values().get()

    admin_client.post(_entry_url(batch.log_id), {"size": "1", "bmi": "40.0", "predictions": "1.0"})
    delete_url = reverse("admin:predictor_predictionlog_delete", args=[batch.log_id])
    assert admin_client.post(delete_url, {"post": "yes"}).status_code == 403
    bulk_delete = {"action": "delete_selected", "_selected_action": [str(batch.log_id)], "post": "yes"}
    admin_client.post(changelist_url(PredictionLog), bulk_delete)
    outcome = Outcome.objects.get()
    admin_client.post(reverse("admin:predictor_outcome_change", args=[outcome.pk]), {"observed": "1"})
    outcome_delete = reverse("admin:predictor_outcome_delete", args=[outcome.pk])
    assert admin_client.post(outcome_delete, {"post": "yes"}).status_code == 403

    assert PredictionLog.objects.values().get(pk=batch.log_id) == before
    assert Outcome.objects.values().get() == outcome_before


def test_whoever_reads_the_prediction_log_reads_its_batches(client, staff_user, view_only_staff, registry):
    # As in the API: predictor.view_predictionlog opens single predictions and batches alike.
    batch = serving.predict([22.0], channel="batch")
    assert staff_user.has_perm("predictor.view_predictionlog")
    client.force_login(staff_user)
    assert client.get(changelist_url(PredictionLog)).status_code == 200
    assert client.get(_entry_url(batch.log_id)).status_code == 200
    client.force_login(view_only_staff)
    assert client.get(changelist_url(PredictionLog)).status_code == 403
    assert client.get(_entry_url(batch.log_id)).status_code == 403


def test_the_removed_batch_admins_are_gone(admin_client):
    assert admin_client.get("/admin/predictor/predictionbatch/").status_code == 404
    assert admin_client.get("/admin/predictor/batchoutcome/").status_code == 404
