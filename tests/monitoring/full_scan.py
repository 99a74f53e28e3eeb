"""The monitoring figures computed the slow way: every raw row loaded and summed in NumPy.

What the rollups plus tail must equal (tests/monitoring/test_rollups.py and the parallel-process
test). Independent of the SQL on purpose: the arrays are read through the ORM and binned, compared
and summed here.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date

import numpy as np

from predictor.models import Outcome, PredictionLog


@dataclass
class Scan:
    n_predictions: int = 0
    served_counts: list[int] = field(default_factory=list)
    observed: list[float] = field(default_factory=list)
    predicted: list[float] = field(default_factory=list)
    inside: list[bool] = field(default_factory=list)
    predictions_by_day: dict[date, int] = field(default_factory=dict)
    outcomes_by_day: dict[date, int] = field(default_factory=dict)

    @property
    def n_outcomes(self) -> int:
        return len(self.observed)

    @property
    def n_inside(self) -> int:
        return int(sum(self.inside))

    @property
    def r2(self) -> float | None:
        y, p = np.asarray(self.observed), np.asarray(self.predicted)
        if len(y) < 2 or np.all(y == y[0]):
            return None
        return float(1 - np.sum((y - p) ** 2) / np.sum((y - y.mean()) ** 2))

    @property
    def mae(self) -> float | None:
        if not self.observed:
            return None
        return float(np.mean(np.abs(np.asarray(self.observed) - np.asarray(self.predicted))))


def scan(version) -> Scan:
    """Every figure of ``version`` from its raw log entries and outcomes."""
    result = Scan()
    histogram = version.training_bmi_histogram
    inner = np.asarray(histogram["edges"][1:-1])
    counts = np.zeros(len(histogram["fractions"]), dtype=int)
    by_day: defaultdict[date, int] = defaultdict(int)
    entries = {}
    for entry in PredictionLog.objects.filter(model_version=version).order_by("pk"):
        entries[entry.pk] = entry
        counts += np.bincount(np.searchsorted(inner, entry.bmi, side="right"), minlength=len(counts))
        by_day[entry.created_at.astimezone(UTC).date()] += entry.size
        result.n_predictions += entry.size
    result.served_counts = counts.tolist()
    result.predictions_by_day = dict(by_day)
    outcomes_by_day: defaultdict[date, int] = defaultdict(int)
    interval = version.interval
    for outcome in Outcome.objects.filter(log__model_version=version).order_by("pk"):
        entry = entries[outcome.log_id]
        bmi, predicted = entry.bmi[outcome.position], entry.predictions[outcome.position]
        result.observed.append(outcome.observed)
        result.predicted.append(predicted)
        result.inside.append(bool(abs(outcome.observed - predicted) <= interval.half_width(bmi)))
        outcomes_by_day[entry.created_at.astimezone(UTC).date()] += 1
    result.outcomes_by_day = dict(outcomes_by_day)
    return result
