"""Django admin: a read-mostly window on the registry and the logs.

Nothing here writes a model row directly. Versions are created by training and change status
only through ``predictor.registry.services`` (the same rules as the commands and the API), so the admin
offers "promote" and "retire" actions and no add, change or delete. Audit events, the prediction
log and outcomes are records of what happened: they are read-only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlencode

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import F, QuerySet, Value
from django.http import Http404, HttpRequest
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from predictor.access import MANAGE_MODELS
from predictor.accounts import admin as accounts_admin  # noqa: F401  (registers the API tokens' admin)
from predictor.predictions.models import ArrayItem, Outcome, PredictionLog
from predictor.registry import selectors as registry_selectors
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


# The admin speaks for the product, not for Django.
admin.site.site_header = "BMI progression administration"
admin.site.site_title = "BMI progression admin"
admin.site.index_title = "Registry, prediction log and accounts"


def _rounded(value: float | None, digits: int) -> str:
    """A figure rounded for a table: 0.4721647598540468 is 0.472, 27.40000000000001 is 27.4."""
    return "—" if value is None else f"{value:,.{digits}f}"


def _rounded_column(field: str, digits: int, description: str):
    """A list/detail column showing ``field`` rounded to ``digits`` decimals."""

    @admin.display(description=description, ordering=field)
    def column(self, obj) -> str:
        return _rounded(getattr(obj, field), digits)

    return column


class ReasonForm(forms.Form):
    reason = forms.CharField(
        label="Reason (kept in the audit trail)",
        max_length=500,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        error_messages={"required": "Say why: the reason goes into the audit trail with your name."},
    )


@dataclass(frozen=True)
class _Change:
    """What a confirmation page asks about, and how to do it once confirmed."""

    verb: str  # "promote", "roll back", "retire"
    title: str
    serving_before: ModelVersion | None
    serving_after: ModelVersion | None
    versions: list[ModelVersion]  # the versions whose status changes
    perform: Callable[[str], list[ModelVersion]]  # reason -> the versions changed


@admin.register(ModelVersion)
class ModelVersionAdmin(ReadOnlyAdmin):
    list_display = [
        "version",
        "status",
        "held_out_r2",
        "held_out_mse",
        "held_out_mae",
        "gate",
        "n_train",
        "dataset_name",
        "created_at",
        "promoted_at",
    ]
    list_filter = ["status", "converged", "created_at", "dataset_name"]
    search_fields = ["version__exact", "dataset_name", "data_fingerprint", "code_version"]
    ordering = ["-version"]
    actions = ["promote_version", "retire_versions"]
    change_form_template = "admin/predictor/modelversion/change_form.html"
    fieldsets = [
        ("Registry", {"fields": ["version", "status", "created_at", "created_by_name", "promoted_at", "retired_at"]}),
        ("Held-out metrics", {"fields": ["held_out_r2", "held_out_mse", "held_out_mae", "gate", "n_test"]}),
        ("Training", {"fields": ["training_r2", "training_mse", "n_train", "n_outcome_rows", "n_epochs", "converged"]}),
        (
            "Model",
            {"fields": ["slope_rounded", "intercept_rounded", "hyperparameters", "random_state", "training_seconds"]},
        ),
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

    held_out_r2 = _rounded_column("r2_test", 3, "held-out R²")
    held_out_mse = _rounded_column("mse_test", 1, "held-out MSE")
    held_out_mae = _rounded_column("mae_test", 1, "held-out MAE")

    @admin.display(description="gate (R² must exceed)", ordering="threshold")
    def gate(self, obj: ModelVersion) -> str:
        return f"{obj.threshold:g}"

    training_r2 = _rounded_column("r2_train", 3, "training R²")
    training_mse = _rounded_column("mse_train", 1, "training MSE")
    slope_rounded = _rounded_column("slope", 4, "slope")
    intercept_rounded = _rounded_column("intercept", 2, "intercept")

    @admin.display(description="created by")
    def created_by_name(self, obj: ModelVersion) -> str:
        # A command trains without an account; the audit trail still names who ran it ("cli:root").
        if obj.created_by is not None:
            return obj.created_by.get_username()
        event = PromotionEvent.objects.filter(to_version=obj).order_by("created_at").first()
        if event is not None and event.created_at - obj.created_at < AUDIT_TRAINED_WITHIN:
            return f"{event.actor_name} (from the audit trail)"
        return "not recorded (trained without an account)"

    @admin.display(description="public page")
    def page(self, obj: ModelVersion):
        return format_html('<a href="{}">{}</a>', obj.get_absolute_url(), obj.get_absolute_url())

    # Actions need the change permission even though no field is editable: changing the status
    # is the change this model allows, and only through the services.
    def has_registry_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(MANAGE_MODELS)

    def delete_view(self, request: HttpRequest, object_id, extra_context=None):
        # Say why instead of Django's "Your account does not have permission": nobody may.
        self.message_user(
            request,
            "Model versions cannot be deleted: predictions and the audit trail refer to them. "
            "Retire a candidate instead, so that it never serves again.",
            level=messages.ERROR,
        )
        return redirect(reverse("admin:predictor_modelversion_change", args=[object_id]))

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        # The change page's buttons lead to the same confirmation pages as the list's actions.
        if obj is not None and self.has_registry_permission(request):
            context["registry_buttons"] = [
                (label, reverse(f"admin:predictor_modelversion_{name}", args=args))
                for label, name, args, shown in (
                    ("Promote…", "promote", [obj.version], obj.status == ModelVersion.Status.CANDIDATE),
                    ("Retire…", "retire", [obj.version], obj.status == ModelVersion.Status.CANDIDATE),
                    ("Roll back…", "rollback", [], obj.status == ModelVersion.Status.ACTIVE),
                )
                if shown
            ]
        return super().render_change_form(request, context, add=add, change=change, form_url=form_url, obj=obj)

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("<int:version>/promote/", view(self.promote_view), name="predictor_modelversion_promote"),
            path("<int:version>/retire/", view(self.retire_view), name="predictor_modelversion_retire"),
            path("rollback/", view(self.rollback_view), name="predictor_modelversion_rollback"),
            *super().get_urls(),
        ]

    @admin.action(description="Promote the selected version to active…", permissions=["registry"])
    def promote_version(self, request: HttpRequest, queryset: QuerySet[ModelVersion]):
        versions = list(queryset.values_list("version", flat=True))
        if len(versions) != 1:
            self.message_user(
                request,
                f"Select exactly one version to promote ({len(versions)} selected).",
                level=messages.ERROR,
            )
            return None
        # An intermediate page, as the admin's own delete action: nothing changes until confirmed.
        return redirect(reverse("admin:predictor_modelversion_promote", args=versions))

    @admin.action(description="Retire the selected versions…", permissions=["registry"])
    def retire_versions(self, request: HttpRequest, queryset: QuerySet[ModelVersion]):
        versions = sorted(queryset.values_list("version", flat=True))
        url = reverse("admin:predictor_modelversion_retire", args=[versions[0]])
        return redirect(f"{url}?{urlencode({'also': ','.join(map(str, versions[1:]))})}" if versions[1:] else url)

    def promote_view(self, request: HttpRequest, version: int):
        target = self._version_or_404(version)
        current = registry_selectors.active_version()

        def perform(reason: str) -> list[ModelVersion]:
            return [services.model_version_promote(version=version, user=request.user, reason=reason)]

        title = f"Promote version {version} to active?"
        return self._confirm(request, _Change("promote", title, current, target, [target], perform))

    def rollback_view(self, request: HttpRequest):
        current = registry_selectors.active_version()
        target = registry_selectors.rollback_target(current) if current is not None else None

        def perform(reason: str) -> list[ModelVersion]:
            return [services.model_version_rollback(user=request.user, reason=reason)]

        title = "Roll back to the previously active version?"
        return self._confirm(request, _Change("roll back", title, current, target, [v for v in [target] if v], perform))

    def retire_view(self, request: HttpRequest, version: int):
        also = [int(part) for part in request.GET.get("also", "").split(",") if part.isdigit()]
        targets = [self._version_or_404(v) for v in [version, *also]]
        current = registry_selectors.active_version()

        def perform(reason: str) -> list[ModelVersion]:
            retired = []
            for target in targets:
                try:
                    retired.append(
                        services.model_version_retire(version=target.version, user=request.user, reason=reason)
                    )
                except services.RegistryError as exc:
                    # Each refusal is reported; the others still go through (each is its own transaction).
                    self.message_user(request, f"Not retired: {exc}", level=messages.ERROR)
            return retired

        names = ", ".join(f"v{t.version}" for t in targets)
        return self._confirm(request, _Change("retire", f"Retire {names}?", current, current, targets, perform))

    def _version_or_404(self, version: int) -> ModelVersion:
        found = registry_selectors.version_get(version=version)
        if found is None:
            raise Http404(f"Model version {version} does not exist.")
        return found

    def _confirm(self, request: HttpRequest, change: _Change):
        """The confirmation page of ``change``: what will change, and the reason; on POST, do it."""
        if not self.has_registry_permission(request):
            raise PermissionDenied
        form = ReasonForm(request.POST if request.method == "POST" else None)
        if form.is_valid():
            try:
                changed = change.perform(form.cleaned_data["reason"])
            except services.RegistryError as exc:
                self.message_user(request, f"Not {PAST[change.verb]}: {exc}", level=messages.ERROR)
                return redirect(reverse("admin:predictor_modelversion_changelist"))
            for version in changed:
                # "Recent actions" and each version's history page list it, beside the audit trail.
                self.log_change(request, version, f"{change.verb.capitalize()}: {form.cleaned_data['reason']}")
            if changed:
                self.message_user(request, _done_message(change.verb, changed), level=messages.SUCCESS)
            return redirect(reverse("admin:predictor_modelversion_changelist"))
        context = {
            **self.admin_site.each_context(request),
            "title": change.title,
            "opts": self.model._meta,
            "change": change,
            "form": form,
            "serving_changes": change.serving_before != change.serving_after,
        }
        return TemplateResponse(request, "admin/predictor/modelversion/confirm.html", context)


# A training run's own promotion event is written in the same transaction, a moment after the row.
AUDIT_TRAINED_WITHIN = timedelta(minutes=1)
PAST = {"promote": "promoted", "roll back": "rolled back", "retire": "retired"}


def _done_message(verb: str, changed: list[ModelVersion]) -> str:
    if verb == "retire":
        return f"Retired {', '.join(f'v{v.version}' for v in changed)}."
    return f"Version {changed[0].version} is now active."


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
        "observed_value",
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

    @admin.display(description="observed", ordering="observed")
    def observed_value(self, obj: Outcome) -> str:
        return f"{obj.observed:.1f}"

    @admin.display(description="predicted")
    def predicted(self, obj: Outcome) -> str:
        return f"{obj.predicted_value:.1f}"

    @admin.display(description="model version", ordering="version")
    def version_link(self, obj: Outcome):
        return _version_link(obj.version)
