"""Linear regression on one feature, trained by single-sample stochastic gradient descent.

NumPy only: this module must not import Django or scikit-learn, so that the estimator can be
trained, tested and benchmarked on its own.
"""

from __future__ import annotations

import warnings

import numpy as np

__all__ = ["ConvergenceWarning", "NotFittedError", "SGDLinearRegression", "check_xy"]


class ConvergenceWarning(UserWarning):
    """Training stopped on the epoch limit before the loss settled (like scikit-learn's)."""


class NotFittedError(ValueError, AttributeError):
    """`predict` was called before `fit` (the same bases as scikit-learn's, for the same reason)."""


def check_xy(X, y=None):
    """Return ``X`` as a 1-D float array (and ``y`` likewise) or raise a ValueError naming the problem.

    ``X`` may be 1-D or a single column of shape (n, 1), as scikit-learn accepts.
    """
    X = np.asarray(X, dtype=np.float64)
    if X.ndim == 2 and X.shape[1] == 1:
        X = X[:, 0]
    if X.ndim != 1:
        raise ValueError(f"X must be one feature: a 1-D array or one column, got shape {X.shape}.")
    if X.shape[0] == 0:
        raise ValueError("X is empty: at least one sample is required.")
    if not np.all(np.isfinite(X)):
        raise ValueError(f"X contains NaN or infinity (first at index {_first_bad(X)}).")
    if y is None:
        return X
    y = np.asarray(y, dtype=np.float64)
    if y.ndim != 1:
        raise ValueError(f"y must be a 1-D array, got shape {y.shape}.")
    if y.shape[0] != X.shape[0]:
        raise ValueError(f"X and y have different lengths: {X.shape[0]} and {y.shape[0]}.")
    if not np.all(np.isfinite(y)):
        raise ValueError(f"y contains NaN or infinity (first at index {_first_bad(y)}).")
    return X, y


def _first_bad(a):
    return int(np.flatnonzero(~np.isfinite(a))[0])


