"""The migrations: in sync with the models, and reversible on the real database (PostgreSQL)."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command
from django.db import IntegrityError, connection, transaction
from django.db.migrations.executor import MigrationExecutor

from predictor.models import Outcome, PredictionLog
from predictor.predictions import serving

TABLES = {
    "predictor_apitoken",
    "predictor_modelversion",
    "predictor_promotionevent",
    "predictor_registrylock",
    "predictor_predictionlog",
    "predictor_outcome",
    "predictor_dailyrollup",
    "predictor_rollupwatermark",
}


def _predictor_tables() -> set[str]:
    return {name for name in connection.introspection.table_names() if name.startswith("predictor_")}


def _leaf() -> tuple[str, str]:
    executor = MigrationExecutor(connection)
    [leaf] = executor.loader.graph.leaf_nodes("predictor")
    return leaf


@pytest.mark.django_db
def test_the_models_and_the_migrations_are_in_sync():
    # --check exits non-zero when a model change has no migration; --dry-run writes nothing.
    out = StringIO()
    call_command("makemigrations", "--check", "--dry-run", stdout=out)
    assert "No changes detected" in out.getvalue()


@pytest.mark.django_db
def test_the_schema_is_one_initial_migration_applied_to_the_database():
    assert _leaf() == ("predictor", "0001_initial")
    executor = MigrationExecutor(connection)
    assert executor.migration_plan([_leaf()]) == []  # nothing left to apply
    assert _predictor_tables() == TABLES


def test_migrating_to_zero_and_back_works_on_the_real_database(transactional_db, train_version):
    train_version(promote=True)
    call_command("migrate", "predictor", "zero", verbosity=0)
    assert _predictor_tables() == set()

    call_command("migrate", "predictor", verbosity=0)

    assert _predictor_tables() == TABLES
    constraints = connection.introspection.get_constraints(connection.cursor(), "predictor_predictionlog")
    assert {
        "predictor_log_channel_valid",
        "predictor_log_single_is_one",
        "predictor_log_sizes_match",
        "predictor_log_version_time",
    } <= set(constraints)
    # The recreated schema serves: a version trained, a single prediction and a batch logged, an
    # outcome recorded, and the constraints still refuse an inconsistent entry.
    serving.reset_cache()
    version = train_version(promote=True)
    single = serving.predict([25.0], channel="api")
    batch = serving.predict([20.0, 30.0], channel="batch")
    Outcome.objects.create(log_id=batch.log_id, position=1, observed=150.0)
    assert sorted(PredictionLog.objects.values_list("pk", "size")) == [(single.log_id, 1), (batch.log_id, 2)]
    with pytest.raises(IntegrityError), transaction.atomic():
        PredictionLog.objects.create(model_version=version, channel="api", size=2, bmi=[1.0, 2.0], predictions=[1, 2])
