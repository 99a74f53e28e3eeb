"""When a prediction deserves less trust than usual: the rules, as codes and as words. NumPy only.

A version knows what its training data covered: the BMIs (``Limits.bmi``) and the progression
scores (``Limits.scale``). Three rules compare an answer with them; the boundaries themselves
are inside (a BMI equal to the lowest training BMI raises nothing):

``bmi_outside_training_range``
    The BMI lies below the lowest or above the highest training BMI: the estimate extends a
    straight line beyond the data.
``prediction_outside_scale``
    The point estimate lies below the lowest or above the highest training progression (a
    negative score is impossible; 391 was never observed).
``interval_clipped``
    An end of the prediction interval lies beyond the scale; it is shown clipped to the bound.

The first two make the estimate unreliable (:data:`UNRELIABLE`): the web page then shows it
subdued, with the reason, never as a headline. The third only qualifies the interval.

:func:`explain` applies the rules to one prediction or to a whole batch in one vectorised pass;
the API's single and batch answers, the web result and the model page all call it, so the rules
and their words exist once.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from predictor.ml.intervals import IntervalFigures, prediction_interval

__all__ = [
    "BMI_OUTSIDE_TRAINING_RANGE",
    "INTERVAL_CLIPPED",
    "PREDICTION_OUTSIDE_SCALE",
    "UNRELIABLE",
    "BatchCaution",
    "Caution",
    "Explained",
    "Limits",
    "explain",
]

BMI_OUTSIDE_TRAINING_RANGE = "bmi_outside_training_range"
PREDICTION_OUTSIDE_SCALE = "prediction_outside_scale"
INTERVAL_CLIPPED = "interval_clipped"
# Codes whose estimate must not be read as a confident number.
UNRELIABLE = frozenset({BMI_OUTSIDE_TRAINING_RANGE, PREDICTION_OUTSIDE_SCALE})
_CODES = (BMI_OUTSIDE_TRAINING_RANGE, PREDICTION_OUTSIDE_SCALE, INTERVAL_CLIPPED)


@dataclass(frozen=True)
class Caution:
    """One reason to trust one prediction less: a stable ``code`` and a sentence for a clinician."""

    code: str
    message: str

    @property
    def unreliable(self) -> bool:
        return self.code in UNRELIABLE


@dataclass(frozen=True)
class BatchCaution:
    """One rule that fired for some items of a batch: which ones (``indices``, from 0), and why."""

    code: str
    message: str
    indices: list[int]


@dataclass(frozen=True)
class Limits:
    """What the training data covered: BMIs (kg/m²) and progression scores, each (lowest, highest).

    Either may be None (a version without the record); its rules then raise nothing.
    """

    bmi: tuple[float, float] | None
    scale: tuple[float, float] | None


def _outside(values, bounds):
    if bounds is None:
        return np.zeros(np.shape(values), dtype=bool)
    return (values < bounds[0]) | (values > bounds[1])


@dataclass(frozen=True)
class Explained:
    """Predictions with their intervals and cautions, item by item (arrays, one per input BMI).

    ``low_raw``/``high_raw`` are the interval's formula, the figures coverage is measured on;
    ``low``/``high`` are the same clipped to the scale, the figures to show.
    """

    bmi: np.ndarray
    prediction: np.ndarray
    limits: Limits
    level: float
    low_raw: np.ndarray
    high_raw: np.ndarray
    low: np.ndarray
    high: np.ndarray
    flags: dict[str, np.ndarray]

    def cautions(self, item: int = 0) -> list[Caution]:
        """The cautions of one item, worded with its own figures."""
        bmi, prediction = float(self.bmi[item]), float(self.prediction[item])
        found = []
        if self.flags[BMI_OUTSIDE_TRAINING_RANGE][item]:
            low, high = self.limits.bmi
            found.append(
                Caution(
                    BMI_OUTSIDE_TRAINING_RANGE,
                    f"BMI {bmi:g} kg/m² is outside the BMIs this model was trained on ({low:.1f} to {high:.1f} "
                    "kg/m²): the estimate extends a straight line beyond the data and may be far off.",
                )
            )
        if self.flags[PREDICTION_OUTSIDE_SCALE][item]:
            low, high = self.limits.scale
            if prediction < 0:
                why = "a negative score, which is not a possible progression value"
            else:
                side = "below the lowest" if prediction < low else "above the highest"
                why = f"{side} score in the training data (the scale runs from {low:g} to {high:g})"
            found.append(
                Caution(
                    PREDICTION_OUTSIDE_SCALE,
                    f"The line gives {prediction:.1f}, {why}: do not rely on this number.",
                )
            )
        if self.flags[INTERVAL_CLIPPED][item]:
            found.append(Caution(INTERVAL_CLIPPED, self._clipped_words(item)))
        return found

    def _clipped_words(self, item: int) -> str:
        low, high = self.limits.scale
        ends = [
            f"the {name} end ({raw:.0f}) is shown as {shown:g}"
            for name, raw, shown in (
                ("lower", self.low_raw[item], self.low[item]),
                ("upper", self.high_raw[item], self.high[item]),
            )
            if raw != shown
        ]
        return (
            f"The interval reaches beyond the scores the training data cover ({low:g} to {high:g}): "
            f"{' and '.join(ends)}."
        )

    def batch_cautions(self) -> list[BatchCaution]:
        """One entry per rule that fired, with the indices of the items it fired for."""
        words = {
            BMI_OUTSIDE_TRAINING_RANGE: lambda: (
                "BMI outside the BMIs this model was trained on ({:.1f} to {:.1f} kg/m²): the estimate extends "
                "a straight line beyond the data and may be far off.".format(*self.limits.bmi)
            ),
            PREDICTION_OUTSIDE_SCALE: lambda: (
                "Prediction outside the progression scores of the training data ({:g} to {:g}): do not rely "
                "on it.".format(*self.limits.scale)
            ),
            INTERVAL_CLIPPED: lambda: (
                "An end of the interval lies beyond the scores of the training data ({:g} to {:g}); low and high "
                "are clipped to that scale, low_raw and high_raw are not.".format(*self.limits.scale)
            ),
        }
        found = []
        for code in _CODES:
            indices = np.flatnonzero(self.flags[code])
            if indices.size:
                found.append(BatchCaution(code, words[code](), indices.tolist()))
        return found

    @property
    def unreliable(self) -> np.ndarray:
        """Per item: whether its estimate must not be read as a confident number."""
        return self.flags[BMI_OUTSIDE_TRAINING_RANGE] | self.flags[PREDICTION_OUTSIDE_SCALE]


def explain(bmi, prediction, *, interval: IntervalFigures, limits: Limits) -> Explained:
    """The intervals and cautions of predictions ``prediction`` made for ``bmi`` (arrays or floats)."""
    bmi = np.atleast_1d(np.asarray(bmi, dtype=np.float64))
    prediction = np.atleast_1d(np.asarray(prediction, dtype=np.float64))
    low_raw, high_raw = prediction_interval(bmi, prediction, interval)
    if limits.scale is None:
        low, high = low_raw, high_raw
        clipped = np.zeros(bmi.shape, dtype=bool)
    else:
        bottom, top = limits.scale
        # minimum(maximum()) rather than np.clip: the same values, a third of the time on one item.
        low, high = np.minimum(np.maximum(low_raw, bottom), top), np.minimum(np.maximum(high_raw, bottom), top)
        clipped = (low_raw < bottom) | (high_raw > top)
    return Explained(
        bmi=bmi,
        prediction=prediction,
        limits=limits,
        level=interval.level,
        low_raw=low_raw,
        high_raw=high_raw,
        low=low,
        high=high,
        flags={
            BMI_OUTSIDE_TRAINING_RANGE: _outside(bmi, limits.bmi),
            PREDICTION_OUTSIDE_SCALE: _outside(prediction, limits.scale),
            INTERVAL_CLIPPED: clipped,
        },
    )
