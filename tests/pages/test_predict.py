"""The prediction page: form, validation beside the field, CSRF, logging, and the 503 pages."""

import html as html_lib
import re

import pytest
from django.conf import settings
from django.contrib.sessions.models import Session
from django.core.cache import cache
from django.db import OperationalError, connection
from django.template.loader import render_to_string
from django.test import Client
from django.urls import reverse

from predictor.models import PredictionLog

URL = reverse("predictor:predict")


def field_error(html: str) -> str:
    match = re.search(r'<p class="field-error" id="id_bmi-error" role="alert">(.*?)</p>', html, re.S)
    assert match, "no error message beside the BMI field"
    return html_lib.unescape(re.sub(r"<[^>]+>", "", match.group(1))).strip()


def database_down():
    """Every query in the block fails as if PostgreSQL were unreachable."""

    def refuse_everything(execute, sql, params, many, context):
        raise OperationalError("could not connect to server")

    return connection.execute_wrapper(refuse_everything)


def test_form_has_a_labelled_bmi_input_and_csrf_token(client, active_version):
    response = client.get(URL)
    html = response.content.decode()
    assert response.status_code == 200
    assert '<label for="id_bmi">Body-mass index (BMI)</label>' in html
    assert re.search(r'<input[^>]+name="bmi"[^>]+aria-describedby="id_bmi-hint"', html)
    assert 'inputmode="decimal"' in html
    assert "csrfmiddlewaretoken" in html
    assert '<meta name="viewport"' in html
    assert f"model version {active_version.version}" in html
    # Styles live in the static CSS so a strict Content-Security-Policy keeps working.
    assert "style=" not in html
    assert "<script" not in html


def test_valid_bmi_shows_the_logged_prediction_version_and_chart(client, active_version):
    posted = client.post(URL, {"bmi": "27.5"})
    assert posted.status_code == 303
    assert posted["Location"] == f"{URL}?result={PredictionLog.objects.get().pk}#result"
    response = client.get(posted["Location"])
    html = response.content.decode()
    assert response.status_code == 200
    expected = active_version.slope * 27.5 + active_version.intercept
    assert f'data-testid="prediction">{expected:.1f}<' in html
    assert f">v{active_version.version}</a>" in html
    assert '<svg id="prediction-chart" xmlns="http://www.w3.org/2000/svg" class="chart chart-fit"' in html
    assert 'role="img"' in html
    assert 'class="patient-point"' in html
    assert "this patient, BMI 27.5" in html
    log = PredictionLog.objects.get()
    assert log.channel == PredictionLog.Channel.WEB
    assert (log.size, log.bmi) == (1, [27.5])
    assert log.model_version_id == active_version.version
    assert log.predictions == [pytest.approx(expected)]
    # The reference a clinician quotes when recording the observed outcome.
    assert 'data-testid="prediction-id"' in html and f">#{log.pk}<" in html


@pytest.mark.parametrize("value", ["10", "80", " 31.2 ", "27,5"])
def test_bmi_inside_the_range_is_accepted(client, active_version, value):
    assert client.post(URL, {"bmi": value}, follow=True).status_code == 200
    assert PredictionLog.objects.count() == 1


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "Enter the patient's BMI in kg/m²."),
        ("   ", "Enter the patient's BMI in kg/m²."),
        ("abc", "Enter the BMI as a number in kg/m², for example 27.5."),
        ("27.5kg", "Enter the BMI as a number in kg/m², for example 27.5."),
        ("1_0.5", "Enter the BMI as a number in kg/m², for example 27.5."),
        ("nan", "Enter a finite number; NaN and infinity are not BMI values."),
        ("NaN", "Enter a finite number; NaN and infinity are not BMI values."),
        ("inf", "Enter a finite number; NaN and infinity are not BMI values."),
        ("-Infinity", "Enter a finite number; NaN and infinity are not BMI values."),
        ("1e400", "Enter the number without an exponent (e.g. 10, not 1e1)."),
        ("1e1", "Enter the number without an exponent (e.g. 10, not 1e1)."),
        ("5" * 5000, "Enter a BMI between 10 and 80 kg/m²."),
        ("0." + "0" * 4999 + "1", "Enter a BMI between 10 and 80 kg/m²."),
        ("27.5" + " kg/m² please" * 3, "Enter at most 20 characters."),
        ("9.99", "Enter a BMI between 10 and 80 kg/m²."),
        ("80.01", "Enter a BMI between 10 and 80 kg/m²."),
        ("-25", "Enter a BMI between 10 and 80 kg/m²."),
    ],
)
def test_invalid_bmi_is_refused_beside_the_field_and_not_logged(client, active_version, value, message):
    response = client.post(URL, {"bmi": value})
    html = response.content.decode()
    assert response.status_code == 400
    assert field_error(html) == f"Error: {message}"
    assert 'aria-invalid="true"' in html
    assert 'aria-describedby="id_bmi-error id_bmi-hint"' in html
    assert "<title>Error: " in html
    assert 'class="patient-point"' not in html
    assert PredictionLog.objects.count() == 0


