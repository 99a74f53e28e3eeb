"""Single predictions only in PredictionLog's model; the old batch column stays in the database for now.

Expand and contract. During a deploy the previous release keeps serving while this one migrates
(docs/deployment.md: migrations must keep the previous release working), and it logs batches as
log rows with ``batch_id`` and channel "batch". So this migration changes only Django's view of the
table: the model has no ``batch_id`` and no "batch" channel, while the database keeps the column,
its partial index and the old channel check, and the previous release keeps working. Rows it logs
meanwhile are ordinary log rows of their version: counted, monitored, open to outcomes. The
contract step, in the next release once no release writes batch rows any more, moves any such rows
into PredictionBatch (as 0003 does), drops the column and narrows the check.
"""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("predictor", "0003_prediction_batches"),
    ]

    operations = [
        # Django's model state only: the database keeps the column, its index and the old check
        # until the contract step (see the docstring).
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.RemoveConstraint(
                    model_name="predictionlog",
                    name="predictor_log_channel_valid",
                ),
                migrations.RemoveIndex(
                    model_name="predictionlog",
                    name="predictor_log_batch",
                ),
                migrations.RemoveField(
                    model_name="predictionlog",
                    name="batch_id",
                ),
                migrations.AlterField(
                    model_name="predictionlog",
                    name="channel",
                    field=models.CharField(choices=[("api", "API (single)"), ("web", "Web form")], max_length=8),
                ),
                migrations.AddConstraint(
                    model_name="predictionlog",
                    constraint=models.CheckConstraint(
                        condition=models.Q(("channel__in", ["api", "web"])), name="predictor_log_channel_single"
                    ),
                ),
            ],
            database_operations=[],
        ),
    ]
