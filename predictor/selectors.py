"""Reads: the active version, version lists, history and prediction queries."""

from __future__ import annotations

from django.db.models import Q, QuerySet

from predictor.models import ModelVersion, PredictionLog, PromotionEvent


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
    batch_id=None,
) -> QuerySet[PredictionLog]:
    queryset = PredictionLog.objects.all()
    if version is not None:
        queryset = queryset.filter(model_version_id=version)
    if channel:
        queryset = queryset.filter(channel=channel)
    if since is not None:
        queryset = queryset.filter(created_at__gte=since)
    if until is not None:
        queryset = queryset.filter(created_at__lt=until)
    if batch_id is not None:
        queryset = queryset.filter(batch_id=batch_id)
    return queryset
