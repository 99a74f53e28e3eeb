"""Single predictions only in PredictionLog: its batch column and the "batch" channel go (see 0003).

A separate migration because PostgreSQL refuses to alter a table with pending deferred
foreign-key checks, which 0003's move leaves on the log until its transaction commits.
"""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("predictor", "0003_prediction_batches"),
    ]

    operations = [
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
    ]
