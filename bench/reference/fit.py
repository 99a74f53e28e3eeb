"""The original training loop, reproduced for the benchmark: 15,000 single-sample SGD steps.

Each step shuffles the whole training set and takes its first sample (the original drew its sample
that way), updates ``w`` and ``b`` from that sample's gradient, and then recomputes the sum of squared
errors on the whole training set (the original tracked the loss that way); the shuffles and the loss
are where its time goes. The data are standardized first so that one learning rate works; the
line is reported in the caller's units. NumPy only.
"""

from __future__ import annotations

import numpy as np

ITERATIONS = 15_000
LEARNING_RATE = 0.01


def fit(x, y, *, iterations: int = ITERATIONS, learning_rate: float = LEARNING_RATE, seed: int = 0):
    """Return ``(w, b, losses)`` for ``y = w * x + b`` fitted by the original loop."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    x_mean, x_std, y_mean, y_std = x.mean(), x.std(), y.mean(), y.std()
    xs = (x - x_mean) / x_std
    ys = (y - y_mean) / y_std
    rng = np.random.default_rng(seed)
    n = xs.shape[0]
    w = b = 0.0
    losses = []
    for _ in range(iterations):
        # As the original did: shuffle the whole training set (two copies) and take its first row.
        order = rng.permutation(n)
        x_i, y_i = xs[order][0], ys[order][0]
        error = w * x_i + b - y_i
        w -= learning_rate * 2.0 * error * x_i
        b -= learning_rate * 2.0 * error
        losses.append(float(np.sum((ys - (w * xs + b)) ** 2)))
    slope = w * y_std / x_std
    return slope, y_mean + y_std * b - slope * x_mean, losses
