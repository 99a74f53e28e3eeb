"""The model registry (versions and their audit trail) and the prediction log."""

import json
import uuid

from django.conf import settings
from django.db import models
from django.db.models.functions import Now
from django.urls import reverse


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
    # The column's range. A lookup beyond it cannot match, and SQLite cannot even bind it.
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

    def prediction_cautions(self, *, bmi: float, prediction: float) -> list[str]:
        """Why a prediction of this version deserves less trust than usual, in words for a clinician."""
        cautions = []
        known = self.training_bmi_range
        if known is not None and not known[0] <= bmi <= known[1]:
            cautions.append(
                f"BMI {bmi:g} kg/m² is outside the BMIs this model was trained on "
                f"({known[0]:.1f} to {known[1]:.1f} kg/m²): the estimate extends a straight line beyond the "
                "data and may be far off."
            )
        if prediction < 0:
            cautions.append("A negative score is not a possible progression value: do not rely on this estimate.")
        return cautions

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


class PredictionLog(models.Model):
    """One single prediction the service returned (API or web form); batches are :class:`PredictionBatch`.

    Holds no personal data beyond the BMI and the time.
    """

    class Channel(models.TextChoices):
        API = "api", "API (single)"
        WEB = "web", "Web form"

    # db_default so that raw writes get the database's clock too.
    created_at = models.DateTimeField(db_default=Now(), db_index=True)
    # No index of its own: the (model_version, created_at) index below serves lookups by version,
    # and every index is one more write per logged prediction.
    model_version = models.ForeignKey(
        ModelVersion, on_delete=models.PROTECT, related_name="predictions", db_index=False
    )
    bmi = models.FloatField(help_text="kg/m²")
    prediction = models.FloatField(help_text="Predicted progression one year after baseline.")
    channel = models.CharField(max_length=8, choices=Channel.choices)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["model_version", "created_at"], name="predictor_log_version_time"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(channel__in=["api", "web"]),
                name="predictor_log_channel_single",
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} v{self.model_version_id} bmi={self.bmi:g} -> {self.prediction:.1f}"


class FloatArrayField(models.Field):
    """A list of floats: ``double precision[]`` on PostgreSQL, a JSON array in text elsewhere (SQLite).

    Python sees a list of floats either way. PostgreSQL's arrays can be unnested and indexed in SQL
    (the monitoring queries do); SQLite has no array type, and its JSON functions read the text.
    """

    description = "List of floats"

    def db_type(self, connection):
        return "double precision[]" if connection.vendor == "postgresql" else "text"

    def get_db_prep_value(self, value, connection, prepared=False):
        if value is None:
            return None
        values = [float(v) for v in value]
        return values if connection.vendor == "postgresql" else json.dumps(values)

    def from_db_value(self, value, expression, connection):
        if value is None or isinstance(value, list):
            return value
        return json.loads(value)

    def to_python(self, value):
        if value is None or isinstance(value, list):
            return value
        return json.loads(value) if isinstance(value, str) else list(value)


class Cardinality(models.Func):
    """The number of elements of a :class:`FloatArrayField`."""

    function = "cardinality"
    output_field = models.IntegerField()

    def as_sqlite(self, compiler, connection, **extra_context):
        return self.as_sql(compiler, connection, function="json_array_length", **extra_context)


class PredictionBatch(models.Model):
    """One batch request's predictions, logged as one row: the BMIs and predictions as arrays.

    One row per batch, not per prediction: PostgreSQL writes a 10,000-value batch as two arrays of
    80 kB (measured: about 2 ms, with the commit's flush) where 10,000 rows took 50-100 ms, most of
    it one foreign-key check and four index entries per row and 3.5 MB of write-ahead log. Item
    ``i`` of a batch is (``bmi[i]``, ``predictions[i]``); its outcome is a :class:`BatchOutcome`.
    """

    # The batch id returned to the caller.
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    created_at = models.DateTimeField(db_default=Now(), db_index=True)
    model_version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="batches", db_index=False)
    size = models.PositiveIntegerField(help_text="How many predictions the batch holds.")
    bmi = FloatArrayField(help_text="kg/m², in the order they were sent.")
    predictions = FloatArrayField(help_text="Predicted progression, in the order of the BMIs.")

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "prediction batches"
        indexes = [
            models.Index(fields=["model_version", "created_at"], name="predictor_batch_version_time"),
        ]
        constraints = [
            models.CheckConstraint(condition=models.Q(size__gte=1), name="predictor_batch_not_empty"),
            models.CheckConstraint(
                condition=models.Q(size=Cardinality("bmi")) & models.Q(size=Cardinality("predictions")),
                name="predictor_batch_sizes_match",
            ),
        ]

    def __str__(self) -> str:
        return f"batch {self.pk} v{self.model_version_id} ({self.size} predictions)"


class ObservedOutcome(models.Model):
    """What was observed a year after a prediction, by whom and how it arrived (abstract)."""

    observed = models.FloatField(help_text="Observed progression one year after baseline.")
    recorded_at = models.DateTimeField(auto_now_add=True, db_index=True)
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    source = models.CharField(max_length=32, default="api", help_text="api, import, ...")

    class Meta:
        abstract = True
        ordering = ["-recorded_at"]


class Outcome(ObservedOutcome):
    """The progression actually observed a year later for a logged single prediction."""

    # One outcome per prediction; the primary key makes a second one a conflict.
    prediction = models.OneToOneField(PredictionLog, primary_key=True, on_delete=models.CASCADE, related_name="outcome")

    class Meta(ObservedOutcome.Meta):
        pass

    def __str__(self) -> str:
        return f"outcome of #{self.prediction_id}: {self.observed:g}"


class BatchOutcome(ObservedOutcome):
    """The progression actually observed for one prediction of a batch: item ``position`` (from 0)."""

    batch = models.ForeignKey(PredictionBatch, on_delete=models.CASCADE, related_name="outcomes")
    position = models.PositiveIntegerField(help_text="The prediction's index in its batch, from 0.")

    class Meta(ObservedOutcome.Meta):
        constraints = [
            # One outcome per prediction, as for single predictions (whose key is the prediction).
            models.UniqueConstraint(fields=["batch", "position"], name="predictor_batch_outcome_once"),
        ]

    def __str__(self) -> str:
        return f"outcome of batch {self.batch_id}[{self.position}]: {self.observed:g}"


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
