"""smoke_test's prediction-log check against a live server: the batch read back at /api/v1/batches/<id>.

tests/deploy/test_gunicorn.py runs the whole command against gunicorn; these tests drive the log
check directly, against the test server, so that a logged batch that differs from the answer fails.
"""

from io import StringIO

import pytest
from django.core.management import call_command

from predictor.management.commands.smoke_test import BATCH_BMI, CheckFailed, SmokeTest
from predictor.models import PredictionBatch
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


def test_smoke_test_reads_the_batch_back_and_passes(smoke):
    out = StringIO()
    call_command("smoke_test", url=smoke.base_url, token=smoke.token, stdout=out)

    report = out.getvalue()
    batch = PredictionBatch.objects.get()
    assert batch.bmi == BATCH_BMI
    assert f"PASS  prediction log  batch {batch.pk}: 5 of 5 predictions logged as returned" in report
    assert "single prediction logged" in report
    assert "Smoke test passed: 6 of 6 checks." in report


def _answered(smoke: SmokeTest) -> PredictionBatch:
    smoke.check_healthz()
    smoke.check_predict()
    smoke.check_batch()
    return PredictionBatch.objects.get(pk=smoke.batch["batch_id"])


def test_log_check_compares_every_prediction_with_the_answer(smoke):
    batch = _answered(smoke)
    assert smoke.check_log().startswith(f"batch {batch.pk}: 5 of 5 predictions logged as returned")
    # One value off in the last place: logged is not what was answered.
    altered = [*batch.predictions[:-1], batch.predictions[-1] + 1e-9]
    PredictionBatch.objects.filter(pk=batch.pk).update(predictions=altered)

    with pytest.raises(
        CheckFailed, match=rf"GET /api/v1/batches/{batch.pk}: predictions .*but the batch call returned"
    ):
        smoke.check_log()


def test_log_check_fails_when_the_bmis_are_not_logged_in_order(smoke):
    batch = _answered(smoke)
    PredictionBatch.objects.filter(pk=batch.pk).update(bmi=list(reversed(BATCH_BMI)))

    with pytest.raises(CheckFailed, match=r"bmi \[40\.0, .*expected \[18\.5, "):
        smoke.check_log()


def test_log_check_fails_when_the_batch_was_not_logged(smoke):
    batch = _answered(smoke)
    PredictionBatch.objects.filter(pk=batch.pk).delete()

    with pytest.raises(CheckFailed, match=rf"GET /api/v1/batches/{batch.pk} -> 404, expected 200: .*does not exist"):
        smoke.check_log()


def test_log_check_fails_with_a_token_that_may_not_read_the_log(smoke, plain_user):
    _answered(smoke)
    smoke.token = token_for(plain_user)

    with pytest.raises(CheckFailed, match=r"-> 403, expected 200: .*Only staff users"):
        smoke.check_log()


def test_log_check_has_nothing_to_look_for_without_a_batch(smoke):
    smoke.check_healthz()
    with pytest.raises(CheckFailed, match="nothing to look for: the batch prediction failed"):
        smoke.check_log()
