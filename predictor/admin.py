"""Django admin: a read-mostly window on the registry and the logs.

Nothing here writes a model row directly. Versions are created by training and change status
only through ``predictor.services`` (the same rules as the commands and the API), so the admin
offers "promote" and "retire" actions and no add, change or delete. Audit events, prediction
logs, batches and outcomes are records of what happened: they are read-only.
"""

from __future__ import annotations

import uuid

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from predictor import services
from predictor.api.permissions import READ_PREDICTION_LOG
from predictor.models import BatchOutcome, ModelVersion, Outcome, PredictionBatch, PredictionLog, PromotionEvent

# The JSON columns hold hundreds of points each; lists and joins never need them.
HEAVY_VERSION_FIELDS = ("training_sample", "loss_curve", "training_bmi_histogram")
# A batch holds up to 10,000 values; its page shows this many and a summary (the API has them all).
BATCH_PREVIEW = 20


def _version_link(version_id: int | None):
    if version_id is None:
        return "—"
    url = reverse("admin:predictor_modelversion_change", args=[version_id])
    return format_html('<a href="{}">v{}</a>', url, version_id)


class ReadOnlyAdmin(admin.ModelAdmin):
    """Viewable by staff with the view permission; never added, changed or deleted here."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


class ModelVersionFilter(admin.SimpleListFilter):
    """Filter by model version without loading every version's JSON columns for the choices."""

    title = "model version"
    parameter_name = "model_version"

    def lookups(self, request, model_admin):
        rows = ModelVersion.objects.order_by("-version").values_list("version", "status")
        return [(str(version), f"v{version} ({status})") for version, status in rows]

    def queryset(self, request, queryset):
        value = self.value()
        if value is None:
            return queryset
        if not value.isdigit():
            return queryset.none()
        return queryset.filter(model_version_id=int(value))


@admin.register(ModelVersion)
class ModelVersionAdmin(ReadOnlyAdmin):
    list_display = ["version", "status", "r2_test", "mse_test", "n_train", "dataset_name", "created_at", "promoted_at"]
    list_filter = ["status", "converged", "created_at", "dataset_name"]
    search_fields = ["version__exact", "dataset_name", "data_fingerprint", "code_version"]
    ordering = ["-version"]
    actions = ["promote_version", "retire_versions"]
    fieldsets = [
        ("Registry", {"fields": ["version", "status", "created_at", "created_by", "promoted_at", "retired_at"]}),
        ("Held-out metrics", {"fields": ["r2_test", "mse_test", "mae_test", "threshold", "n_test"]}),
        ("Training", {"fields": ["r2_train", "mse_train", "n_train", "n_outcome_rows", "n_epochs", "converged"]}),
        ("Model", {"fields": ["slope", "intercept", "hyperparameters", "random_state", "training_seconds"]}),
        ("Provenance", {"fields": ["dataset_name", "data_fingerprint", "code_version", "previous_active", "page"]}),
    ]
    readonly_fields = [field for fieldset in fieldsets for field in fieldset[1]["fields"]]

    def get_queryset(self, request: HttpRequest) -> QuerySet[ModelVersion]:
        return super().get_queryset(request).defer(*HEAVY_VERSION_FIELDS).select_related("created_by")

    @admin.display(description="public page")
    def page(self, obj: ModelVersion):
        return format_html('<a href="{}">{}</a>', obj.get_absolute_url(), obj.get_absolute_url())

    # Actions need the change permission even though no field is editable: changing the status
    # is the change this model allows, and only through the services.
    def has_registry_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("predictor.change_modelversion")

    @admin.action(description="Promote the selected version to active", permissions=["registry"])
    def promote_version(self, request: HttpRequest, queryset: QuerySet[ModelVersion]) -> None:
        versions = list(queryset.values_list("version", flat=True))
        if len(versions) != 1:
            self.message_user(
                request,
                f"Select exactly one version to promote ({len(versions)} selected).",
                level=messages.ERROR,
            )
            return
        try:
            version = services.model_version_promote(
                version=versions[0], user=request.user, reason="promoted in the admin"
            )
        except services.RegistryError as exc:
            self.message_user(request, f"Not promoted: {exc}", level=messages.ERROR)
            return
        self.message_user(request, f"Version {version.version} is now active.", level=messages.SUCCESS)

    @admin.action(description="Retire the selected versions", permissions=["registry"])
    def retire_versions(self, request: HttpRequest, queryset: QuerySet[ModelVersion]) -> None:
        retired = []
        for version in queryset.order_by("version").values_list("version", flat=True):
            try:
                services.model_version_retire(version=version, user=request.user, reason="retired in the admin")
            except services.RegistryError as exc:
                # Each refusal is reported; the others still go through (each is its own transaction).
                self.message_user(request, f"Not retired: {exc}", level=messages.ERROR)
            else:
                retired.append(f"v{version}")
        if retired:
            self.message_user(request, f"Retired {', '.join(retired)}.", level=messages.SUCCESS)


