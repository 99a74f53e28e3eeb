"""Django admin: a read-mostly window on the registry and the logs.

Nothing here writes a model row directly. Versions are created by training and change status
only through ``predictor.registry.services`` (the same rules as the commands and the API), so the admin
offers "promote" and "retire" actions and no add, change or delete. Audit events, the prediction
log and outcomes are records of what happened: they are read-only.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import F, QuerySet, Value
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from predictor.accounts import admin as accounts_admin  # noqa: F401  (registers the API tokens' admin)
from predictor.predictions.models import ArrayItem, Outcome, PredictionLog
from predictor.registry import services
from predictor.registry.models import ModelVersion, PromotionEvent

# The JSON columns hold hundreds of points each; lists and joins never need them.
HEAVY_VERSION_FIELDS = ("training_sample", "loss_curve", "training_bmi_histogram")
# A batch holds up to 10,000 values; its page shows this many and a summary (the API has them all).
VALUES_PREVIEW = 20


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
        (
            "Prediction interval",
            {
                "fields": [
                    "interval_level",
                    "coverage_test",
                    "coverage_cv",
                    "interval_t",
                    "residual_std",
                    "bmi_mean",
                    "bmi_sxx",
                    "progression_min",
                    "progression_max",
                ]
            },
        ),
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


def _summary(values: list[float], unit: str) -> str:
    return f"min {min(values):g}, mean {sum(values) / len(values):g}, max {max(values):g} {unit}".rstrip()


@admin.register(PredictionLog)
class PredictionLogAdmin(ReadOnlyAdmin):
    list_display = ["id", "created_at", "version_link", "channel", "size", "first_bmi", "first_prediction"]
    list_filter = ["channel", ModelVersionFilter, "created_at"]
    search_fields = ["id__exact"]
    search_help_text = "An exact prediction id (a single prediction's, or a batch's batch_id)."
    date_hierarchy = "created_at"
    # Counting a year of logs on every page view is slow; "Show all" still counts on request.
    show_full_result_count = False
    list_per_page = 100
    fieldsets = [
        ("Entry", {"fields": ["id", "created_at", "version_link", "channel", "size", "outcome_count"]}),
        ("Values", {"fields": ["bmi_summary", "prediction_summary", "first_values"]}),
    ]
    readonly_fields = [*(field for fieldset in fieldsets for field in fieldset[1]["fields"]), "outcomes"]

    def get_fieldsets(self, request: HttpRequest, obj=None):
        # Whoever may open the outcomes' admin gets the count as a link to them; a reader of the log
        # without predictor.view_outcome sees the count alone, not a link to a 403.
        fieldsets = super().get_fieldsets(request, obj)
        if not request.user.has_perm("predictor.view_outcome"):
            return fieldsets
        return [
            (name, {**options, "fields": ["outcomes" if f == "outcome_count" else f for f in options["fields"]]})
            for name, options in fieldsets
        ]

    def get_queryset(self, request: HttpRequest) -> QuerySet[PredictionLog]:
        queryset = super().get_queryset(request)
        if request.resolver_match and request.resolver_match.url_name.endswith("_changelist"):
            # A list shows each entry's first value, read in SQL: a batch's two arrays hold up to
            # 160 kB, and a page of them must not load 100 of those.
            queryset = queryset.defer("bmi", "predictions").annotate(
                bmi_0=ArrayItem("bmi", Value(0)), prediction_0=ArrayItem("predictions", Value(0))
            )
        return queryset

    @admin.display(description="model version", ordering="model_version")
    def version_link(self, obj: PredictionLog):
        return _version_link(obj.model_version_id)

    @admin.display(description="BMI (kg/m²)")
    def first_bmi(self, obj: PredictionLog) -> str:
        return f"{obj.bmi_0:g}" + (" …" if obj.size > 1 else "")

    @admin.display(description="prediction")
    def first_prediction(self, obj: PredictionLog) -> str:
        return f"{obj.prediction_0:.1f}" + (" …" if obj.size > 1 else "")

    @admin.display(description="observed outcomes")
    def outcome_count(self, obj: PredictionLog) -> str:
        return f"{obj.outcomes.count()} of {obj.size}"

    @admin.display(description="observed outcomes")
    def outcomes(self, obj: PredictionLog):
        url = reverse("admin:predictor_outcome_changelist")
        return format_html('<a href="{}?q={}">{}</a>', url, obj.pk, self.outcome_count(obj))

    @admin.display(description="BMI")
    def bmi_summary(self, obj: PredictionLog) -> str:
        return _summary(obj.bmi, "kg/m²")

    @admin.display(description="predictions")
    def prediction_summary(self, obj: PredictionLog) -> str:
        return _summary(obj.predictions, "")

    @admin.display(description="first values")
    def first_values(self, obj: PredictionLog):
        shown = min(obj.size, VALUES_PREVIEW)
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            ((i, f"{obj.bmi[i]:g}", f"{obj.predictions[i]:.2f}") for i in range(shown)),
        )
        return format_html(
            "<p>{} of {} (all of them: <code>GET /api/v1/predictions/{}</code>)</p>"
            "<table><thead><tr><th>position</th><th>BMI (kg/m²)</th><th>prediction</th></tr></thead>"
            "<tbody>{}</tbody></table>",
            shown,
            obj.size,
            obj.pk,
            rows,
        )


@admin.register(Outcome)
class OutcomeAdmin(ReadOnlyAdmin):
    list_display = [
        "prediction_link",
        "position",
        "observed",
        "predicted",
        "version_link",
        "source",
        "recorded_at",
        "recorded_by",
    ]
    list_filter = ["source", "recorded_at"]
    search_fields = ["log__id__exact"]
    search_help_text = "An exact prediction id: its outcomes (a batch's, by position)."
    date_hierarchy = "recorded_at"
    list_select_related = ["recorded_by"]
    show_full_result_count = False
    fields = [
        "prediction_link",
        "position",
        "bmi",
        "predicted",
        "observed",
        "version_link",
        "source",
        "recorded_at",
        "recorded_by",
    ]
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[Outcome]:
        # The observed prediction's values are read from its entry's arrays in SQL, never loaded whole.
        return (
            super()
            .get_queryset(request)
            .annotate(
                version=F("log__model_version_id"),
                bmi_value=ArrayItem("log__bmi", "position"),
                predicted_value=ArrayItem("log__predictions", "position"),
            )
        )

    @admin.display(description="prediction", ordering="log")
    def prediction_link(self, obj: Outcome):
        url = reverse("admin:predictor_predictionlog_change", args=[obj.log_id])
        return format_html('<a href="{}">#{}</a>', url, obj.log_id)

    @admin.display(description="BMI (kg/m²)")
    def bmi(self, obj: Outcome) -> str:
        return f"{obj.bmi_value:g}"

    @admin.display(description="predicted")
    def predicted(self, obj: Outcome) -> str:
        return f"{obj.predicted_value:.1f}"

    @admin.display(description="model version", ordering="version")
    def version_link(self, obj: Outcome):
        return _version_link(obj.version)
