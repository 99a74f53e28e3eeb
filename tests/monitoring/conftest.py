"""Fixtures for the monitoring tests: logged predictions and batches written straight to their tables."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from predictor.models import BatchOutcome, Outcome, PredictionBatch, PredictionLog


@pytest.fixture(autouse=True)
def _static_without_manifest(settings):
    # Production serves hashed names from collectstatic's manifest; these tests render base.html
    # without running collectstatic, so {% static %} resolves against the source files.
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }


@pytest.fixture
def log_predictions(db):
    """``log_predictions(version, bmis, days_ago=0)``: log one prediction per BMI, as served by ``version``."""

    def _log(version, bmis, *, days_ago: int = 0, channel: str = "api") -> list[PredictionLog]:
        when = timezone.now() - timedelta(days=days_ago)
        rows = PredictionLog.objects.bulk_create(
            PredictionLog(
                model_version=version,
                bmi=float(b),
                prediction=version.slope * float(b) + version.intercept,
                channel=channel,
            )
            for b in bmis
        )
        if days_ago:
            PredictionLog.objects.filter(pk__in=[r.pk for r in rows]).update(created_at=when)
        for row in rows:
            row.refresh_from_db()
        return rows

    return _log


@pytest.fixture
def record_outcomes(db):
    """``record_outcomes(rows, observed)``: one Outcome per logged row."""

    def _record(rows, observed) -> None:
        Outcome.objects.bulk_create(
            Outcome(prediction=row, observed=float(o), source="test") for row, o in zip(rows, observed, strict=True)
        )

    return _record


@pytest.fixture
def log_batch(db):
    """``log_batch(version, bmis, days_ago=0)``: log one batch of predictions, as served by ``version``."""

    def _log(version, bmis, *, days_ago: int = 0) -> PredictionBatch:
        bmis = [float(b) for b in bmis]
        batch = PredictionBatch.objects.create(
            model_version=version,
            size=len(bmis),
            bmi=bmis,
            predictions=[version.slope * b + version.intercept for b in bmis],
        )
        if days_ago:
            PredictionBatch.objects.filter(pk=batch.pk).update(created_at=timezone.now() - timedelta(days=days_ago))
        batch.refresh_from_db()
        return batch

    return _log


@pytest.fixture
def record_batch_outcomes(db):
    """``record_batch_outcomes(batch, {position: observed})``: one BatchOutcome per item given."""

    def _record(batch, observed_at: dict[int, float]) -> None:
        BatchOutcome.objects.bulk_create(
            BatchOutcome(batch=batch, position=position, observed=float(o), source="test")
            for position, o in observed_at.items()
        )

    return _record


@pytest.fixture
def api_client() -> APIClient:
    return APIClient()
