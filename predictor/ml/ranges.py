"""The plausibility rule every input number meets: finite, and within its range.

One rule for the API's fields, the web form, CSV training files and observed outcomes; each caller
words the refusal for its own reader from the :class:`OutOfRange` code. NumPy only.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["NOT_FINITE", "TOO_HIGH", "TOO_LOW", "OutOfRange", "check_range", "out_of_range"]

NOT_FINITE, TOO_LOW, TOO_HIGH = "not_finite", "too_low", "too_high"


class OutOfRange(ValueError):
    """``value`` is not finite (``code`` NOT_FINITE) or lies outside ``low``..``high`` (TOO_LOW, TOO_HIGH)."""

    def __init__(self, value: float, code: str, low: float | None, high: float | None):
        self.value, self.code, self.low, self.high = value, code, low, high
        if code == NOT_FINITE:
            message = f"{value!r} is not a finite number"
        elif low is not None and high is not None:
            message = f"{value:g} is outside the plausible range {low:g} to {high:g}"
        elif code == TOO_LOW:
            message = f"{value:g} is below {low:g}"
        else:
            message = f"{value:g} is above {high:g}"
        super().__init__(message + ".")


def check_range(value, *, low: float | None = None, high: float | None = None, exclusive_low: bool = False) -> float:
    """``value`` as a float when it is finite and within ``low``..``high`` (either may be None).

    Raises :class:`OutOfRange` otherwise.
    """
    try:
        number = float(value)
    except OverflowError:  # an integer with hundreds of digits
        number = math.inf if value > 0 else -math.inf
    if not math.isfinite(number):
        raise OutOfRange(number, NOT_FINITE, low, high)
    if low is not None and (number <= low if exclusive_low else number < low):
        raise OutOfRange(number, TOO_LOW, low, high)
    if high is not None and number > high:
        raise OutOfRange(number, TOO_HIGH, low, high)
    return number


def out_of_range(values: np.ndarray, *, low: float, high: float) -> np.ndarray:
    """The indices of ``values`` that :func:`check_range` would refuse, in one vectorised pass."""
    return np.flatnonzero(~np.isfinite(values) | (values < low) | (values > high))
