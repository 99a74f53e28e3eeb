"""Reads: the active version, version lists, history, prediction and batch queries."""

from __future__ import annotations

import uuid

from django.db.models import Q, QuerySet

from predictor.models import ModelVersion, PredictionBatch, PredictionLog, PromotionEvent


def active_version() -> ModelVersion | None:
    return ModelVersion.objects.filter(status=ModelVersion.Status.ACTIVE).first()


def version_list() -> QuerySet[ModelVersion]:
    # The heavy JSON columns are for one version's page, not for lists.
    return ModelVersion.objects.defer("training_sample", "loss_curve", "training_bmi_histogram")


def version_get(*, version: int) -> ModelVersion | None:
    if not 1 <= version <= ModelVersion.VERSION_MAX:
        return None  # no such version can exist; the database need not be asked
    return ModelVersion.objects.filter(version=version).first()


def version_history(*, version: int) -> QuerySet[PromotionEvent]:
    """Every audit event that involves ``version``, newest first."""
    return PromotionEvent.objects.filter(Q(from_version=version) | Q(to_version=version)).select_related("actor")


def prediction_list(
    *,
    version: int | None = None,
    channel: str | None = None,
    since=None,
    until=None,
) -> QuerySet[PredictionLog]:
    """Single predictions (API and web form), newest first; batches are :func:`batch_list`."""
    queryset = _log_window(PredictionLog.objects.all(), version=version, since=since, until=until)
    return queryset.filter(channel=channel) if channel else queryset


def batch_list(*, version: int | None = None, since=None, until=None) -> QuerySet[PredictionBatch]:
    """Logged batches, newest first, without their arrays (up to 160 kB a row; a list needs the size)."""
    return _log_window(PredictionBatch.objects.defer("bmi", "predictions"), version=version, since=since, until=until)


def _log_window(queryset: QuerySet, *, version: int | None, since, until) -> QuerySet:
    """The prediction log's and the batch log's shared filters: one version, a time window."""
    if version is not None:
        queryset = queryset.filter(model_version_id=version)
    if since is not None:
        queryset = queryset.filter(created_at__gte=since)
    if until is not None:
        queryset = queryset.filter(created_at__lt=until)
    return queryset


def batch_get(*, batch_id: uuid.UUID) -> PredictionBatch | None:
    """One batch with its BMIs and predictions, or None."""
    return PredictionBatch.objects.filter(pk=batch_id).first()


def prediction_get(*, prediction_id: int) -> PredictionLog | None:
    """One logged single prediction with its model version (for the page that shows it)."""
    return PredictionLog.objects.select_related("model_version").filter(pk=prediction_id).first()