def test_missing_bmi_field_is_refused(client, active_version):
    response = client.post(URL, {})
    assert response.status_code == 400
    assert field_error(response.content.decode()) == "Error: Enter the patient's BMI in kg/m²."
    assert PredictionLog.objects.count() == 0


def test_range_follows_settings(client, active_version, settings):
    settings.PREDICTOR_BMI_MIN = 15.0
    settings.PREDICTOR_BMI_MAX = 50.0
    response = client.post(URL, {"bmi": "55"})
    assert response.status_code == 400
    assert field_error(response.content.decode()) == "Error: Enter a BMI between 15 and 50 kg/m²."
    assert "In kg/m², between 15 and 50." in response.content.decode()


def test_post_without_csrf_token_is_forbidden(active_version):
    client = Client(enforce_csrf_checks=True)
    response = client.post(URL, {"bmi": "27.5"})
    assert response.status_code == 403
    assert PredictionLog.objects.count() == 0
    # Our page, styled by the site's CSS: Django's fallback has an inline style the CSP blocks.
    html = response.content.decode()
    assert "The form could not be sent" in html and "Nothing was recorded" in html
    assert "style=" not in html and "DEBUG" not in html


@pytest.mark.parametrize(
    ("template", "heading"),
    [("400.html", "Bad request"), ("403.html", "Not allowed"), ("500.html", "Something went wrong on our side")],
)
def test_error_pages_are_the_sites_own(template, heading):
    # Django renders 500.html with an empty context (no request), so the page must not need one.
    html = render_to_string(template)
    assert f"<h1>{heading}</h1>" in html
    assert "site.css" in html and "style=" not in html


def test_post_with_the_form_csrf_token_is_accepted(active_version):
    client = Client(enforce_csrf_checks=True)
    html = client.get(URL).content.decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html).group(1)
    response = client.post(URL, {"bmi": "27.5", "csrfmiddlewaretoken": token}, follow=True)
    assert response.status_code == 200
    assert PredictionLog.objects.count() == 1


def test_no_active_model_gives_a_503_page_not_a_form(client, train_version):
    train_version(promote=False)  # a candidate exists, but nothing serves
    response = client.get(URL)
    assert response.status_code == 503
    assert response["Retry-After"] == "30"
    html = response.content.decode()
    assert "No model is serving" in html
    assert 'name="bmi"' not in html


@pytest.mark.django_db
def test_post_with_no_active_model_gives_a_503_page(client):
    response = client.post(URL, {"bmi": "27.5"})
    assert response.status_code == 503
    assert "No model is serving" in response.content.decode()
    assert PredictionLog.objects.count() == 0


def test_database_failure_while_logging_gives_a_503_page(client, active_version):
    def refuse_log_insert(execute, sql, params, many, context):
        # The log write: a plain INSERT, or the prepared statement that holds it (serving's _log_single).
        if sql.startswith(
            ("INSERT INTO predictor_predictionlog", "PREPARE predictor_log_single", "EXECUTE predictor_log_single")
        ):
            raise OperationalError("server closed the connection unexpectedly")
        return execute(sql, params, many, context)

    with connection.execute_wrapper(refuse_log_insert):
        response = client.post(URL, {"bmi": "27.5"})
    assert response.status_code == 503
    html = response.content.decode()
    assert "could not be recorded" in html
    assert 'data-testid="prediction"' not in html
    assert PredictionLog.objects.count() == 0


