"""Writes to the model registry: train, promote, roll back, retire.

Views, serializers, admin actions and management commands call these; none of them repeat the
rules. Every change of the active version writes a :class:`PromotionEvent` in the same
transaction, so the audit trail and the registry cannot disagree.
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass, field

import numpy as np
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from predictor.ml.data import DIABETES_DATASET_NAME, Dataset
from predictor.ml.intervals import coverage, cross_validated_coverage, interval_figures
from predictor.ml.sgd import ConvergenceWarning, SGDLinearRegression, mean_absolute_error, mean_squared_error, r2_score
from predictor.registry import selectors
from predictor.registry.models import ModelVersion, PromotionEvent, RegistryLock

# Loss curves are stored downsampled: enough points for a chart, bounded row size.
LOSS_CURVE_POINTS = 200
TRAINING_SAMPLE_POINTS = 500
RANDOM_STATE_MAX = 2**31 - 1
# The estimator's own defaults, so the command, the API and this service can never disagree.
DEFAULT_HYPERPARAMETERS = SGDLinearRegression().get_params()
# What a caller may choose when training (the train command's options, the train API's fields).
TRAINING_PARAMETERS = ("learning_rate", "decay", "max_epochs", "tol", "random_state", "threshold")


class RegistryError(Exception):
    """A registry change that was refused; the message says why, for a person to read."""


class VersionNotFound(RegistryError):
    pass


class PromotionRefused(RegistryError):
    pass


@dataclass
class TrainingResult:
    version: ModelVersion
    promoted: bool
    decision: str
    warnings: list[str] = field(default_factory=list)


def default_threshold() -> float:
    return float(settings.PREDICTOR_PROMOTION_THRESHOLD)


def _checked_threshold(threshold: float | None) -> float:
    """The R² gate to apply: the configured one, or ``threshold`` if it is a usable gate."""
    if threshold is None:
        return default_threshold()
    threshold = float(threshold)
    # R² is at most 1, so a gate of 1 or more lets nothing serve; NaN would compare false with all.
    if not (math.isfinite(threshold) and -1.0 <= threshold < 1.0):
        raise ValueError(f"threshold must be a number from -1 up to (not including) 1, got {threshold!r}.")
    return threshold


def _actor_name(user, actor_name: str | None) -> str:
    if actor_name:
        return actor_name
    if user is not None and getattr(user, "is_authenticated", False):
        return user.get_username()
    return "system"


def user_or_none(user):
    """The user to record as an actor: ``None`` for no user or an anonymous one."""
    return user if user is not None and getattr(user, "is_authenticated", False) else None


def _lock_registry() -> None:
    # Another worker may promote, roll back or train at the same time; this row lock makes them
    # take turns, so each one decides on the state the previous one committed.
    RegistryLock.objects.select_for_update().get_or_create(pk=1)


def model_version_train(
    *,
    dataset: Dataset,
    learning_rate: float = DEFAULT_HYPERPARAMETERS["learning_rate"],
    decay: float = DEFAULT_HYPERPARAMETERS["decay"],
    max_epochs: int = DEFAULT_HYPERPARAMETERS["max_epochs"],
    tol: float = DEFAULT_HYPERPARAMETERS["tol"],
    random_state: int | None = 0,
    threshold: float | None = None,
    promote: bool = True,
    n_outcome_rows: int = 0,
    user=None,
    actor_name: str | None = None,
) -> TrainingResult:
    """Fit a version on ``dataset``, store it with its metrics, and promote it if it passes.

    A version whose held-out R² does not exceed ``threshold`` is stored as ``rejected`` (with its
    metrics, so nobody retrains blind) and never serves. Raises ``ValueError`` for unusable
    hyperparameters or data before anything is written.
    """
    threshold = _checked_threshold(threshold)
    # ModelVersion.random_state is a 32-bit column; a larger seed would fail at the INSERT.
    if random_state is not None and not 0 <= random_state <= RANDOM_STATE_MAX:
        raise ValueError(f"random_state must be between 0 and {RANDOM_STATE_MAX}, got {random_state}.")
    estimator = SGDLinearRegression(
        learning_rate=learning_rate,
        decay=decay,
        max_epochs=max_epochs,
        tol=tol,
        random_state=random_state,
    )
    started = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        estimator.fit(dataset.X_train, dataset.y_train)
    training_seconds = time.perf_counter() - started
    fit_warnings = [str(w.message) for w in caught if issubclass(w.category, ConvergenceWarning)]

    predicted_test = estimator.predict(dataset.X_test)
    predicted_train = estimator.predict(dataset.X_train)
    # An overflow is checked for just below and refused by name; NumPy's warning would only be noise.
    with np.errstate(over="ignore", invalid="ignore"):
        r2_test = r2_score(dataset.y_test, predicted_test)
        metrics = {
            "r2_test": r2_test,
            "mse_test": mean_squared_error(dataset.y_test, predicted_test),
            "mae_test": mean_absolute_error(dataset.y_test, predicted_test),
            "r2_train": r2_score(dataset.y_train, predicted_train),
            "mse_train": mean_squared_error(dataset.y_train, predicted_train),
        }
    if not all(math.isfinite(value) for value in (estimator.coef_, estimator.intercept_, *metrics.values())):
        # Extreme values overflow the fit's sums; such a version could be neither judged nor shown.
        raise ValueError(
            "Training gave non-finite coefficients or R² (the data's values are too large to fit); nothing was stored."
        )
    level = settings.PREDICTOR_INTERVAL_LEVEL
    interval = interval_figures(dataset.X_train, dataset.y_train, predicted_train, level=level)
    calibration = {
        "coverage_test": coverage(dataset.X_test, dataset.y_test, predicted_test, interval),
        "coverage_cv": cross_validated_coverage(
            estimator, dataset.X_train, dataset.y_train, level=level, random_state=random_state
        ),
    }
    passed = r2_test > threshold
    user = user_or_none(user)

    with transaction.atomic():
        _lock_registry()
        version = ModelVersion.objects.create(
            status=ModelVersion.Status.CANDIDATE if passed else ModelVersion.Status.REJECTED,
            slope=estimator.coef_,
            intercept=estimator.intercept_,
            **metrics,
            n_train=dataset.n_train,
            n_test=dataset.n_test,
            n_outcome_rows=n_outcome_rows,
            threshold=threshold,
            interval_level=interval.level,
            interval_t=interval.t,
            residual_std=interval.residual_std,
            bmi_mean=interval.bmi_mean,
            bmi_sxx=interval.bmi_sxx,
            **calibration,
            progression_min=float(dataset.y_train.min()),
            progression_max=float(dataset.y_train.max()),
            hyperparameters=estimator.get_params(),
            random_state=random_state,
            n_epochs=estimator.n_iter_,
            converged=not fit_warnings,
            loss_curve=_downsample(estimator.loss_curve_, LOSS_CURVE_POINTS),
            training_seconds=training_seconds,
            dataset_name=dataset.name[:200],
            data_fingerprint=dataset.fingerprint,
            training_sample=_training_sample(dataset),
            training_bmi_histogram=_bmi_histogram(dataset.X_train),
            code_version=settings.PREDICTOR_CODE_VERSION[:64],
            created_by=user,
        )
        if not passed:
            decision = f"rejected: held-out R² {r2_test:.4f} does not exceed the threshold {threshold:g}"
            return TrainingResult(version, promoted=False, decision=decision, warnings=fit_warnings)
        if not promote:
            decision = f"candidate: passed the gate (R² {r2_test:.4f} > {threshold:g}); not promoted"
            return TrainingResult(version, promoted=False, decision=decision, warnings=fit_warnings)
        version = _promote_locked(
            version,
            user=user,
            actor_name=_actor_name(user, actor_name),
            reason="trained and passed the gate",
            threshold=threshold,
        )
    decision = f"promoted: held-out R² {r2_test:.4f} > threshold {threshold:g}"
    return TrainingResult(version, promoted=True, decision=decision, warnings=fit_warnings)


def model_version_promote(
    *,
    version: int,
    user=None,
    actor_name: str | None = None,
    reason: str = "",
    threshold: float | None = None,
) -> ModelVersion:
    """Make ``version`` the active one. Refused when it failed the gate or is already active."""
    threshold = _checked_threshold(threshold)
    with transaction.atomic():
        _lock_registry()
        target = _get_version(version)
        return _promote_locked(
            target,
            user=user_or_none(user),
            actor_name=_actor_name(user, actor_name),
            reason=reason,
            threshold=threshold,
        )


def _promote_locked(target: ModelVersion, *, user, actor_name: str, reason: str, threshold: float) -> ModelVersion:
    if target.status == ModelVersion.Status.ACTIVE:
        raise PromotionRefused(f"Version {target.version} is already active.")
    if target.status == ModelVersion.Status.REJECTED:
        raise PromotionRefused(
            f"Version {target.version} was rejected when trained: its held-out R² {target.r2_test:.4f} "
            f"did not exceed the threshold {target.threshold:g}."
        )
    _check_gate(target, threshold, refusal=f"Version {target.version} cannot be promoted")
    current = selectors.active_version()
    # Promotion remembers what it replaced, so that a rollback can return to it.
    target.previous_active = current
    return _change_status(
        PromotionEvent.Action.PROMOTE, target=target, replaced=current, user=user, actor_name=actor_name, reason=reason
    )


def model_version_rollback(*, user=None, actor_name: str | None = None, reason: str = "") -> ModelVersion:
    """Return to the version that was active before the current one (skipping retired ones).

    Rollbacks stack: after v1 -> v2 -> v3, one rollback serves v2 and a second serves v1.
    """
    with transaction.atomic():
        _lock_registry()
        current = selectors.active_version()
        if current is None:
            raise PromotionRefused("There is no active version to roll back from.")
        target = selectors.rollback_target(current)
        if target is None:
            raise PromotionRefused(f"Version {current.version} has no earlier active version to roll back to.")
        # The gate holds for rollbacks too: a version may serve only while it passes the gate in
        # force now, which may have been raised since that version last served.
        _check_gate(
            target,
            default_threshold(),
            refusal=f"Cannot roll back to version {target.version}",
            gate="the current threshold",
            advice=" Promote a version that passes instead.",
        )
        return _change_status(
            PromotionEvent.Action.ROLLBACK,
            target=target,
            replaced=current,
            user=user,
            actor_name=actor_name,
            reason=reason,
        )


def model_version_retire(*, version: int, user=None, actor_name: str | None = None, reason: str = "") -> ModelVersion:
    """Withdraw a candidate so that rollbacks skip it. The active version cannot be retired."""
    with transaction.atomic():
        _lock_registry()
        target = _get_version(version)
        if target.status == ModelVersion.Status.ACTIVE:
            raise PromotionRefused(f"Version {target.version} is active; promote another version or roll back first.")
        if target.status != ModelVersion.Status.CANDIDATE:
            raise PromotionRefused(f"Version {target.version} is {target.status}; only candidates can be retired.")
        return _change_status(
            PromotionEvent.Action.RETIRE, target=target, replaced=None, user=user, actor_name=actor_name, reason=reason
        )


def _check_gate(
    target: ModelVersion, threshold: float, *, refusal: str, gate: str = "the threshold", advice: str = ""
) -> None:
    if not target.r2_test > threshold:
        raise PromotionRefused(
            f"{refusal}: its held-out R² {target.r2_test:.4f} does not exceed {gate} {threshold:g}.{advice}"
        )


def _change_status(
    action: str, *, target: ModelVersion, replaced: ModelVersion | None, user, actor_name: str | None, reason: str
) -> ModelVersion:
    """Flip the statuses one registry change makes and write its audit event (inside the caller's lock).

    Promote and rollback make ``target`` active and ``replaced`` (the version active until now) a
    candidate; retire retires ``target``. Every change of status goes through here, so none can
    happen without its :class:`PromotionEvent`.
    """
    now = timezone.now()
    if replaced is not None:
        replaced.status = ModelVersion.Status.CANDIDATE
        replaced.save(update_fields=["status"])
    if action == PromotionEvent.Action.RETIRE:
        target.status, target.retired_at = ModelVersion.Status.RETIRED, now
    else:
        target.status, target.promoted_at, target.retired_at = ModelVersion.Status.ACTIVE, now, None
    target.save(update_fields=["status", "promoted_at", "retired_at", "previous_active"])
    retire = action == PromotionEvent.Action.RETIRE
    PromotionEvent.objects.create(
        action=action,
        # For a retirement the event names the version retired as its "from" and no "to".
        from_version=target if retire else replaced,
        to_version=None if retire else target,
        actor=user_or_none(user),
        actor_name=_actor_name(user, actor_name),
        reason=reason,
    )
    return target


def _get_version(version: int) -> ModelVersion:
    found = selectors.version_get(version=version)
    if found is None:
        raise VersionNotFound(f"Version {version} does not exist.")
    return found


def _downsample(values: list[float], limit: int) -> list[float]:
    if len(values) <= limit:
        return [float(v) for v in values]
    # Keep the first and last points; evenly spaced in between.
    index = np.unique(np.linspace(0, len(values) - 1, limit).round().astype(int))
    return [float(values[i]) for i in index]


def _training_sample(dataset: Dataset) -> list[list[float]]:
    """Up to TRAINING_SAMPLE_POINTS exact training pairs for the fit charts: the public data set only.

    The pages show the sample to anyone, and a CSV or outcome-augmented data set holds real
    patients' (BMI, progression) pairs; for those nothing is stored and the charts say so.
    """
    if dataset.name != DIABETES_DATASET_NAME:
        return []
    n = dataset.n_train
    if n > TRAINING_SAMPLE_POINTS:
        index = np.sort(np.random.default_rng(0).choice(n, TRAINING_SAMPLE_POINTS, replace=False))
    else:
        index = np.arange(n)
    return [[float(dataset.X_train[i]), float(dataset.y_train[i])] for i in index]


def _bmi_histogram(bmi: np.ndarray) -> dict:
    """Training BMI deciles and the share of rows in each bin, for drift (PSI) monitoring."""
    edges = np.unique(np.quantile(bmi, np.linspace(0, 1, 11)))
    inner = edges[1:-1]
    # Bins are open at both ends when serving, so the outer edges only describe the training range.
    counts = np.bincount(np.searchsorted(inner, bmi, side="right"), minlength=len(edges) - 1)
    return {
        "edges": [float(e) for e in edges],
        "fractions": [float(c) / len(bmi) for c in counts],
    }
