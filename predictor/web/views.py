"""HTML pages: prediction, models, monitoring, outcomes, sign-in and sign-out. Thin: services, selectors, charts."""

from __future__ import annotations

import itertools
import logging
import math
from dataclasses import dataclass
from functools import wraps

from django.conf import settings
from django.contrib.auth.views import LogoutView, redirect_to_login
from django.core.paginator import Paginator
from django.db import Error as DBError
from django.http import Http404, HttpRequest, HttpResponse, HttpResponsePermanentRedirect, HttpResponseRedirect
from django.shortcuts import render
from django.templatetags.static import static
from django.urls import reverse
from django.utils.cache import patch_vary_headers
from django.utils.safestring import SafeString
from django.views.decorators.http import require_GET, require_http_methods

from predictor.access import READ_PREDICTION_LOG, RECORD_OUTCOMES, account_refusal, predictions_open_to, staff_refusal
from predictor.accounts.middleware import mark_personal
from predictor.api.throttling import throttle_wait
from predictor.ml.data import DIABETES_PATIENTS, DIABETES_SCALE, DIABETES_SOURCE
from predictor.ml.sgd import r2_standard_error
from predictor.monitoring import stats
from predictor.predictions import selectors as predictions
from predictor.predictions import services as outcome_services
from predictor.predictions import serving
from predictor.predictions.models import PredictionLog
from predictor.registry import selectors as registry
from predictor.registry.models import ModelVersion
from predictor.web import charts
from predictor.web.forms import OutcomeForm, PredictForm, ReferenceForm, shown

logger = logging.getLogger(__name__)

VERSIONS_PER_PAGE = 50
# Each monitored version is a panel of three charts; a page of them stays quick to read and render.
MONITORING_VERSIONS_PER_PAGE = 5


def prediction_access(view):
    """Open to anyone unless ``PREDICTOR_PREDICTIONS_REQUIRE_AUTH`` is set, as the API's ``PredictionAccess``.

    With the setting on, anonymous browsers go to the sign-in page and come back (``?next=``). The
    setting is read per request so that it can be changed in one place (and by tests).
    """

    @wraps(view)
    def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if not predictions_open_to(request.user):
            return redirect_to_login(request.get_full_path(), reverse("predictor:login"))
        return view(request, *args, **kwargs)

    return wrapped


def signed_in_page(refusal):
    """A page for signed-in accounts that ``refusal(user)`` (a reason, or None) lets in.

    One behaviour for every such page: anonymous visitors go to the site's sign-in page and come
    back (``?next=``); a signed-in account that may not use it gets the site's 403 page saying why.
    """

    def decorator(view):
        @wraps(view)
        def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path(), reverse("predictor:login"))
            reason = refusal(request.user)
            if reason is not None:
                return render(request, "403.html", {"message": reason}, status=403)
            return view(request, *args, **kwargs)

        return wrapped

    return decorator


def _unavailable(
    request: HttpRequest, *, heading: str, message: str, status: int = 503, retry_after: int = 30
) -> HttpResponse:
    response = render(
        request,
        "predictor/unavailable.html",
        {"heading": heading, "message": message, "nav": "predict", "plain_nav": True},
        status=status,
    )
    # A 503's causes are usually short-lived (a first training run, a database failover).
    response["Retry-After"] = str(retry_after)
    return response


def _too_many(request: HttpRequest, wait: float) -> HttpResponse:
    seconds = math.ceil(wait)
    return _unavailable(
        request,
        heading="Too many predictions",
        message=(
            f"This browser or address has asked for more predictions than the service allows in a short time "
            f"(the API's limit applies here too). Nothing was predicted or recorded. Try again in {seconds} "
            f"second{'s' if seconds != 1 else ''}."
        ),
        status=429,
        retry_after=seconds,
    )


def _no_model(request: HttpRequest) -> HttpResponse:
    return _unavailable(
        request,
        heading="No model is serving",
        message=(
            "No model version is active, so no prediction can be made. An administrator has to train "
            "and promote a model first (manage.py train, or promote a candidate in the admin)."
        ),
    )


def _database_down(request: HttpRequest, exc: DBError) -> HttpResponse:
    # Every prediction must be logged; one that cannot be is not shown (see predictor.predictions.serving).
    logger.warning("web prediction refused: database unavailable (%s)", type(exc).__name__, exc_info=exc)
    return _unavailable(
        request,
        heading="Prediction service unavailable",
        message=(
            "The prediction could not be recorded because the database is not reachable, so it was not "
            "shown. Please try again in a minute."
        ),
    )


