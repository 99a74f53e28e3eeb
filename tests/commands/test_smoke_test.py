"""smoke_test's prediction-log check against a live server: both entries read back at /api/v1/predictions/<id>.

tests/deploy/test_gunicorn.py runs the whole command against gunicorn; these tests drive the log
check directly, against the test server, so that a logged entry that differs from the answer fails.
"""

import re
from io import StringIO

import pytest
from django.core.management import call_command

from predictor.management.commands.smoke_test import BATCH_BMI, SINGLE_BMI, CheckFailed, SmokeTest
from predictor.models import PredictionLog
from tests.conftest import token_for


@pytest.fixture(autouse=True)
def _static_without_manifest(settings):
    # /docs renders {% static %}; the test server has no collectstatic manifest.
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }


@pytest.fixture
def smoke(live_server, active_version, staff_user):
    token = token_for(staff_user)
    return SmokeTest(base_url=live_server.url, token=token, timeout=10)


def test_smoke_test_reads_both_entries_back_and_passes(smoke):
    out = StringIO()
    call_command("smoke_test", url=smoke.base_url, token=smoke.token, stdout=out)

    report = out.getvalue()
    single = PredictionLog.objects.get(channel="api")
    batch = PredictionLog.objects.get(channel="batch")
    assert (single.bmi, batch.bmi) == ([SINGLE_BMI], BATCH_BMI)
    assert (
        f"PASS  prediction log  prediction_id {single.pk}: 1 of 1 predictions logged as returned; "
        f"batch_id {batch.pk}: 5 of 5 predictions logged as returned"
    ) in report
    assert "Smoke test passed: 6 of 6 checks." in report


def _answered(smoke: SmokeTest) -> tuple[PredictionLog, PredictionLog]:
    smoke.check_healthz()
    smoke.check_predict()
    smoke.check_batch()
    return (
        PredictionLog.objects.get(pk=smoke.prediction["prediction_id"]),
        PredictionLog.objects.get(pk=smoke.batch["batch_id"]),
    )


def test_log_check_compares_every_prediction_of_the_batch_with_the_answer(smoke):
    _, batch = _answered(smoke)
    assert f"batch_id {batch.pk}: 5 of 5 predictions logged as returned" in smoke.check_log()
    # One value off in the last place: logged is not what was answered.
    altered = [*batch.predictions[:-1], batch.predictions[-1] + 1e-9]
    PredictionLog.objects.filter(pk=batch.pk).update(predictions=altered)

    with pytest.raises(CheckFailed, match=rf"GET /api/v1/predictions/{batch.pk}: predictions .*but the call returned"):
        smoke.check_log()


def test_log_check_compares_the_single_prediction_with_the_answer(smoke):
    single, _ = _answered(smoke)
    assert smoke.check_log().startswith(f"prediction_id {single.pk}: 1 of 1 predictions logged as returned")
    PredictionLog.objects.filter(pk=single.pk).update(predictions=[single.predictions[0] + 1e-9])

    with pytest.raises(CheckFailed, match=rf"GET /api/v1/predictions/{single.pk}: predictions .*but the call returned"):
        smoke.check_log()


def test_log_check_fails_when_the_bmis_are_not_logged_in_order(smoke):
    _, batch = _answered(smoke)
    PredictionLog.objects.filter(pk=batch.pk).update(bmi=list(reversed(BATCH_BMI)))

    with pytest.raises(CheckFailed, match=r"bmi \[40\.0, .*expected \[18\.5, "):
        smoke.check_log()


def test_log_check_fails_when_the_batch_was_not_logged(smoke):
    _, batch = _answered(smoke)
    PredictionLog.objects.filter(pk=batch.pk).delete()

    with pytest.raises(
        CheckFailed, match=rf"GET /api/v1/predictions/{batch.pk} -> 404, expected 200: .*does not exist"
    ):
        smoke.check_log()


def test_log_check_fails_when_the_single_prediction_was_not_logged(smoke):
    single, _ = _answered(smoke)
    PredictionLog.objects.filter(pk=single.pk).delete()

    with pytest.raises(CheckFailed, match=rf"GET /api/v1/predictions/{single.pk} -> 404, expected 200"):
        smoke.check_log()


@pytest.mark.parametrize("returned", ["5dc67933-af01-4ae1-b400-37b4c3ead916", "12", 12.0, True, None])
def test_log_check_fails_when_the_batch_id_is_not_an_integer(smoke, returned):
    _answered(smoke)
    smoke.batch["batch_id"] = returned

    with pytest.raises(CheckFailed, match=re.escape(f"returned batch_id {returned!r}, not an integer id")):
        smoke.check_log()


def test_log_check_fails_when_the_entry_does_not_hold_what_was_sent(smoke):
    _, batch = _answered(smoke)
    # The batch's id answered for the single prediction: the log holds five values there, not one.
    smoke.prediction["prediction_id"] = batch.pk

    with pytest.raises(CheckFailed, match=rf"GET /api/v1/predictions/{batch.pk}: count 5, expected 1"):
        smoke.check_log()


def test_log_check_fails_with_a_token_that_may_not_read_the_log(smoke, plain_user):
    _answered(smoke)
    smoke.token = token_for(plain_user)

    with pytest.raises(CheckFailed, match=r"-> 403, expected 200: .*Only staff users"):
        smoke.check_log()


def test_log_check_has_nothing_to_look_for_without_a_batch(smoke):
    smoke.check_healthz()
    with pytest.raises(CheckFailed, match="nothing to look for: the single or the batch prediction failed"):
        smoke.check_log()
