"""HTML pages: the prediction form and the model registry pages. Thin: serving, selectors, charts."""

from __future__ import annotations

import logging
from functools import wraps

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.core.paginator import Paginator
from django.db import Error as DBError
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods

from predictor import charts, selectors, serving
from predictor.forms import PredictForm
from predictor.models import ModelVersion, PredictionLog

logger = logging.getLogger(__name__)

VERSIONS_PER_PAGE = 50


def prediction_access(view):
    """Open to anyone unless ``PREDICTOR_PREDICTIONS_REQUIRE_AUTH`` is set, as the API's ``PredictionAccess``.

    With the setting on, anonymous browsers go to the sign-in page and come back (``?next=``). The
    setting is read per request so that it can be changed in one place (and by tests).
    """

    @wraps(view)
    def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if settings.PREDICTOR_PREDICTIONS_REQUIRE_AUTH and not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path(), reverse("predictor:login"))
        return view(request, *args, **kwargs)

    return wrapped


def _unavailable(request: HttpRequest, *, heading: str, message: str) -> HttpResponse:
    response = render(
        request,
        "predictor/unavailable.html",
        {"heading": heading, "message": message, "nav": "predict"},
        status=503,
    )
    # Both causes are usually short-lived (a first training run, a database failover).
    response["Retry-After"] = "30"
    return response


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
    # Every prediction must be logged; one that cannot be is not shown (see predictor.serving).
    logger.warning("web prediction refused: database unavailable (%s)", type(exc).__name__, exc_info=exc)
    return _unavailable(
        request,
        heading="Prediction service unavailable",
        message=(
            "The prediction could not be recorded because the database is not reachable, so it was not "
            "shown. Please try again in a minute."
        ),
    )


# The session key under which a successful POST leaves its prediction's id for the page it redirects to.
_SHOWN_RESULT = "predictor_shown_result"


@require_http_methods(["GET", "HEAD", "POST"])
@prediction_access
def predict(request: HttpRequest) -> HttpResponse:
    """``/``: the BMI form; a valid POST logs the prediction and redirects to the page showing it.

    POST, then redirect, then GET: reloading the result page cannot send the form again, which
    logged the same patient twice and inflated the monitoring counts. The result is shown once,
    to the session that asked for it.
    """
    if request.method != "POST":
        shown = request.session.pop(_SHOWN_RESULT, None)
        if shown is not None:
            return _result_page(request, shown)
        try:
            # Read afresh: a worker's cached model is only refreshed by a prediction's write, so
            # after a promotion the form would name the old version until this worker's next one.
            model = serving.active_model(refresh=True)
        except serving.NoActiveModel:
            return _no_model(request)
        except DBError as exc:
            return _database_down(request, exc)
        return render(request, "predictor/predict.html", _predict_context(PredictForm(), model_version=model.version))

    form = PredictForm(request.POST)
    if not form.is_valid():
        # Nothing is predicted or logged for bad input; the error is shown beside the field.
        context = _predict_context(form, model_version=None)
        return render(request, "predictor/predict.html", context, status=400)
    try:
        result = serving.predict_one(form.cleaned_data["bmi"], channel=PredictionLog.Channel.WEB)
    except serving.NoActiveModel:
        return _no_model(request)
    except DBError as exc:
        return _database_down(request, exc)
    request.session[_SHOWN_RESULT] = result.log_id
    # 303: the browser follows with a GET. The fragment brings a phone, where the result sits
    # below the form, straight to it.
    response = HttpResponseRedirect(reverse("predictor:predict") + "#result")
    response.status_code = 303
    return response


def _result_page(request: HttpRequest, log_id: int) -> HttpResponse:
    """The form with the logged prediction ``log_id``, its model version and the fit chart."""
    try:
        log = selectors.prediction_get(prediction_id=log_id)
    except DBError as exc:
        return _database_down(request, exc)
    if log is None:  # pruned in between: show the empty form
        return HttpResponseRedirect(reverse("predictor:predict"))
    version = log.model_version
    result = serving.Prediction(
        model=serving.ServingModel(version=version.version, slope=version.slope, intercept=version.intercept),
        bmi=log.bmi,
        prediction=log.prediction,
        log_id=log.pk,
    )
    chart = charts.fit_chart(
        sample=version.training_sample,
        slope=version.slope,
        intercept=version.intercept,
        patient=(result.bmi, result.prediction),
        chart_id="prediction-chart",
        title=f"Prediction for BMI {result.bmi:g} kg/m² with model version {version.version}",
    )
    context = _predict_context(PredictForm(initial={"bmi": result.bmi}), model_version=version.version)
    context.update(
        {
            "result": result,
            "version": version,
            "chart": chart,
            "private_data_note": charts.PRIVATE_DATA_NOTE,
            "cautions": _cautions(result, version),
        }
    )
    return render(request, "predictor/predict.html", context)


def _cautions(result: serving.Prediction, version) -> list[str]:
    """Why this estimate deserves less trust than usual: a BMI beyond the training data, an impossible score."""
    cautions = []
    known = version.training_bmi_range if version is not None else None
    if known is not None and not known[0] <= result.bmi <= known[1]:
        cautions.append(
            f"BMI {result.bmi:g} kg/m² is outside the BMIs this model was trained on "
            f"({known[0]:.1f} to {known[1]:.1f} kg/m²): the estimate extends a straight line beyond the "
            "data and may be far off."
        )
    if result.prediction < 0:
        cautions.append("A negative score is not a possible progression value: do not rely on this estimate.")
    return cautions


def _predict_context(form: PredictForm, *, model_version: int | None) -> dict:
    return {
        "form": form,
        "model_version": model_version,
        "bmi_min": settings.PREDICTOR_BMI_MIN,
        "bmi_max": settings.PREDICTOR_BMI_MAX,
        "nav": "predict",
    }


@require_GET
@prediction_access
def model_list(request: HttpRequest) -> HttpResponse:
    """``/models/``: every version with its held-out metrics, status and dates."""
    page = Paginator(selectors.version_list(), VERSIONS_PER_PAGE).get_page(request.GET.get("page"))
    return render(request, "predictor/model_list.html", {"page": page, "versions": page.object_list, "nav": "models"})


@require_GET
@prediction_access
def model_detail(request: HttpRequest, version: int) -> HttpResponse:
    """``/models/<version>/``: metrics, hyperparameters, fingerprint, history, loss and fit charts."""
    model_version = selectors.version_get(version=version)
    if model_version is None:
        raise Http404(f"Model version {version} does not exist.")
    fit = charts.fit_chart(
        sample=model_version.training_sample,
        slope=model_version.slope,
        intercept=model_version.intercept,
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
        "history": selectors.version_history(version=model_version.version),
        "hyperparameters": sorted(model_version.hyperparameters.items()),
        "fit_chart": fit,
        "loss_chart": loss,
        "private_data_note": charts.PRIVATE_DATA_NOTE,
        "is_active": model_version.status == ModelVersion.Status.ACTIVE,
        "intercept_sign": "−" if model_version.intercept < 0 else "+",
        "intercept_abs": abs(model_version.intercept),
        "nav": "models",
    }
    return render(request, "predictor/model_detail.html", context)