# A signed cookie keeps the ids of the predictions this browser made lately, and the result page
# shows only those. Not the session: that would be a database row for every anonymous visitor.
_RESULTS_COOKIE = "predictor_results"
_RESULTS_SALT = "predictor.views.predict"
_RESULTS_KEPT = 20
_RESULTS_MAX_AGE = 24 * 3600  # seconds: a result is for the consultation, not for the record


def _own_results(request: HttpRequest) -> list[int]:
    """The ids in this browser's results cookie; none when it is missing, forged or expired."""
    raw = request.get_signed_cookie(_RESULTS_COOKIE, default="", salt=_RESULTS_SALT, max_age=_RESULTS_MAX_AGE)
    return [int(part) for part in raw.split(",") if part.isascii() and part.isdigit()]


@require_http_methods(["GET", "HEAD", "POST"])
@prediction_access
def predict(request: HttpRequest) -> HttpResponse:
    """``/``: the BMI form; a valid POST logs the prediction and redirects to ``/?result=<id>``.

    POST, then redirect, then GET: reloading the result page cannot send the form again, which
    logged the same patient twice and inflated the monitoring counts. A result is shown only to
    the browser that made it (a signed cookie), as often as it is reloaded, and in whichever tab
    asked for it. Posts count against the API's ``predict`` rate (``PREDICTOR_THROTTLE_PREDICT``).
    """
    if request.method != "POST":
        if "result" in request.GET:
            shown = _result_page(request, request.GET["result"])
            if shown is not None:
                return shown
        try:
            # Read afresh: a worker's cached model is only refreshed by a prediction's write, so
            # after a promotion the form would name the old version until this worker's next one.
            model = serving.active_model(refresh=True)
        except serving.NoActiveModel:
            return _no_model(request)
        except DBError as exc:
            return _database_down(request, exc)
        return render(request, "predictor/predict.html", _predict_context(PredictForm(), model_version=model.version))

    wait = throttle_wait(request, scope="predict")
    if wait is not None:
        return _too_many(request, wait)
    form = PredictForm(request.POST)
    if not form.is_valid():
        # Nothing is predicted or logged for bad input; the error is shown beside the field.
        context = _predict_context(form, model_version=None)
        return render(request, "predictor/predict.html", context, status=400)
    try:
        result = serving.predict([form.cleaned_data["bmi"]], channel=PredictionLog.Channel.WEB)
    except serving.NoActiveModel:
        return _no_model(request)
    except DBError as exc:
        return _database_down(request, exc)
    # 303: the browser follows with a GET. The fragment brings a phone, where the result sits
    # below the form, straight to it.
    response = _see_other(f"{reverse('predictor:predict')}?result={result.log_id}#result")
    kept = [*_own_results(request), result.log_id][-_RESULTS_KEPT:]
    response.set_signed_cookie(
        _RESULTS_COOKIE,
        ",".join(map(str, kept)),
        salt=_RESULTS_SALT,
        max_age=_RESULTS_MAX_AGE,
        secure=settings.SESSION_COOKIE_SECURE,
        httponly=True,
        samesite="Lax",
    )
    return mark_personal(response)


def _result_page(request: HttpRequest, raw_id: str) -> HttpResponse | None:
    """The form with this browser's logged prediction ``raw_id`` and the fit chart; None for the plain
    form (an id this browser did not make, or not an id)."""
    if not raw_id.isascii() or not raw_id.isdigit():
        return None
    log_id = int(raw_id)
    if log_id not in _own_results(request):
        return None
    try:
        log = predictions.prediction_get(prediction_id=log_id)
    except DBError as exc:
        logger.warning("web prediction %s recorded but not shown: database unavailable", log_id, exc_info=exc)
        return _unavailable(
            request,
            heading="Prediction recorded, not shown",
            message=(
                f"Prediction #{log_id} was recorded, but the database is not reachable to show it. "
                "Reload this page in a minute; do not enter the patient again."
            ),
        )
    if log is None or log.size != 1:  # pruned in between (or a batch's id): show the empty form
        return HttpResponseRedirect(reverse("predictor:predict"))
    version = log.model_version
    # The same rules and figures the API answered with (predictor/ml/cautions.py).
    explained = version.explain(log.bmi[0], log.predictions[0])
    cautions = explained.cautions()
    result = _SingleResult(
        bmi=log.bmi[0],
        prediction=log.predictions[0],
        log_id=log.pk,
        low=float(explained.low[0]),
        high=float(explained.high[0]),
        unreliable=bool(explained.unreliable[0]),
    )
    chart = _fit_chart(
        version,
        patient=(result.bmi, result.prediction),
        chart_id="prediction-chart",
        title=f"Prediction for BMI {result.bmi:g} kg/m² with model version {version.version}",
    )
    context = _predict_context(PredictForm(initial={"bmi": shown(result.bmi)}), model_version=version.version)
    context.update(
        {
            "result": result,
            "version": version,
            "chart": chart,
            "private_data_note": charts.PRIVATE_DATA_NOTE,
            # Reasons not to rely on the estimate, and notes that only qualify its interval.
            "cautions": [c for c in cautions if c.unreliable],
            "interval_notes": [c for c in cautions if not c.unreliable],
        }
    )
    response = render(request, "predictor/predict.html", context)
    # The page depends on the results cookie and shows a patient's figures: never stored by a cache.
    patch_vary_headers(response, ["Cookie"])
    return mark_personal(response)


