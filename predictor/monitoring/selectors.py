"""Reads of the feedback loop."""

from __future__ import annotations

import numpy as np
from django.conf import settings

from predictor.ml.data import Dataset
from predictor.models import BatchOutcome, Outcome
from predictor.monitoring.stats import BatchItem


def outcome_training_pairs() -> tuple[np.ndarray, np.ndarray]:
    """(BMI served, observed progression) for every recorded outcome: single predictions oldest
    first, then batch items by batch (oldest first) and position. A fixed order, so the same
    outcomes give the same training data and fingerprint.

    Rows whose BMI falls outside today's plausible range are left out, as a training CSV row
    would be refused (the range may have been narrowed since the prediction was served).
    """
    low, high = settings.PREDICTOR_BMI_MIN, settings.PREDICTOR_BMI_MAX
    singles = (
        Outcome.objects.filter(prediction__bmi__gte=low, prediction__bmi__lte=high)
        .order_by("prediction_id")
        .values_list("prediction__bmi", "observed")
    )
    # The BMI of a batch item is read from its batch's array in SQL, not by loading the array.
    batch_items = (
        BatchOutcome.objects.annotate(bmi=BatchItem("batch__bmi", "position"))
        .filter(bmi__gte=low, bmi__lte=high)
        .order_by("batch__created_at", "batch_id", "position")
        .values_list("bmi", "observed")
    )
    pairs = np.array([*singles, *batch_items], dtype=np.float64).reshape(-1, 2)
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
