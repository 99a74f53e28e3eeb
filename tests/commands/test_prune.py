"""Retention: prune_predictions deletes old logs and their outcomes, and nothing newer."""

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from predictor import serving
from predictor.models import Outcome, PredictionLog

pytestmark = pytest.mark.django_db


def _age(log_id, days):
    PredictionLog.objects.filter(pk=log_id).update(created_at=timezone.now() - timedelta(days=days))


def test_prune_deletes_only_logs_older_than_the_cut_off(active_version):
    old = serving.predict_one(25.0).log_id
    older = serving.predict_one(26.0).log_id
    recent = serving.predict_one(27.0).log_id
    _age(old, 31)
    _age(older, 400)
    _age(recent, 29)
    Outcome.objects.create(prediction_id=old, observed=150.0)

    out = StringIO()
    call_command("prune_predictions", "--older-than", "30", stdout=out)

    assert "Deleted 2 prediction logs older than 30 days" in out.getvalue()
    assert list(PredictionLog.objects.values_list("id", flat=True)) == [recent]
    assert not Outcome.objects.exists()


def test_prune_defaults_to_the_retention_setting(active_version, settings):
    settings.PREDICTOR_LOG_RETENTION_DAYS = 7
    expired = serving.predict_one(25.0).log_id
    kept = serving.predict_one(26.0).log_id
    _age(expired, 8)
    _age(kept, 6)
    out = StringIO()
    call_command("prune_predictions", stdout=out)
    assert "older than 7 days" in out.getvalue()
    assert list(PredictionLog.objects.values_list("id", flat=True)) == [kept]


def test_prune_refuses_a_non_positive_age(db):
    with pytest.raises(CommandError, match="at least 1"):
        call_command("prune_predictions", "--older-than", "0", stdout=StringIO())