@dataclass(frozen=True)
class _SingleResult:
    """What the result template shows of a logged single prediction."""

    bmi: float
    prediction: float
    log_id: int
    low: float  # the interval, clipped to the scale of the training data
    high: float
    unreliable: bool  # outside the training BMIs or the scale: shown subdued, with the reasons


def _fit_chart(version: ModelVersion, **kwargs) -> SafeString:
    """The version's training sample, its line and its prediction band (``kwargs``: the chart's own)."""
    return charts.fit_chart(
        sample=version.training_sample,
        slope=version.slope,
        intercept=version.intercept,
        band=version.interval.half_width,
        band_level=version.interval_level,
        **kwargs,
    )


def _predict_context(form: PredictForm, *, model_version: int | None) -> dict:
    return {
        "form": form,
        "model_version": model_version,
        "bmi_min": settings.PREDICTOR_BMI_MIN,
        "bmi_max": settings.PREDICTOR_BMI_MAX,
        # The one wording of the score and its source, as the API's unit text and the docs.
        "scale": DIABETES_SCALE,
        "patients": DIABETES_PATIENTS,
        "source": DIABETES_SOURCE,
        "nav": "predict",
    }


@require_GET
@prediction_access
def model_list(request: HttpRequest) -> HttpResponse:
    """``/models/``: every version with its held-out metrics, status and dates."""
    page = Paginator(registry.version_list(), VERSIONS_PER_PAGE).get_page(request.GET.get("page"))
    # Each R² with its standard error: on a few held-out rows the third decimal is noise.
    rows = [(v, r2_standard_error(v.r2_test, v.n_test)) for v in page.object_list]
    context = {"page": page, "versions": page.object_list, "rows": rows, "nav": "models"}
    return render(request, "predictor/model_list.html", context)


@require_GET
@prediction_access
def model_detail(request: HttpRequest, version: int) -> HttpResponse:
    """``/models/<version>/``: metrics, hyperparameters, fingerprint, history, loss and fit charts."""
    model_version = registry.version_get(version=version)
    if model_version is None:
        raise Http404(f"Model version {version} does not exist.")
    fit = _fit_chart(
        model_version,
        chart_id="fit-chart",
        title=f"Training data and fitted line of model version {model_version.version}",
    )
    loss = charts.loss_chart(
        losses=model_version.loss_curve,
        n_epochs=model_version.n_epochs,
        chart_id="loss-chart",
        title=f"Training loss by epoch, model version {model_version.version}",
    )
    context = {
        "version": model_version,
        "history": registry.version_history(version=model_version.version),
        "hyperparameters": sorted(model_version.hyperparameters.items()),
        "r2_se": r2_standard_error(model_version.r2_test, model_version.n_test),
        "fit_chart": fit,
        "loss_chart": loss,
        "private_data_note": charts.PRIVATE_DATA_NOTE,
        "is_active": model_version.status == ModelVersion.Status.ACTIVE,
        "intercept_sign": "−" if model_version.intercept < 0 else "+",
        "intercept_abs": abs(model_version.intercept),
        "nav": "models",
    }
    return render(request, "predictor/model_detail.html", context)