@admin.register(PromotionEvent)
class PromotionEventAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "action", "from_link", "to_link", "actor_name", "reason"]
    list_filter = ["action", "created_at"]
    search_fields = ["actor_name", "reason", "from_version__version__exact", "to_version__version__exact"]
    date_hierarchy = "created_at"

    @admin.display(description="from", ordering="from_version")
    def from_link(self, obj: PromotionEvent):
        # The ids are on the row: no join, so no heavy version columns are loaded for a list.
        return _version_link(obj.from_version_id)

    @admin.display(description="to", ordering="to_version")
    def to_link(self, obj: PromotionEvent):
        return _version_link(obj.to_version_id)


@admin.register(PredictionLog)
class PredictionLogAdmin(ReadOnlyAdmin):
    list_display = ["id", "created_at", "version_link", "model_status", "bmi", "prediction", "channel", "observed"]
    list_filter = ["channel", ModelVersionFilter, "created_at"]
    search_fields = ["id__exact"]
    date_hierarchy = "created_at"
    list_select_related = ["model_version", "outcome"]
    # Counting a year of logs on every page view is slow; "Show all" still counts on request.
    show_full_result_count = False
    list_per_page = 100

    def get_queryset(self, request: HttpRequest) -> QuerySet[PredictionLog]:
        heavy = [f"model_version__{name}" for name in HEAVY_VERSION_FIELDS]
        return super().get_queryset(request).defer(*heavy)

    @admin.display(description="model version", ordering="model_version")
    def version_link(self, obj: PredictionLog):
        return _version_link(obj.model_version_id)

    @admin.display(description="version status")
    def model_status(self, obj: PredictionLog) -> str:
        return obj.model_version.get_status_display()

    @admin.display(description="observed")
    def observed(self, obj: PredictionLog):
        try:
            return f"{obj.outcome.observed:g}"
        except Outcome.DoesNotExist:
            return "—"


@admin.register(Outcome)
class OutcomeAdmin(ReadOnlyAdmin):
    list_display = ["prediction_link", "observed", "predicted", "model_version", "source", "recorded_at", "recorded_by"]
    list_filter = ["source", "recorded_at"]
    search_fields = ["prediction__id__exact"]
    date_hierarchy = "recorded_at"
    list_select_related = ["prediction", "recorded_by"]
    show_full_result_count = False

    @admin.display(description="prediction", ordering="prediction")
    def prediction_link(self, obj: Outcome):
        url = reverse("admin:predictor_predictionlog_change", args=[obj.prediction_id])
        return format_html('<a href="{}">#{}</a>', url, obj.prediction_id)

    @admin.display(description="predicted", ordering="prediction__prediction")
    def predicted(self, obj: Outcome) -> str:
        return f"{obj.prediction.prediction:.1f}"

    @admin.display(description="model version")
    def model_version(self, obj: Outcome):
        return _version_link(obj.prediction.model_version_id)


def _batch_search(queryset: QuerySet, search_term: str, lookup: str) -> QuerySet:
    """Rows of the batch whose id is ``search_term``; none when it is not a UUID.

    The admin's own ``__exact`` search on a UUID casts the column to text: a full scan, and no match
    on SQLite, which stores UUIDs without hyphens. Parsed, the id is one primary-key lookup.
    """
    try:
        batch_id = uuid.UUID(search_term.strip())
    except ValueError:
        return queryset.none()
    return queryset.filter(**{lookup: batch_id})


def _summary(values: list[float], unit: str) -> str:
    return f"min {min(values):g}, mean {sum(values) / len(values):g}, max {max(values):g} {unit}"


