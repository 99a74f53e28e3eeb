"""Reads of the feedback loop."""

from __future__ import annotations

import numpy as np
from django.conf import settings

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
