"""The prediction log: every answer the service gave, and what was observed a year later."""

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.db.models.functions import Now

from predictor.registry.models import ModelVersion


class Cardinality(models.Func):
    """The number of elements of an array column (PostgreSQL's ``cardinality``)."""

    function = "cardinality"
    output_field = models.IntegerField()


class ArrayItem(models.Func):
    """Item ``position`` (from 0) of an entry's array, e.g. the prediction an :class:`Outcome` observes.

    PostgreSQL arrays count from 1, hence ``array[position + 1]``: one element read in SQL, never
    the whole array shipped to Python.
    """

    arity = 2
    output_field = models.FloatField()

    def as_sql(self, compiler, connection, **extra_context):
        (array, array_params), (position, position_params) = map(compiler.compile, self.get_source_expressions())
        return f"({array})[{position} + 1]", (*array_params, *position_params)


class PredictionLog(models.Model):
    """One answered prediction request: its BMIs and predictions as arrays, in the order sent.

    A single prediction (API or web form) is an entry of size 1; a batch is one entry of its size.
    One row per request, not per prediction: PostgreSQL writes a 10,000-value batch as two arrays
    of 80 kB (measured: about 2 ms with the commit's flush) where 10,000 rows took 50-100 ms, most
    of it a foreign-key check and index entries per row and 3.5 MB of write-ahead log. Prediction
    ``i`` of an entry is (``bmi[i]``, ``predictions[i]``); its observed outcome is an
    :class:`Outcome` at position ``i``. Holds no personal data beyond the BMIs and the time.
    """

    class Channel(models.TextChoices):
        API = "api", "API (single)"
        WEB = "web", "Web form"
        BATCH = "batch", "API (batch)"

    # The public id: prediction_id of a single prediction, batch_id of a batch.
    id = models.BigAutoField(primary_key=True)
    # db_default so that the serving path's raw INSERT gets the database's clock too.
    created_at = models.DateTimeField(db_default=Now(), db_index=True)
    # No index of its own: the (model_version, created_at) index below serves lookups by version,
    # and every index is one more write per logged request.
    model_version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="+", db_index=False)
    channel = models.CharField(max_length=8, choices=Channel.choices)
    size = models.PositiveIntegerField(help_text="How many predictions the entry holds (1 for a single one).")
    bmi = ArrayField(models.FloatField(), help_text="kg/m², in the order they were sent.")
    predictions = ArrayField(
        models.FloatField(), help_text="Predicted progression one year after baseline, in the order of the BMIs."
    )

    # The id column's range: a lookup beyond it cannot match, so it need not reach the database.
    ID_MAX = 2**63 - 1

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["model_version", "created_at"], name="predictor_log_version_time")]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(channel__in=["api", "web", "batch"]), name="predictor_log_channel_valid"
            ),
            # A single prediction (API or form) holds one value; only a batch holds more.
            models.CheckConstraint(
                condition=models.Q(channel="batch") | models.Q(size=1), name="predictor_log_single_is_one"
            ),
            models.CheckConstraint(
                condition=models.Q(size__gte=1)
                & models.Q(size=Cardinality("bmi"))
                & models.Q(size=Cardinality("predictions")),
                name="predictor_log_sizes_match",
            ),
        ]

    def __str__(self) -> str:
        if self.size == 1:
            return f"#{self.pk} v{self.model_version_id} bmi={self.bmi[0]:g} -> {self.predictions[0]:.1f}"
        return f"#{self.pk} v{self.model_version_id} batch of {self.size}"


class Outcome(models.Model):
    """The progression observed a year after one logged prediction: item ``position`` of its entry."""

    log = models.ForeignKey(PredictionLog, on_delete=models.CASCADE, related_name="outcomes")
    position = models.PositiveIntegerField(default=0, help_text="The prediction's index in its entry, from 0.")
    observed = models.FloatField(help_text="Observed progression one year after baseline.")
    recorded_at = models.DateTimeField(auto_now_add=True, db_index=True)
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    source = models.CharField(max_length=32, default="api", help_text="api, web, import, ...")

    class Meta:
        ordering = ["-recorded_at", "-id"]
        constraints = [
            # Two clients may record the same prediction at once; this makes the loser fail cleanly.
            models.UniqueConstraint(fields=["log", "position"], name="predictor_outcome_once"),
        ]

    def __str__(self) -> str:
        return f"outcome of #{self.log_id}[{self.position}]: {self.observed:g}"
