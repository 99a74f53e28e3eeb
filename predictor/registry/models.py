"""The model registry: trained versions, the audit trail of their status changes, the registry lock."""

from django.conf import settings
from django.db import models
from django.urls import reverse

from predictor.ml.cautions import Explained, Limits, explain
from predictor.ml.intervals import IntervalFigures

# Where a version's IntervalFigures and Limits come from (ModelVersion.interval, .limits): the
# serving path loads these columns alone with the line (ServingModel.COLUMNS).
INTERVAL_COLUMNS = {
    "level": "interval_level",
    "t": "interval_t",
    "residual_std": "residual_std",
    "n": "n_train",
    "bmi_mean": "bmi_mean",
    "bmi_sxx": "bmi_sxx",
}
LIMITS_COLUMNS = ("training_bmi_histogram", "progression_min", "progression_max")


class ModelVersion(models.Model):
    """One trained model: its coefficients, how it was trained and how well it did."""

    class Status(models.TextChoices):
        # Passed the gate; eligible to serve but not serving (new, replaced, or rolled back from).
        CANDIDATE = "candidate", "Candidate"
        # Failed the gate; kept with its metrics so nobody retrains blind. Can never serve.
        REJECTED = "rejected", "Rejected"
        # Serving now. The database allows at most one.
        ACTIVE = "active", "Active"
        # Withdrawn by an operator; rollback skips it. Only an explicit promotion brings it back.
        RETIRED = "retired", "Retired"

    # The primary key is the version number: a database sequence, so numbers are never reused.
    version = models.AutoField(primary_key=True)
    # The column's range: a lookup beyond it cannot match, so it need not reach the database.
    VERSION_MAX = 2**31 - 1
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.CANDIDATE)

    slope = models.FloatField(help_text="Progression units per kg/m² of BMI.")
    intercept = models.FloatField(help_text="Progression units at BMI 0 kg/m² (extrapolated).")

    r2_test = models.FloatField("held-out R²", help_text="Coefficient of determination on the test rows.")
    mse_test = models.FloatField("held-out MSE", help_text="Mean squared error on the test rows (units²).")
    mae_test = models.FloatField("held-out MAE", help_text="Mean absolute error on the test rows (units).")
    r2_train = models.FloatField("training R²")
    mse_train = models.FloatField("training MSE")
    n_train = models.PositiveIntegerField(help_text="Training rows, outcome rows included.")
    n_test = models.PositiveIntegerField(help_text="Held-out rows.")
    n_outcome_rows = models.PositiveIntegerField(
        default=0, help_text="Training rows that came from observed outcomes of logged predictions."
    )
    threshold = models.FloatField(help_text="The R² gate this version was judged against when trained.")

    # The prediction interval ŷ ± t · s · √(1 + 1/n + (x − x̄)² / Sxx), n = n_train (predictor/ml/intervals.py).
    interval_level = models.FloatField(help_text="Nominal coverage of the prediction interval, e.g. 0.95.")
    interval_t = models.FloatField(help_text="Student's t quantile at (1 + level) / 2, n_train − 2 degrees of freedom.")
    residual_std = models.FloatField(help_text="Residual standard error s on the training rows (progression units).")
    bmi_mean = models.FloatField(help_text="Mean training BMI x̄ (kg/m²).")
    bmi_sxx = models.FloatField(help_text="Σ (x − x̄)² over the training BMIs ((kg/m²)²).")
    # Calibration measured at training time (predictor/ml/intervals.py), beside the nominal level.
    coverage_test = models.FloatField(help_text="Share of the held-out rows inside their prediction interval.")
    coverage_cv = models.FloatField(
        help_text="Share of the training rows inside their interval in 10-fold cross-validation (seeded, SGD refitted)."
    )
    # The scale the training data cover: estimates and interval ends beyond it are flagged (predictor/ml/cautions.py).
    progression_min = models.FloatField(help_text="Lowest progression score in the training rows.")
    progression_max = models.FloatField(help_text="Highest progression score in the training rows.")

    hyperparameters = models.JSONField(default=dict, help_text="Estimator parameters, seed included.")
    random_state = models.IntegerField(null=True, blank=True)
    n_epochs = models.PositiveIntegerField(help_text="Epochs SGD ran before stopping.")
    converged = models.BooleanField(
        default=True, help_text="False when SGD stopped on its epoch limit rather than its tolerance."
    )
    loss_curve = models.JSONField(
        default=list, help_text="Training MSE after each epoch, downsampled to at most 200 points."
    )
    training_seconds = models.FloatField(help_text="Wall-clock time of the fit alone, in seconds.")

    dataset_name = models.CharField(max_length=200)
    data_fingerprint = models.CharField(max_length=64, help_text="SHA-256 of the exact training and test data.")
    # For charts and drift monitoring without reloading the training data (or scikit-learn).
    training_sample = models.JSONField(
        default=list, help_text="Up to 500 training (bmi, progression) pairs, for charts."
    )
    training_bmi_histogram = models.JSONField(
        default=dict,
        help_text="Training BMI distribution: 'edges' (kg/m², deciles) and 'fractions' per bin.",
    )

    code_version = models.CharField(max_length=64, blank=True, help_text="Git SHA of the training code.")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    promoted_at = models.DateTimeField(null=True, blank=True, help_text="When it last became active.")
    retired_at = models.DateTimeField(null=True, blank=True)
    # The version that was active when this one was promoted: rollback returns to it.
    previous_active = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT, related_name="+")

    class Meta:
        ordering = ["-version"]
        constraints = [
            # Two workers may promote at the same time; this makes the loser fail cleanly.
            models.UniqueConstraint(
                fields=["status"],
                condition=models.Q(status="active"),
                name="predictor_one_active_version",
            ),
            models.CheckConstraint(
                condition=models.Q(status__in=["candidate", "rejected", "active", "retired"]),
                name="predictor_version_status_valid",
            ),
            models.CheckConstraint(
                condition=~models.Q(status="active") | models.Q(promoted_at__isnull=False),
                name="predictor_active_has_promoted_at",
            ),
        ]

    def __str__(self) -> str:
        return f"v{self.version} ({self.status}, R² {self.r2_test:.4f})"

    def get_absolute_url(self) -> str:
        return reverse("predictor:model-detail", kwargs={"version": self.version})

    @property
    def training_bmi_range(self) -> tuple[float, float] | None:
        """The lowest and highest training BMI (kg/m²), from the histogram's outer edges."""
        edges = (self.training_bmi_histogram or {}).get("edges") or []
        return (float(edges[0]), float(edges[-1])) if len(edges) >= 2 else None

    @property
    def limits(self) -> Limits:
        """What the training data covered: BMIs and progression scores."""
        return Limits(bmi=self.training_bmi_range, scale=(self.progression_min, self.progression_max))

    def explain(self, bmi, prediction) -> Explained:
        """Intervals and cautions of this version's predictions ``prediction`` for ``bmi``."""
        return explain(bmi, prediction, interval=self.interval, limits=self.limits)

    @property
    def interval(self) -> IntervalFigures:
        """What this version's prediction intervals are computed from."""
        return IntervalFigures(**{figure: getattr(self, column) for figure, column in INTERVAL_COLUMNS.items()})

    @property
    def passed_gate(self) -> bool:
        return self.r2_test > self.threshold


