"""Two fewer index writes per logged prediction, without locking the log while it serves.

Django's own operations for this (AlterField, AddIndex) would drop and re-add the foreign key,
re-validating every row, and build the index under an exclusive lock, in one transaction: on a
large log, every prediction INSERT would queue behind the migration. The database side is done
by hand instead, CONCURRENTLY on PostgreSQL; Django's model state is updated as usual.
"""

import django.db.models.deletion
from django.db import migrations, models

# The names Django gave these indexes in 0001 (a hash of table and column, the same on every database).
OLD_INDEXES = ("predictor_predictionlog_model_version_id_3b9348e9", "predictor_predictionlog_batch_id_e0856f20")
NEW_INDEX_SQL = "INDEX {concurrently} IF NOT EXISTS predictor_log_batch ON predictor_predictionlog (batch_id) WHERE batch_id IS NOT NULL"


def _concurrently(schema_editor) -> str:
    return "CONCURRENTLY" if schema_editor.connection.vendor == "postgresql" else ""


def leaner(apps, schema_editor):
    concurrently = _concurrently(schema_editor)
    schema_editor.execute("CREATE " + NEW_INDEX_SQL.format(concurrently=concurrently))
    for name in OLD_INDEXES:
        schema_editor.execute(f"DROP INDEX {concurrently} IF EXISTS {name}")


def restore(apps, schema_editor):
    concurrently = _concurrently(schema_editor)
    schema_editor.execute(
        f"CREATE INDEX {concurrently} IF NOT EXISTS {OLD_INDEXES[0]} ON predictor_predictionlog (model_version_id)"
    )
    schema_editor.execute(f"CREATE INDEX {concurrently} IF NOT EXISTS {OLD_INDEXES[1]} ON predictor_predictionlog (batch_id)")
    schema_editor.execute(f"DROP INDEX {concurrently} IF EXISTS predictor_log_batch")


class Migration(migrations.Migration):
    # CREATE/DROP INDEX CONCURRENTLY cannot run inside a transaction.
    atomic = False

    dependencies = [
        ("predictor", "0001_initial"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="predictionlog",
                    name="batch_id",
                    field=models.UUIDField(blank=True, null=True),
                ),
                migrations.AlterField(
                    model_name="predictionlog",
                    name="model_version",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="predictions",
                        to="predictor.modelversion",
                    ),
                ),
                migrations.AddIndex(
                    model_name="predictionlog",
                    index=models.Index(
                        condition=models.Q(("batch_id__isnull", False)), fields=["batch_id"], name="predictor_log_batch"
                    ),
                ),
            ],
            database_operations=[migrations.RunPython(leaner, restore)],
        ),
    ]