@pytest.mark.django_db
def test_database_down_on_the_form_page_gives_a_503_page(client):
    with database_down():
        response = client.get(URL)
    assert response.status_code == 503
    assert "Prediction service unavailable" in response.content.decode()


def test_other_methods_are_not_allowed(client, active_version):
    assert client.put(URL, {"bmi": "27.5"}).status_code == 405


def test_with_auth_required_a_clinician_signs_in_and_comes_back_to_the_form(
    client, plain_user, active_version, settings
):
    settings.PREDICTOR_PREDICTIONS_REQUIRE_AUTH = True
    refused = client.post(URL, {"bmi": "27.5"})
    assert refused.status_code == 302 and refused["Location"] == f"/login/?next={URL}"
    assert not PredictionLog.objects.exists()

    page = client.get(refused["Location"])
    assert page.status_code == 200
    assert f'name="next" value="{URL}"' in page.content.decode()
    wrong = client.post("/login/", {"username": "clinician", "password": "wrong", "next": URL})
    assert wrong.status_code == 200 and not PredictionLog.objects.exists()
    # The admin's own login refuses non-staff accounts; this one takes any active user.
    signed_in = client.post("/login/", {"username": "clinician", "password": "clinician-pass-123", "next": URL})
    assert signed_in.status_code == 302 and signed_in["Location"] == URL
    assert client.post(URL, {"bmi": "27.5"}, follow=True).status_code == 200
    assert PredictionLog.objects.get().channel == PredictionLog.Channel.WEB

    # Signed in, the header says who, and signing out ends the session.
    page = client.get(URL).content.decode()
    assert "Sign out (clinician)" in page
    assert "You are signed out" in client.post("/logout/").content.decode()
    assert client.post(URL, {"bmi": "27.5"}).status_code == 302  # back to the sign-in page
    assert "Sign out" not in client.get("/login/").content.decode()


def test_a_bmi_beyond_the_training_data_is_shown_as_an_extrapolation(client, active_version):
    low, high = active_version.training_bmi_range  # about 18 to 42 kg/m² in the diabetes data
    inside = client.post(URL, {"bmi": f"{(low + high) / 2:.1f}"}, follow=True).content.decode()
    outside = client.post(URL, {"bmi": "10"}, follow=True).content.decode()

    assert 'data-testid="cautions"' not in inside
    assert 'data-testid="cautions"' in outside
    assert f"outside the BMIs this model was trained on ({low:.1f} to {high:.1f} kg/m²)" in outside
    assert active_version.slope * 10 + active_version.intercept < 0  # the diabetes fit at BMI 10
    assert "a negative score, which is not a possible progression value" in outside
    assert PredictionLog.objects.count() == 2  # both logged: a caution is not a refusal


@pytest.mark.parametrize(("bmi", "reason"), [("11", "a negative score"), ("50", "above the highest score")])
def test_an_impossible_or_extrapolated_estimate_is_subdued_not_a_headline(client, active_version, bmi, reason):
    html = client.post(URL, {"bmi": bmi}, follow=True).content.decode()

    assert 'class="result-number"' not in html  # the big orange figure is for estimates inside the data
    assert f'data-testid="no-estimate">No reliable estimate for BMI {bmi} kg/m²<' in html
    prediction = active_version.slope * float(bmi) + active_version.intercept
    assert f'<span class="subdued-number" data-testid="prediction">{prediction:.1f}</span>' in html
    assert reason in html and "outside the BMIs this model was trained on (18.0 to 42.2 kg/m²)" in html
    assert 'data-code="bmi_outside_training_range"' in html and 'data-code="prediction_outside_scale"' in html
    # The interval end beyond the scale is shown clipped to it, and said so.
    assert 'data-code="interval_clipped"' in html and "is shown as" in html


