"""Rollups: the additive figures of every monitoring number, per model version and day.

A day's row holds sums, never raw rows, so the monitoring page, its API, ``/metrics`` and
``check_model`` read a few hundred small rows per version however long the log grows, and the
figures outlive ``prune_predictions`` (it deletes raw rows, never these). What is not yet folded
into them (the "tail" above :class:`RollupWatermark`) is read from the log itself; see
``predictor/monitoring/rollups.py``.
"""

from django.contrib.postgres.fields import ArrayField
from django.db import models

from predictor.registry.models import ModelVersion


class DailyRollup(models.Model):
    """What one version's predictions of one UTC day add up to, outcomes included.

    Outcomes count on the day of the prediction they observe (whenever they arrive), so a day's
    live figures are the quality of what the version predicted that day.
    """

    model_version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="+", db_index=False)
    day = models.DateField(help_text="UTC day the predictions were made.")
    predictions = models.BigIntegerField(default=0, help_text="Predictions served that day (batch items included).")
    bin_counts = ArrayField(
        models.BigIntegerField(),
        default=list,
        help_text="Served BMIs per bin of the version's training deciles (training_bmi_histogram), in bin order.",
    )
    outcomes = models.BigIntegerField(default=0, help_text="Observed outcomes of that day's predictions.")
    # Outcomes are summed shifted by rollups.OUTCOME_SHIFT (see there why), in progression units.
    observed_sum = models.FloatField(default=0.0, help_text="Σ (observed − shift).")
    observed_sq_sum = models.FloatField(default=0.0, help_text="Σ (observed − shift)².")
    predicted_sum = models.FloatField(default=0.0, help_text="Σ predicted, over predictions with an outcome.")
    sq_error_sum = models.FloatField(default=0.0, help_text="Σ (observed − predicted)².")
    abs_error_sum = models.FloatField(default=0.0, help_text="Σ |observed − predicted|.")
    n_inside = models.BigIntegerField(default=0, help_text="Outcomes inside their prediction's interval.")

    class Meta:
        constraints = [
            # Folds add to a day's row; two rows for one day would be summed twice by nobody, or once.
            models.UniqueConstraint(fields=["model_version", "day"], name="predictor_rollup_version_day"),
        ]

    def __str__(self) -> str:
        return f"v{self.model_version_id} {self.day}: {self.predictions} predictions, {self.outcomes} outcomes"


class RollupWatermark(models.Model):
    """How far the rollups reach: every log entry and outcome with an id at or below these is in them.

    One row. A fold locks it (``SELECT ... FOR UPDATE``) for its whole transaction, so folds run one
    at a time and each starts where the last one committed: no row is ever added twice.
    """

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    log_id = models.BigIntegerField(default=0, help_text="Highest PredictionLog id folded.")
    outcome_id = models.BigIntegerField(default=0, help_text="Highest Outcome id folded.")
    folded_at = models.DateTimeField(null=True, blank=True, help_text="When a fold last committed.")

    class Meta:
        constraints = [models.CheckConstraint(condition=models.Q(id=1), name="predictor_rollup_watermark_singleton")]

    def __str__(self) -> str:
        return f"rollups up to log #{self.log_id}, outcome #{self.outcome_id}"
