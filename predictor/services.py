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
from datetime import timedelta

import numpy as np
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from predictor import selectors
from predictor.ml.data import DIABETES_DATASET_NAME, Dataset
from predictor.ml.sgd import ConvergenceWarning, SGDLinearRegression, mean_absolute_error, mean_squared_error, r2_score
from predictor.models import (
    BatchOutcome,
    ModelVersion,
    Outcome,
    PredictionBatch,
    PredictionLog,
    PromotionEvent,
    RegistryLock,
)

# Loss curves are stored downsampled: enough points for a chart, bounded row size.
LOSS_CURVE_POINTS = 200
TRAINING_SAMPLE_POINTS = 500
RANDOM_STATE_MAX = 2**31 - 1
# The estimator's own defaults, so the command, the API and this service can never disagree.
DEFAULT_HYPERPARAMETERS = SGDLinearRegression().get_params()


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
    if not target.r2_test > threshold:
        raise PromotionRefused(
            f"Version {target.version} cannot be promoted: its held-out R² {target.r2_test:.4f} "
            f"does not exceed the threshold {threshold:g}."
        )
    current = ModelVersion.objects.filter(status=ModelVersion.Status.ACTIVE).first()
    now = timezone.now()
    if current is not None:
        current.status = ModelVersion.Status.CANDIDATE
        current.save(update_fields=["status"])
    target.status = ModelVersion.Status.ACTIVE
    target.promoted_at = now
    target.retired_at = None
    target.previous_active = current
    target.save(update_fields=["status", "promoted_at", "retired_at", "previous_active"])
    PromotionEvent.objects.create(
        action=PromotionEvent.Action.PROMOTE,
        from_version=current,
        to_version=target,
        actor=user,
        actor_name=actor_name,
        reason=reason,
    )
    return target


def model_version_rollback(*, user=None, actor_name: str | None = None, reason: str = "") -> ModelVersion:
    """Return to the version that was active before the current one (skipping retired ones).

    Rollbacks stack: after v1 -> v2 -> v3, one rollback serves v2 and a second serves v1.
    """
    with transaction.atomic():
        _lock_registry()
        current = ModelVersion.objects.filter(status=ModelVersion.Status.ACTIVE).first()
        if current is None:
            raise PromotionRefused("There is no active version to roll back from.")
        target = current.previous_active
        seen = {current.version}
        while target is not None and (
            target.status in (ModelVersion.Status.RETIRED, ModelVersion.Status.REJECTED) or target.version in seen
        ):
            seen.add(target.version)
            target = target.previous_active
        if target is None:
            raise PromotionRefused(f"Version {current.version} has no earlier active version to roll back to.")
        # The gate holds for rollbacks too: a version may serve only while it passes the gate in
        # force now, which may have been raised since that version last served.
        threshold = default_threshold()
        if not target.r2_test > threshold:
            raise PromotionRefused(
                f"Cannot roll back to version {target.version}: its held-out R² {target.r2_test:.4f} does not "
                f"exceed the current threshold {threshold:g}. Promote a version that passes instead."
            )
        current.status = ModelVersion.Status.CANDIDATE
        current.save(update_fields=["status"])
        target.status = ModelVersion.Status.ACTIVE
        target.promoted_at = timezone.now()
        target.save(update_fields=["status", "promoted_at"])
        PromotionEvent.objects.create(
            action=PromotionEvent.Action.ROLLBACK,
            from_version=current,
            to_version=target,
            actor=user_or_none(user),
            actor_name=_actor_name(user, actor_name),
            reason=reason,
        )
        return target


def model_version_retire(*, version: int, user=None, actor_name: str | None = None, reason: str = "") -> ModelVersion:
    """Withdraw a candidate so that rollbacks skip it. The active version cannot be retired."""
    with transaction.atomic():
        _lock_registry()
        target = _get_version(version)
        if target.status == ModelVersion.Status.ACTIVE:
            raise PromotionRefused(f"Version {target.version} is active; promote another version or roll back first.")
        if target.status != ModelVersion.Status.CANDIDATE:
            raise PromotionRefused(f"Version {target.version} is {target.status}; only candidates can be retired.")
        target.status = ModelVersion.Status.RETIRED
        target.retired_at = timezone.now()
        target.save(update_fields=["status", "retired_at"])
        PromotionEvent.objects.create(
            action=PromotionEvent.Action.RETIRE,
            from_version=target,
            to_version=None,
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


@dataclass(frozen=True)
class PruneResult:
    predictions: int  # single predictions (their outcomes went with them)
    batches: int  # batches, however many predictions each held (their outcomes went with them)


def prediction_logs_prune(
    *, older_than_days: int, chunk_size: int = 10_000, batch_chunk_size: int = 100
) -> PruneResult:
    """Delete logged predictions and batches (and their outcomes) older than ``older_than_days``.

    Deletes in chunks of ids so a large purge never holds one huge transaction or lock: up to
    ``chunk_size`` single predictions, or ``batch_chunk_size`` batches (a batch holds up to 10,000
    predictions, 160 kB of arrays), per transaction.
    """
    if older_than_days < 1:
        raise ValueError(f"older_than_days must be at least 1, got {older_than_days}.")
    try:
        cutoff = timezone.now() - timedelta(days=older_than_days)
    except OverflowError:
        # Older than the calendar goes (year 1): nothing is, so nothing is deleted.
        return PruneResult(predictions=0, batches=0)
    return PruneResult(
        predictions=_prune_single_predictions(cutoff, chunk_size),
        batches=_prune_batches(cutoff, batch_chunk_size),
    )


def _prune_single_predictions(cutoff, chunk_size: int) -> int:
    return _prune(PredictionLog, Outcome, "prediction", cutoff, chunk_size)


def _prune_batches(cutoff, chunk_size: int) -> int:
    return _prune(PredictionBatch, BatchOutcome, "batch", cutoff, chunk_size)


def _prune(model, outcome_model, outcome_key: str, cutoff, chunk_size: int) -> int:
    """Delete ``model`` rows older than ``cutoff`` with their outcomes, ``chunk_size`` per transaction."""
    deleted = 0
    while True:
        ids = list(model.objects.filter(created_at__lt=cutoff).values_list("pk", flat=True)[:chunk_size])
        if not ids:
            return deleted
        with transaction.atomic():
            # Lock the rows first: an outcome being recorded or imported for one of them commits
            # before its outcomes are deleted here, or waits and then finds no prediction.
            locked = model.objects.filter(pk__in=ids).select_for_update().order_by("pk")
            ids = list(locked.values_list("pk", flat=True))
            outcome_model.objects.filter(**{f"{outcome_key}_id__in": ids}).delete()
            # only("pk"): the delete collects the rows as objects, and must not load a batch's arrays.
            _, per_model = model.objects.filter(pk__in=ids).only("pk").delete()
        deleted += per_model.get(model._meta.label, 0)
