"""Reads of the prediction log and its outcomes."""

from __future__ import annotations

import numpy as np
from django.conf import settings
from django.db.models import QuerySet

from predictor.ml.data import Dataset
from predictor.predictions.models import ArrayItem, Outcome, PredictionLog


def prediction_list(*, version: int | None = None, channel: str | None = None, since=None, until=None) -> QuerySet:
    """Log entries (single predictions and batches), newest first, filtered by version, channel and time.

    Each comes with its version's interval figures and limits (one join), not its charts' data.
    """
    queryset = PredictionLog.objects.select_related("model_version").defer(
        "model_version__training_sample", "model_version__loss_curve"
    )
    if version is not None:
        queryset = queryset.filter(model_version_id=version)
    if channel is not None:
        queryset = queryset.filter(channel=channel)
    if since is not None:
        queryset = queryset.filter(created_at__gte=since)
    if until is not None:
        queryset = queryset.filter(created_at__lt=until)
    return queryset


def prediction_get(*, prediction_id: int) -> PredictionLog | None:
    """One log entry with its model version (without the version's loss curve, which no caller shows), or None."""
    if not 1 <= prediction_id <= PredictionLog.ID_MAX:
        return None  # no such entry can exist; the database need not be asked
    queryset = PredictionLog.objects.select_related("model_version").defer("model_version__loss_curve")
    return queryset.filter(pk=prediction_id).first()


def outcome_training_pairs() -> tuple[np.ndarray, np.ndarray]:
    """(BMI served, observed progression) for every recorded outcome, by entry and position.

    A fixed order, so the same outcomes give the same training data and fingerprint. Rows whose
    BMI falls outside today's plausible range are left out, as a training CSV row would be
    refused (the range may have been narrowed since the prediction was served). The BMI is read
    from its entry's array in SQL, not by loading the array.
    """
    low, high = settings.PREDICTOR_BMI_MIN, settings.PREDICTOR_BMI_MAX
    rows = (
        Outcome.objects.annotate(bmi=ArrayItem("log__bmi", "position"))
        .filter(bmi__gte=low, bmi__lte=high)
        .order_by("log_id", "position")
        .values_list("bmi", "observed")
    )
    pairs = np.array(list(rows), dtype=np.float64).reshape(-1, 2)
    return pairs[:, 0], pairs[:, 1]


def dataset_with_outcomes(dataset: Dataset) -> tuple[Dataset, int]:
    """``dataset`` with every recorded outcome added to its training rows, and how many were added.

    The test rows stay as they are, so held-out R² remains comparable between versions. The name
    says so (``sklearn-diabetes-bmi+120 outcomes``), which also marks the data as private.
    """
    bmi, observed = outcome_training_pairs()
    n_outcome_rows = len(bmi)
    return dataset.with_extra_training_rows(
        bmi, observed, name=f"{dataset.name}+{n_outcome_rows} outcomes"
    ), n_outcome_rows