class PromotionEvent(models.Model):
    """Append-only audit trail of every change of the active version, and of retirements."""

    class Action(models.TextChoices):
        PROMOTE = "promote", "Promote"
        ROLLBACK = "rollback", "Rollback"
        RETIRE = "retire", "Retire"

    action = models.CharField(max_length=16, choices=Action.choices)
    from_version = models.ForeignKey(
        ModelVersion,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="Active before the change (for retire: the version retired).",
    )
    to_version = models.ForeignKey(
        ModelVersion,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="Active after the change (empty for retire).",
    )
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_name = models.CharField(max_length=150, help_text="Who did it: a username, or 'cli:<login>' for commands.")
    reason = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(action__in=["promote", "rollback", "retire"]),
                name="predictor_event_action_valid",
            ),
        ]

    def __str__(self) -> str:
        if self.action == self.Action.RETIRE:
            return f"retire v{self.from_version_id} by {self.actor_name}"
        source = f"v{self.from_version_id}" if self.from_version_id else "none"
        return f"{self.action} {source} -> v{self.to_version_id} by {self.actor_name}"

    def save(self, *args, **kwargs):
        if self.pk is not None:
            raise ValueError("Promotion events are append-only; they cannot be changed.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise ValueError("Promotion events are append-only; they cannot be deleted.")


class RegistryLock(models.Model):
    """A single row that registry writes lock first (``SELECT ... FOR UPDATE``).

    Promotions, rollbacks, retirements and the save of a trained version all take it, so they run
    one at a time and each sees the others' committed result; the one-active constraint on
    :class:`ModelVersion` stays as the backstop.
    """

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)

    class Meta:
        constraints = [models.CheckConstraint(condition=models.Q(id=1), name="predictor_registry_lock_singleton")]

    def __str__(self) -> str:
        return "registry lock"
