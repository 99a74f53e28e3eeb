"""Fixtures for the monitoring tests: prediction-log entries and outcomes written straight to their tables."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from predictor.models import Outcome, PredictionLog


@pytest.fixture(autouse=True)
def _static_without_manifest(settings):
    # Production serves hashed names from collectstatic's manifest; these tests render base.html
    # without running collectstatic, so {% static %} resolves against the source files.
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }


def _entry(version, bmis, channel: str) -> PredictionLog:
    bmis = [float(b) for b in bmis]
    return PredictionLog(
        model_version=version,
        channel=channel,
        size=len(bmis),
        bmi=bmis,
        predictions=[version.slope * b + version.intercept for b in bmis],
    )


def _backdate(entries: list[PredictionLog], days_ago: int) -> None:
    if days_ago:
        when = timezone.now() - timedelta(days=days_ago)
        PredictionLog.objects.filter(pk__in=[e.pk for e in entries]).update(created_at=when)
    for entry in entries:
        entry.refresh_from_db()


@pytest.fixture
def log_predictions(db):
    """``log_predictions(version, bmis, days_ago=0)``: one single-prediction entry (size 1) per BMI."""

    def _log(version, bmis, *, days_ago: int = 0, channel: str = "api") -> list[PredictionLog]:
        entries = PredictionLog.objects.bulk_create(_entry(version, [b], channel) for b in bmis)
        _backdate(entries, days_ago)
        return entries

    return _log


@pytest.fixture
def log_batch(db):
    """``log_batch(version, bmis, days_ago=0)``: one batch entry of ``len(bmis)`` predictions."""

    def _log(version, bmis, *, days_ago: int = 0) -> PredictionLog:
        entry = _entry(version, bmis, PredictionLog.Channel.BATCH)
        entry.save()
        _backdate([entry], days_ago)
        return entry

    return _log


@pytest.fixture
def record_outcomes(db):
    """``record_outcomes(entries, observed)``: one Outcome per single-prediction entry (position 0)."""

    def _record(entries, observed) -> None:
        Outcome.objects.bulk_create(
            Outcome(log=entry, position=0, observed=float(o), source="test")
            for entry, o in zip(entries, observed, strict=True)
        )

    return _record


@pytest.fixture
def record_batch_outcomes(db):
    """``record_batch_outcomes(entry, {position: observed})``: one Outcome per batch item given."""

    def _record(entry, observed_at: dict[int, float]) -> None:
        Outcome.objects.bulk_create(
            Outcome(log=entry, position=position, observed=float(o), source="test")
            for position, o in observed_at.items()
        )

    return _record


@pytest.fixture
def api_client() -> APIClient:
    return APIClient()
