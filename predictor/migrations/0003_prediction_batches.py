"""Batches logged as one row each (PredictionBatch), their observed outcomes (BatchOutcome).

Creates the tables, keeps PostgreSQL from trying to compress the arrays (random floats do not
compress; trying costs about half the write), and moves batches already logged one row per
prediction into the new table, with their outcomes. 0004 then drops the old batch column.
"""

import uuid

import django.db.models.deletion
import django.db.models.functions.datetime
from django.conf import settings
from django.db import migrations, models

import predictor.models


def store_arrays_uncompressed(apps, schema_editor):
    # EXTERNAL: out of line (TOAST) but never compressed. Measured on a 10,000-value batch: 1.9 ms
    # to write and commit it, against 4.1 ms with the default EXTENDED storage.
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(
            "ALTER TABLE predictor_predictionbatch ALTER COLUMN bmi SET STORAGE EXTERNAL, "
            "ALTER COLUMN predictions SET STORAGE EXTERNAL"
        )


def move_logged_batches(apps, schema_editor):
    """Each batch logged as rows becomes one PredictionBatch (rows in id order); outcomes follow."""
    PredictionLog = apps.get_model("predictor", "PredictionLog")
    PredictionBatch = apps.get_model("predictor", "PredictionBatch")
    Outcome = apps.get_model("predictor", "Outcome")
    BatchOutcome = apps.get_model("predictor", "BatchOutcome")
    rows = PredictionLog.objects.filter(batch_id__isnull=False)
    for batch_id in list(rows.order_by().values_list("batch_id", flat=True).distinct()):
        items = list(
            rows.filter(batch_id=batch_id)
            .order_by("id")
            .values("id", "created_at", "model_version_id", "bmi", "prediction")
        )
        batch = PredictionBatch.objects.create(
            id=batch_id,
            created_at=items[0]["created_at"],
            model_version_id=items[0]["model_version_id"],
            size=len(items),
            bmi=[item["bmi"] for item in items],
            predictions=[item["prediction"] for item in items],
        )
        position = {item["id"]: index for index, item in enumerate(items)}
        outcomes = Outcome.objects.filter(prediction_id__in=position)
        BatchOutcome.objects.bulk_create(
            BatchOutcome(
                batch=batch,
                position=position[outcome.prediction_id],
                observed=outcome.observed,
                recorded_at=outcome.recorded_at,
                recorded_by_id=outcome.recorded_by_id,
                source=outcome.source,
            )
            for outcome in outcomes
        )
        for outcome in outcomes:  # auto_now_add stamped them now; keep when they were recorded
            BatchOutcome.objects.filter(batch=batch, position=position[outcome.prediction_id]).update(
                recorded_at=outcome.recorded_at
            )
        outcomes.delete()
        rows.filter(batch_id=batch_id).delete()


def expand_batches(apps, schema_editor):
    """The reverse: each batch back to one log row per prediction, its outcomes onto those rows."""
    PredictionLog = apps.get_model("predictor", "PredictionLog")
    PredictionBatch = apps.get_model("predictor", "PredictionBatch")
    Outcome = apps.get_model("predictor", "Outcome")
    for batch in PredictionBatch.objects.order_by("created_at").iterator():
        rows = PredictionLog.objects.bulk_create(
            PredictionLog(
                created_at=batch.created_at,
                model_version_id=batch.model_version_id,
                bmi=bmi,
                prediction=prediction,
                channel="batch",
                batch_id=batch.id,
            )
            for bmi, prediction in zip(batch.bmi, batch.predictions, strict=True)
        )
        if not rows or rows[0].pk is None:  # backends that do not return ids: read them back
            rows = list(PredictionLog.objects.filter(batch_id=batch.id).order_by("id"))
        for outcome in batch.outcomes.all():
            Outcome.objects.create(
                prediction_id=rows[outcome.position].pk,
                observed=outcome.observed,
                recorded_by_id=outcome.recorded_by_id,
                source=outcome.source,
            )
            Outcome.objects.filter(pk=rows[outcome.position].pk).update(recorded_at=outcome.recorded_at)


class Migration(migrations.Migration):
    dependencies = [
        ("predictor", "0002_prediction_log_leaner_indexes"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="BatchOutcome",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("position", models.PositiveIntegerField(help_text="The prediction's index in its batch, from 0.")),
                ("observed", models.FloatField(help_text="Observed progression one year after baseline.")),
                ("recorded_at", models.DateTimeField(auto_now_add=True, db_index=True)),
                ("source", models.CharField(default="api", help_text="api, import, ...", max_length=32)),
            ],
            options={
                "ordering": ["-recorded_at"],
            },
        ),
        migrations.CreateModel(
            name="PredictionBatch",
            fields=[
                ("id", models.UUIDField(default=uuid.uuid4, editable=False, primary_key=True, serialize=False)),
                (
                    "created_at",
                    models.DateTimeField(db_default=django.db.models.functions.datetime.Now(), db_index=True),
                ),
                ("size", models.PositiveIntegerField(help_text="How many predictions the batch holds.")),
                ("bmi", predictor.models.FloatArrayField(help_text="kg/m², in the order they were sent.")),
                (
                    "predictions",
                    predictor.models.FloatArrayField(help_text="Predicted progression, in the order of the BMIs."),
                ),
            ],
            options={
                "verbose_name_plural": "prediction batches",
                "ordering": ["-created_at", "-id"],
            },
        ),
        migrations.AddField(
            model_name="batchoutcome",
            name="recorded_by",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="+",
                to=settings.AUTH_USER_MODEL,
            ),
        ),
        migrations.AddField(
            model_name="predictionbatch",
            name="model_version",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="batches",
                to="predictor.modelversion",
            ),
        ),
        migrations.AddField(
            model_name="batchoutcome",
            name="batch",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.CASCADE, related_name="outcomes", to="predictor.predictionbatch"
            ),
        ),
        migrations.AddIndex(
            model_name="predictionbatch",
            index=models.Index(fields=["model_version", "created_at"], name="predictor_batch_version_time"),
        ),
        migrations.AddConstraint(
            model_name="predictionbatch",
            constraint=models.CheckConstraint(condition=models.Q(("size__gte", 1)), name="predictor_batch_not_empty"),
        ),
        migrations.AddConstraint(
            model_name="predictionbatch",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    ("size", predictor.models.Cardinality("bmi")), ("size", predictor.models.Cardinality("predictions"))
                ),
                name="predictor_batch_sizes_match",
            ),
        ),
        migrations.AddConstraint(
            model_name="batchoutcome",
            constraint=models.UniqueConstraint(fields=("batch", "position"), name="predictor_batch_outcome_once"),
        ),
        migrations.RunPython(store_arrays_uncompressed, migrations.RunPython.noop),
        migrations.RunPython(move_logged_batches, expand_batches),
    ]