def test_the_result_states_the_interval_in_words_and_explains_the_score(client, active_version):
    html = client.post(URL, {"bmi": "27.4"}, follow=True).content.decode()

    explained = active_version.explain(27.4, active_version.slope * 27.4 + active_version.intercept)
    low, high = round(float(explained.low[0])), round(float(explained.high[0]))
    assert (low, high) == (39, 287)
    assert "95 % of patients with this BMI are expected between <strong>39</strong> and <strong>287</strong>." in html
    assert 'class="result-number" data-testid="prediction">163.2<' in html
    assert "Typical error" not in html  # the MAE read as ± was not the spread of patients
    assert 'class="fit-band"' in html and "Shaded: the 95% prediction interval" in html
    assert "95 % prediction interval</li>" in html
    # The explanation stays with the result: the score, its scale and where the data come from.
    about = html[html.index('data-testid="about"') :]
    assert "from 25 to 346 among those patients" in about
    assert "the diabetes study bundled with scikit-learn (442 patients; Efron" in about
    assert "held out: 100 % inside; 10-fold cross-validation: 96.7 %" in about
    assert "350" not in about


def test_an_interval_end_beyond_the_scale_is_clipped_and_said_so(client, active_version):
    html = client.post(URL, {"bmi": "20"}, follow=True).content.decode()  # inside the data, low end below 25
    assert 'class="result-number"' in html  # a usable estimate
    assert "expected between <strong>25</strong> and" in html
    assert 'data-testid="interval-note" data-code="interval_clipped"' in html
    assert "the lower end (" in html and ") is shown as 25." in html


def test_the_form_names_the_version_active_now_not_the_one_this_worker_cached(client, train_version):
    first = train_version(promote=True)
    assert f"model version {first.version}" in client.get(URL).content.decode()
    second = train_version(promote=True, random_state=1)  # promoted behind the cache's back

    page = client.get(URL).content.decode()
    assert f"model version {second.version}" in page


def test_reloading_the_result_shows_it_again_without_logging_the_patient_again(client, active_version):
    posted = client.post(URL, {"bmi": "27.5"})
    assert client.head(posted["Location"]).status_code == 200
    first = client.get(posted["Location"]).content.decode()
    reloaded = client.get(posted["Location"]).content.decode()

    log = PredictionLog.objects.get()  # one row: a reload is a GET, not the form sent again
    assert f">#{log.pk}<" in first and f">#{log.pk}<" in reloaded
    assert "Sign out" not in first  # an anonymous visitor has a results cookie, not an account
    assert 'data-testid="prediction"' not in client.get(URL).content.decode()  # the plain form


def test_two_tabs_each_show_their_own_result(client, active_version):
    first = client.post(URL, {"bmi": "25"})["Location"]
    second = client.post(URL, {"bmi": "35"})["Location"]
    assert 'data-testid="bmi">25 kg/m²' in client.get(first).content.decode()
    assert 'data-testid="bmi">35 kg/m²' in client.get(second).content.decode()


def test_a_result_is_shown_only_to_the_browser_that_made_it(client, active_version):
    mine = client.post(URL, {"bmi": "27.5"})["Location"]
    other = Client()
    theirs = other.post(URL, {"bmi": "31"})["Location"]
    assert 'data-testid="bmi">31 kg/m²' in other.get(theirs).content.decode()  # the other browser's works

    html = other.get(mine).content.decode()
    assert 'data-testid="prediction"' not in html  # another browser's result: the plain form
    assert 'data-testid="prediction"' not in other.get(f"{URL}?result=abc").content.decode()


def test_a_database_failure_on_the_result_page_says_the_prediction_was_recorded(client, active_version):
    posted = client.post(URL, {"bmi": "27.5"})

    with database_down():
        response = client.get(posted["Location"])
    html = response.content.decode()
    assert response.status_code == 503
    assert f"Prediction #{PredictionLog.objects.get().pk} was recorded" in html
    assert "do not enter the patient again" in html
    assert f">#{PredictionLog.objects.get().pk}<" in client.get(posted["Location"]).content.decode()  # later