class SGDLinearRegression:
    """Least-squares line ``y = coef_ * x + intercept_`` fitted by stochastic gradient descent.

    Every update uses one training sample, drawn without replacement within an epoch (a fresh
    shuffle each epoch). The feature and the target are standardized internally, so the learning
    rate and the tolerance mean the same thing whatever the units; ``coef_`` and ``intercept_``
    are reported in the caller's units.

    The step size decays as ``learning_rate / (1 + learning_rate * decay * t)`` after ``t``
    updates (scikit-learn's "optimal" schedule in form), so late updates add little noise and the
    fit settles on the least-squares solution. ``1 / decay`` above 1/2 keeps the asymptotic
    convergence rate of SGD at its best, 1/t, whatever the number of samples.

    Parameters
    ----------
    learning_rate : float, default=0.01
        Initial step size, on the standardized data.
    decay : float, default=0.5
        How fast the step size falls: after ``t`` single-sample updates it is
        ``learning_rate / (1 + learning_rate * decay * t)``. 0 keeps it constant.
    max_epochs : int, default=1000
        Upper bound on passes over the training data. Stopping on it raises a
        :class:`ConvergenceWarning`.
    tol : float, default=1e-6
        Training stops when the standardized training loss has not improved by at least ``tol``
        for ``n_iter_no_change`` consecutive epochs.
    n_iter_no_change : int, default=5
        See ``tol``.
    random_state : int or None, default=None
        Seed for the shuffles. The same seed gives bit-for-bit the same model.

    Attributes
    ----------
    coef_ : float
        Slope, in target units per feature unit.
    intercept_ : float
        Intercept, in target units.
    n_iter_ : int
        Epochs run.
    t_ : int
        Single-sample updates made (``n_iter_ * n_samples``).
    loss_curve_ : list of float
        Mean squared error on the training data after each epoch, in target units squared.
    n_features_in_ : int
        Always 1.

    Notes
    -----
    A single-sample update is an affine map of the parameters:
    ``theta <- (I - eta v v^T) theta + eta y v`` with ``v = (x, 1)``. The maps of a whole epoch
    are composed by a pairwise (tree) reduction over NumPy arrays, several epochs at once, instead
    of a Python loop over samples. The sequence of updates is exactly the one the loop would make;
    only the floating-point rounding order differs (see ``tests/ml/test_sgd.py``, which checks the
    two agree to 1e-12).

    Examples
    --------
    >>> import numpy as np
    >>> x = np.linspace(18, 40, 50)
    >>> model = SGDLinearRegression(random_state=0).fit(x, 3.0 * x - 20.0)
    >>> round(model.coef_, 2), round(model.intercept_, 1)
    (2.99, -19.7)
    >>> round(float(model.predict([25.0])[0]), 1)
    55.0
    """

    # Epochs drawn and reduced together. Larger blocks amortise NumPy's per-call overhead; the
    # epochs after the stopping point are simply discarded. Fixed, so results stay reproducible.
    _EPOCH_BLOCK = 16

    def __init__(
        self,
        *,
        learning_rate: float = 0.01,
        decay: float = 0.5,
        max_epochs: int = 1000,
        tol: float = 1e-6,
        n_iter_no_change: int = 5,
        random_state: int | None = None,
    ):
        self.learning_rate = learning_rate
        self.decay = decay
        self.max_epochs = max_epochs
        self.tol = tol
        self.n_iter_no_change = n_iter_no_change
        self.random_state = random_state

    def get_params(self, deep: bool = True) -> dict:
        return {
            "learning_rate": self.learning_rate,
            "decay": self.decay,
            "max_epochs": self.max_epochs,
            "tol": self.tol,
            "n_iter_no_change": self.n_iter_no_change,
            "random_state": self.random_state,
        }

    def set_params(self, **params) -> SGDLinearRegression:
        valid = self.get_params()
        for key, value in params.items():
            if key not in valid:
                raise ValueError(f"Invalid parameter {key!r}; valid ones are {sorted(valid)}.")
            setattr(self, key, value)
        return self

    def _validate_params(self) -> None:
        if not (np.isfinite(self.learning_rate) and self.learning_rate > 0):
            raise ValueError(f"learning_rate must be a positive number, got {self.learning_rate!r}.")
        if not (np.isfinite(self.decay) and self.decay >= 0):
            raise ValueError(f"decay must be zero or positive, got {self.decay!r}.")
        if int(self.max_epochs) != self.max_epochs or self.max_epochs < 1:
            raise ValueError(f"max_epochs must be a positive integer, got {self.max_epochs!r}.")
        if not (np.isfinite(self.tol) and self.tol >= 0):
            raise ValueError(f"tol must be zero or positive, got {self.tol!r}.")
        if int(self.n_iter_no_change) != self.n_iter_no_change or self.n_iter_no_change < 1:
            raise ValueError(f"n_iter_no_change must be a positive integer, got {self.n_iter_no_change!r}.")

    def fit(self, X, y) -> SGDLinearRegression:
        """Fit the line to ``X`` (one feature) and ``y``; returns ``self``."""
        self._validate_params()
        x, y = check_xy(X, y)
        n = x.shape[0]
        if n < 2:
            raise ValueError("At least 2 samples are needed to fit a line.")
        with np.errstate(over="ignore", invalid="ignore"):
            x_mean, x_scale = x.mean(), x.std()
            y_mean, y_scale = y.mean(), y.std()
        # Values near float64's limit (1e154 and up) overflow the variance; the fit would be NaN.
        if not np.isfinite([x_mean, x_scale, y_mean, y_scale]).all():
            raise ValueError("X or y has values too large to fit (their variance overflows float64); rescale them.")
        if x_scale == 0:
            raise ValueError("X is constant: a slope cannot be fitted to a single feature value.")
        if y_scale == 0:
            y_scale = 1.0  # a flat target is fitted exactly by slope 0; avoid dividing by zero
        xs = (x - x_mean) / x_scale
        ys = (y - y_mean) / y_scale
        # With standardized data the training loss is a closed form of (w, b):
        # mean((w x + b - y)^2) = w^2 + b^2 - 2 w mean(x y) + mean(y^2), one O(1) step per epoch.
        sxy = float(np.mean(xs * ys))
        syy = float(np.mean(ys * ys))

        rng = np.random.default_rng(self.random_state)
        w = b = 0.0
        t = 0
        best = np.inf
        no_improvement = 0
        losses: list[float] = []
        converged = False
        max_epochs = int(self.max_epochs)
        while len(losses) < max_epochs and not converged:
            n_epochs = min(self._EPOCH_BLOCK, max_epochs - len(losses))
            maps = self._epoch_maps(xs, ys, rng, t, n_epochs)
            for a11, a12, a21, a22, c1, c2 in zip(*maps, strict=True):
                w, b = a11 * w + a12 * b + c1, a21 * w + a22 * b + c2
                t += n
                loss = w * w + b * b - 2.0 * w * sxy + syy
                losses.append(loss)
                if loss > best - self.tol:
                    no_improvement += 1
                else:
                    no_improvement = 0
                best = min(best, loss)
                if no_improvement >= self.n_iter_no_change:
                    converged = True
                    break

        if not converged:
            warnings.warn(
                f"SGDLinearRegression stopped after max_epochs={max_epochs} epochs before the loss "
                f"settled within tol={self.tol}; raise max_epochs or learning_rate.",
                ConvergenceWarning,
                stacklevel=2,
            )

        self.coef_ = float(w * y_scale / x_scale)
        self.intercept_ = float(y_mean + y_scale * b - self.coef_ * x_mean)
        self.n_iter_ = len(losses)
        self.t_ = t
        self.loss_curve_ = [float(v * y_scale * y_scale) for v in losses]
        self.n_features_in_ = 1
        return self

    def _epoch_maps(self, xs, ys, rng, t0: int, n_epochs: int):
        """Compose each epoch's single-sample updates into one affine map per epoch.

        Returns six arrays of length ``n_epochs``: the 2x2 matrix ``A`` and the vector ``c`` with
        ``(w, b) <- A (w, b) + c`` for each epoch, in order.
        """
        n = xs.shape[0]
        order = np.stack([rng.permutation(n) for _ in range(n_epochs)])
        steps = t0 + np.arange(n_epochs * n, dtype=np.float64).reshape(n_epochs, n)
        eta = self.learning_rate / (1.0 + self.learning_rate * self.decay * steps)
        x = xs[order]
        y = ys[order]
        ex = eta * x
        # One update: A = I - eta v v^T, c = eta y v, with v = (x, 1).
        a11 = 1.0 - ex * x
        a12 = -ex
        a21 = -ex
        a22 = 1.0 - eta
        c1 = ex * y
        c2 = eta * y
        # Tree reduction along each epoch: compose neighbours (earlier map first) until one is left.
        while a11.shape[1] > 1:
            m = a11.shape[1]
            half = m // 2
            f = slice(0, 2 * half, 2)  # applied first
            s = slice(1, 2 * half, 2)  # applied second
            f11, f12, f21, f22, fc1, fc2 = a11[:, f], a12[:, f], a21[:, f], a22[:, f], c1[:, f], c2[:, f]
            s11, s12, s21, s22, sc1, sc2 = a11[:, s], a12[:, s], a21[:, s], a22[:, s], c1[:, s], c2[:, s]
            parts = (
                s11 * f11 + s12 * f21,
                s11 * f12 + s12 * f22,
                s21 * f11 + s22 * f21,
                s21 * f12 + s22 * f22,
                s11 * fc1 + s12 * fc2 + sc1,
                s21 * fc1 + s22 * fc2 + sc2,
            )
            if m % 2:  # the odd one out is carried to the next level unchanged
                parts = tuple(
                    np.concatenate([p, q[:, -1:]], axis=1)
                    for p, q in zip(parts, (a11, a12, a21, a22, c1, c2), strict=True)
                )
            a11, a12, a21, a22, c1, c2 = parts
        return tuple(p[:, 0].tolist() for p in (a11, a12, a21, a22, c1, c2))

    def predict(self, X) -> np.ndarray:
        """Predicted target for each value of the feature."""
        if not hasattr(self, "coef_"):
            raise NotFittedError("This SGDLinearRegression instance is not fitted yet; call fit(X, y) first.")
        x = check_xy(X)
        return self.coef_ * x + self.intercept_

    def score(self, X, y) -> float:
        """Coefficient of determination R² of the predictions on ``X`` against ``y``."""
        x, y = check_xy(X, y)
        return r2_score(y, self.predict(x))

    def __repr__(self) -> str:
        defaults = SGDLinearRegression().get_params()
        changed = {k: v for k, v in self.get_params().items() if defaults[k] != v}
        return f"SGDLinearRegression({', '.join(f'{k}={v!r}' for k, v in changed.items())})"