@require_GET
@signed_in_page(lambda user: staff_refusal(user, READ_PREDICTION_LOG, door="the monitoring page"))
def monitoring(request: HttpRequest) -> HttpResponse:
    """``/monitoring/``: live quality, drift and traffic of the active version and every one that served, paginated."""
    page = Paginator(stats.monitored_versions(), MONITORING_VERSIONS_PER_PAGE).get_page(request.GET.get("page"))
    panels = []
    for version in page.object_list:
        quality, days = stats.version_report(version)
        panels.append(
            {
                "version": version,
                "quality": quality,
                # The check_model rules, on figures already computed: no extra query.
                "health": stats.version_health(version, quality=quality),
                "days": days,
                "traffic_chart": charts.daily_bars(days, chart_id=f"traffic-v{version.version}"),
                "r2_chart": charts.r2_lines(days, threshold=version.threshold, chart_id=f"r2-v{version.version}"),
                "bmi_chart": charts.bmi_histogram(
                    quality, psi=stats.judged_psi(quality), chart_id=f"bmi-v{version.version}"
                ),
                "psi": stats.judged_psi(quality),
                "drift_reading": stats.drift_reading(quality),
            }
        )
    context = {
        "active": registry.active_version(),
        "panels": panels,
        "page": page,
        "min_outcomes": settings.PREDICTOR_MONITOR_MIN_OUTCOMES,
        "psi_alert": settings.PREDICTOR_MONITOR_PSI_ALERT,
        "coverage_alpha": settings.PREDICTOR_MONITOR_COVERAGE_ALPHA,
        "min_predictions": settings.PREDICTOR_MONITOR_MIN_PREDICTIONS,
        "nav": "monitoring",
    }
    return render(request, "predictor/monitoring.html", context)


@require_http_methods(["GET", "HEAD", "POST"])
@signed_in_page(lambda user: account_refusal(user, RECORD_OUTCOMES, door="the outcome page"))
def outcome_record(request: HttpRequest) -> HttpResponse:
    """``/outcomes/``: find a prediction by its reference, record the progression observed a year later.

    ``?reference=<id>`` shows the prediction and the outcome form; a valid POST records it through
    ``outcome_record`` (the API's rules: one outcome per prediction) and redirects back to that
    page, which confirms it. POST, redirect, GET: a reload cannot record twice.
    """
    context = {"nav": "outcomes"}
    if "reference" not in request.GET:
        context["reference_form"] = ReferenceForm()
        return render(request, "predictor/outcome.html", context)
    reference_form = ReferenceForm(request.GET)
    context["reference_form"] = reference_form
    if not reference_form.is_valid():
        return render(request, "predictor/outcome.html", context, status=400)
    log = predictions.prediction_get(prediction_id=reference_form.cleaned_data["reference"])
    if log is None:
        reference = reference_form.cleaned_data["reference"]
        reference_form.add_error("reference", f"No prediction has the reference #{reference}.")
        return render(request, "predictor/outcome.html", context, status=404)
    outcomes = list(log.outcomes.order_by("position"))
    form = OutcomeForm(request.POST if request.method == "POST" else None, size=log.size)
    status = 200
    if form.is_bound:
        if form.is_valid():
            try:
                outcome = outcome_services.outcome_record(
                    prediction_id=log.pk,
                    observed=form.cleaned_data["observed"],
                    position=form.cleaned_data.get("position"),
                    user=request.user,
                    source="web",
                )
            except outcome_services.InvalidOutcome as exc:
                form.add_error(exc.field if exc.field in form.fields else "observed", str(exc))
                status = 400
            except outcome_services.OutcomeExists as exc:
                form.add_error(None, f"{exc} A recorded outcome is not changed here.")
                status = 409
            else:
                page = reverse("predictor:outcome-record")
                url = f"{page}?reference={log.pk}&recorded={outcome.position}#confirmation"
                return _see_other(url)
        else:
            status = 400
    recorded = request.GET.get("recorded")
    context.update(
        {
            "log": log,
            "items": list(
                itertools.islice(zip(range(log.size), log.bmi, log.predictions, strict=True), OUTCOME_ITEMS_SHOWN)
            ),
            "outcomes": outcomes,
            "just_recorded": next((o for o in outcomes if str(o.position) == recorded), None),
            # A single prediction with its outcome is done; a batch may take one per position.
            "form": form if len(outcomes) < log.size or form.errors else None,
        }
    )
    response = render(request, "predictor/outcome.html", context, status=status)
    return mark_personal(response)


# A batch's page lists this many of its predictions (the position field takes any of them).
OUTCOME_ITEMS_SHOWN = 20


def _see_other(url: str) -> HttpResponse:
    response = HttpResponseRedirect(url)
    response.status_code = 303
    return response


class SignOutView(LogoutView):
    """``/logout/``: GET shows a page with the sign-out button (a link cannot sign out: CSRF); POST
    signs out and confirms it on ``predictor/signed_out.html``."""

    http_method_names = ["get", "head", "post", "options"]
    template_name = "predictor/signed_out.html"

    def get(self, request: HttpRequest, *args, **kwargs) -> HttpResponse:
        return render(request, "predictor/logout.html", {"nav": "account"})


@require_GET
def favicon(request: HttpRequest) -> HttpResponse:
    """``/favicon.ico``: the site's icon (a permanent redirect to the static SVG, hashed in production)."""
    return HttpResponsePermanentRedirect(static("predictor/favicon.svg"))