def test_the_admin_link_is_not_offered_to_a_signed_in_clinician(client, plain_user, staff_user, active_version):
    assert ">Admin</a>" in client.get(URL).content.decode()  # anonymous: staff sign in there
    client.force_login(plain_user)
    assert ">Admin</a>" not in client.get(URL).content.decode()
    client.force_login(staff_user)
    assert ">Admin</a>" in client.get(URL).content.decode()


def test_database_down_gives_the_503_page_to_a_visitor_with_a_session_too(client, plain_user, active_version):
    # The header's user comes from the session, which lives in the database: the 503 page must
    # not need it, or a signed-in clinician (or any visitor who predicted before) would get a 500.
    client.force_login(plain_user)

    with database_down():
        response = client.get(URL)
    assert response.status_code == 503
    assert "Prediction service unavailable" in response.content.decode()


def test_an_anonymous_visitor_creates_no_session_row(client, active_version):
    assert client.get(URL).status_code == 200
    posted = client.post(URL, {"bmi": "27.5"})
    shown = client.get(posted["Location"])

    assert 'data-testid="prediction"' in shown.content.decode()
    assert not Session.objects.exists()
    assert settings.SESSION_COOKIE_NAME not in client.cookies
    cookie = posted.cookies["predictor_results"]
    assert cookie["httponly"] and cookie["samesite"] == "Lax"


def test_a_forged_or_expired_results_cookie_shows_no_result(client, active_version, settings):
    posted = client.post(URL, {"bmi": "27.5"})
    log_id = PredictionLog.objects.get().pk

    forged = Client()
    forged.cookies["predictor_results"] = str(log_id)  # the id without the signature
    assert 'data-testid="prediction"' not in forged.get(posted["Location"]).content.decode()
    # Signed with another key (as after a SECRET_KEY rotation): refused, not an error.
    settings.SECRET_KEY = settings.SECRET_KEY + "-rotated"
    assert 'data-testid="prediction"' not in client.get(posted["Location"]).content.decode()


def test_the_result_page_is_never_stored_by_a_cache(client, active_version):
    posted = client.post(URL, {"bmi": "27.5"})
    shown = client.get(posted["Location"])

    for response in (posted, shown):
        assert "no-store" in response["Cache-Control"] and "private" in response["Cache-Control"]
    assert "Cookie" in shown["Vary"]


@pytest.fixture
def _predict_rate_of_three(settings):
    settings.PREDICTOR_THROTTLE_PREDICT = "3/min"
    cache.clear()
    yield
    cache.clear()


@pytest.mark.usefixtures("_predict_rate_of_three")
def test_form_posts_are_rate_limited_like_the_api(client, active_version):
    for _ in range(3):
        assert client.post(URL, {"bmi": "27.5"}).status_code == 303

    refused = client.post(URL, {"bmi": "27.5"})

    assert refused.status_code == 429
    assert 1 <= int(refused["Retry-After"]) <= 60
    page = refused.content.decode()
    assert "Too many predictions" in page and "Nothing was predicted or recorded" in page
    assert PredictionLog.objects.count() == 3
    # One budget per client: the API's predict scope is spent too.
    assert client.post("/api/v1/predict", {"bmi": 27.5}, content_type="application/json").status_code == 429
    # Another client is not affected.
    assert Client(REMOTE_ADDR="192.0.2.8").post(URL, {"bmi": "27.5"}).status_code == 303


def test_the_bmi_field_has_a_length_limit_and_the_result_shows_the_bmi_as_typed(client, active_version):
    assert 'maxlength="20"' in client.get(URL).content.decode()
    html = client.post(URL, {"bmi": "50"}, follow=True).content.decode()
    assert 'value="50"' in html and 'value="50.0"' not in html


def test_an_invalid_bmi_takes_focus_and_its_message_is_an_alert(client, active_version):
    html = client.post(URL, {"bmi": "abc"}).content.decode()
    field = re.search(r"<input[^>]*id=\"id_bmi\"[^>]*>", html).group(0)
    assert "autofocus" in field
    assert re.search(r'<p class="field-error" id="id_bmi-error" role="alert">', html)
