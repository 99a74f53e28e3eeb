"""Reads of the feedback loop."""

from __future__ import annotations

import numpy as np
from django.conf import settings

from predictor.ml.data import Dataset
from predictor.models import Outcome


def outcome_training_pairs() -> tuple[np.ndarray, np.ndarray]:
    """(BMI from the log, observed progression) for every recorded outcome, oldest first.

    Rows whose BMI falls outside today's plausible range are left out, as a training CSV row
    would be refused (the range may have been narrowed since the prediction was served).
    """
    rows = (
        Outcome.objects.filter(
            prediction__bmi__gte=settings.PREDICTOR_BMI_MIN, prediction__bmi__lte=settings.PREDICTOR_BMI_MAX
        )
        .order_by("prediction_id")
        .values_list("prediction__bmi", "observed")
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
