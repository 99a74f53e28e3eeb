"""Fixtures shared by the whole suite: the real diabetes data, trained versions, users, clients."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission

from predictor import services, serving
from predictor.ml.data import Dataset, load_diabetes_bmi


@pytest.fixture(scope="session")
def diabetes() -> Dataset:
    """scikit-learn's diabetes data, BMI column, last 20 rows held out (loaded once)."""
    return load_diabetes_bmi()


@pytest.fixture(autouse=True)
def _fresh_serving_cache():
    # Each test has its own database state; a model cached by an earlier test must not leak.
    serving.reset_cache()
    yield
    serving.reset_cache()


@pytest.fixture
def train_version(db, diabetes):
    """Train and store a version: ``train_version(promote=True, random_state=0, **kwargs)``."""

    def _train(**kwargs):
        kwargs.setdefault("dataset", diabetes)
        kwargs.setdefault("random_state", 0)
        kwargs.setdefault("actor_name", "test")
        return services.model_version_train(**kwargs).version

    return _train


@pytest.fixture
def active_version(train_version):
    """A promoted version trained on the diabetes data (R² about 0.47)."""
    return train_version(promote=True)


# What an operator is granted: run the registry (as the admin's promote/retire actions need) and
# read the prediction log and the monitoring figures. is_staff alone opens none of it.
OPERATOR_PERMISSIONS = ("change_modelversion", "view_modelversion", "view_predictionlog", "view_promotionevent")


@pytest.fixture
def staff_user(django_user_model):
    """An operator: staff with the registry and prediction-log permissions (not a superuser)."""
    user = django_user_model.objects.create_user("staff", "staff@example.com", "staff-pass-123", is_staff=True)
    user.user_permissions.set(
        Permission.objects.filter(content_type__app_label="predictor", codename__in=OPERATOR_PERMISSIONS)
    )
    return user


@pytest.fixture
def view_only_staff(django_user_model):
    """Staff who may look at model versions in the admin and nothing else."""
    user = django_user_model.objects.create_user("viewer", "viewer@example.com", "viewer-pass-123", is_staff=True)
    user.user_permissions.set(
        Permission.objects.filter(content_type__app_label="predictor", codename="view_modelversion")
    )
    return user


@pytest.fixture
def plain_user(django_user_model):
    return django_user_model.objects.create_user("clinician", "c@example.com", "clinician-pass-123")


@pytest.fixture
def clinician_user(plain_user):
    """The plain user, granted what a clinician account needs to record observed outcomes."""
    plain_user.user_permissions.add(Permission.objects.get(content_type__app_label="predictor", codename="add_outcome"))
    return plain_user