def r2_score(y_true, y_pred) -> float:
    """Coefficient of determination, as scikit-learn defines it (1.0 for a perfect fit)."""
    y_true = np.asarray(y_true, dtype=np.float64)
    y_pred = np.asarray(y_pred, dtype=np.float64)
    ss_res = float(np.sum((y_true - y_pred) ** 2))
    ss_tot = float(np.sum((y_true - y_true.mean()) ** 2))
    if ss_tot == 0:
        return 1.0 if ss_res == 0 else 0.0
    return 1.0 - ss_res / ss_tot


def mean_squared_error(y_true, y_pred) -> float:
    return float(np.mean((np.asarray(y_true, float) - np.asarray(y_pred, float)) ** 2))


def mean_absolute_error(y_true, y_pred) -> float:
    return float(np.mean(np.abs(np.asarray(y_true, float) - np.asarray(y_pred, float))))


def r2_standard_error(r2: float, n: int, *, n_features: int = 1) -> float | None:
    """Approximate standard error of an R² measured on ``n`` rows (Olkin & Finn's large-sample formula).

    Says how far a held-out R² on a few rows may be from the model's true one: on 20 rows an R² of
    0.45 is ± 0.14, so four decimals would claim a precision it does not have. None when ``n`` is
    too small for the formula (``n <= n_features + 1``).

    >>> round(r2_standard_error(0.45, 20), 2)
    0.14
    """
    if n <= n_features + 1:
        return None
    r2 = min(max(float(r2), 0.0), 1.0)  # a negative R² has the spread of a zero one here
    dof = n - n_features - 1
    variance = 4 * r2 * (1 - r2) ** 2 * dof**2 / ((n**2 - 1) * (n + 3))
    return float(np.sqrt(variance))
