"""Reads of the model registry: the active version, version lists, one version's history."""

from __future__ import annotations

from django.db.models import Q, QuerySet

from predictor.registry.models import ModelVersion, PromotionEvent


def active_version() -> ModelVersion | None:
    return ModelVersion.objects.filter(status=ModelVersion.Status.ACTIVE).first()


def version_list() -> QuerySet[ModelVersion]:
    # The heavy JSON columns are for one version's page, not for lists. The BMI histogram (21
    # numbers) stays: its outer edges are the training BMI range each version states.
    return ModelVersion.objects.defer("training_sample", "loss_curve")


def version_get(*, version: int) -> ModelVersion | None:
    if not 1 <= version <= ModelVersion.VERSION_MAX:
        return None  # no such version can exist; the database need not be asked
    return ModelVersion.objects.filter(version=version).first()


def version_history(*, version: int) -> QuerySet[PromotionEvent]:
    """Every audit event that involves ``version``, newest first."""
    return PromotionEvent.objects.filter(Q(from_version=version) | Q(to_version=version)).select_related("actor")


def rollback_target(current: ModelVersion) -> ModelVersion | None:
    """The version a rollback from ``current`` would serve: the one active before it, skipping
    retired and rejected ones (rollbacks stack); None when there is none.

    The admin's confirmation page shows it before ``model_version_rollback`` acts on it.
    """
    target = current.previous_active
    seen = {current.version}
    while target is not None and (
        target.status in (ModelVersion.Status.RETIRED, ModelVersion.Status.REJECTED) or target.version in seen
    ):
        seen.add(target.version)
        target = target.previous_active
    return target