@admin.register(PredictionBatch)
class PredictionBatchAdmin(ReadOnlyAdmin):
    list_display = ["batch_id", "created_at", "version_link", "size"]
    list_filter = [ModelVersionFilter, "created_at"]
    search_fields = ["id__exact"]  # shows the search box; get_search_results does the lookup
    search_help_text = "An exact batch id, as the batch call returned it."
    date_hierarchy = "created_at"
    show_full_result_count = False
    list_per_page = 100
    fieldsets = [
        ("Batch", {"fields": ["batch_id", "created_at", "version_link", "size", "outcomes"]}),
        ("Values", {"fields": ["bmi_summary", "prediction_summary", "first_values"]}),
    ]
    readonly_fields = [field for fieldset in fieldsets for field in fieldset[1]["fields"]] + ["outcome_count"]

    def get_fieldsets(self, request: HttpRequest, obj=None):
        # The outcomes link leads to the batch outcomes' admin; whoever may not open it (a reader of
        # the prediction log without predictor.view_batchoutcome) sees the count without the link.
        fieldsets = super().get_fieldsets(request, obj)
        if request.user.has_perm("predictor.view_batchoutcome"):
            return fieldsets
        return [
            (name, {**options, "fields": ["outcome_count" if f == "outcomes" else f for f in options["fields"]]})
            for name, options in fieldsets
        ]

    def get_queryset(self, request: HttpRequest) -> QuerySet[PredictionBatch]:
        # A list needs the size, not two arrays of up to 80 kB each per row; one batch's page
        # loads them when it reads them.
        return super().get_queryset(request).defer("bmi", "predictions")

    def get_search_results(self, request: HttpRequest, queryset: QuerySet, search_term: str):
        if not search_term.strip():
            return queryset, False
        return _batch_search(queryset, search_term, "pk"), False

    def has_view_permission(self, request: HttpRequest, obj=None) -> bool:
        # A batch is part of the prediction log: whoever may read the log may read its batches,
        # as in the API (/api/v1/batches needs predictor.view_predictionlog).
        return super().has_view_permission(request, obj) or request.user.has_perm(READ_PREDICTION_LOG)

    @admin.display(description="batch id", ordering="id")
    def batch_id(self, obj: PredictionBatch) -> str:
        return str(obj.pk)

    @admin.display(description="model version", ordering="model_version")
    def version_link(self, obj: PredictionBatch):
        return _version_link(obj.model_version_id)

    @admin.display(description="observed outcomes")
    def outcomes(self, obj: PredictionBatch):
        url = reverse("admin:predictor_batchoutcome_changelist")
        return format_html('<a href="{}?q={}">{}</a>', url, obj.pk, self.outcome_count(obj))

    @admin.display(description="observed outcomes")
    def outcome_count(self, obj: PredictionBatch) -> str:
        return f"{obj.outcomes.count()} of {obj.size}"

    @admin.display(description="BMI")
    def bmi_summary(self, obj: PredictionBatch) -> str:
        return _summary(obj.bmi, "kg/m²")

    @admin.display(description="predictions")
    def prediction_summary(self, obj: PredictionBatch) -> str:
        return _summary(obj.predictions, "")

    @admin.display(description="first values")
    def first_values(self, obj: PredictionBatch):
        shown = min(obj.size, BATCH_PREVIEW)
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            ((i, f"{obj.bmi[i]:g}", f"{obj.predictions[i]:.2f}") for i in range(shown)),
        )
        return format_html(
            "<p>{} of {} (all of them: <code>GET /api/v1/batches/{}</code>)</p>"
            "<table><thead><tr><th>item</th><th>BMI (kg/m²)</th><th>prediction</th></tr></thead>"
            "<tbody>{}</tbody></table>",
            shown,
            obj.size,
            obj.pk,
            rows,
        )


@admin.register(BatchOutcome)
class BatchOutcomeAdmin(ReadOnlyAdmin):
    list_display = ["batch_link", "position", "observed", "source", "recorded_at", "recorded_by"]
    list_filter = ["source", "recorded_at"]
    search_fields = ["batch__id__exact"]  # shows the search box; get_search_results does the lookup
    search_help_text = "An exact batch id: that batch's outcomes."
    date_hierarchy = "recorded_at"
    list_select_related = ["recorded_by"]
    show_full_result_count = False
    fields = ["batch_link", "position", "bmi", "predicted", "observed", "source", "recorded_at", "recorded_by"]
    readonly_fields = fields

    def get_search_results(self, request: HttpRequest, queryset: QuerySet, search_term: str):
        if not search_term.strip():
            return queryset, False
        return _batch_search(queryset, search_term, "batch_id"), False

    @admin.display(description="batch", ordering="batch")
    def batch_link(self, obj: BatchOutcome):
        # The id is on the row: the list never loads a batch's arrays.
        url = reverse("admin:predictor_predictionbatch_change", args=[obj.batch_id])
        return format_html('<a href="{}">{}</a>', url, obj.batch_id)

    def _item(self, obj: BatchOutcome, values: str):
        array = getattr(obj.batch, values)
        return array[obj.position] if obj.position < len(array) else None

    @admin.display(description="BMI (kg/m²)")
    def bmi(self, obj: BatchOutcome):
        value = self._item(obj, "bmi")
        return "—" if value is None else f"{value:g}"

    @admin.display(description="predicted")
    def predicted(self, obj: BatchOutcome):
        value = self._item(obj, "predictions")
        return "—" if value is None else f"{value:.1f}"
