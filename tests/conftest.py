"""Fixtures shared by the whole suite: the real diabetes data, trained versions, users, clients."""

from __future__ import annotations

import pytest

from predictor import serving, services
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


@pytest.fixture
def staff_user(django_user_model):
    return django_user_model.objects.create_user("staff", "staff@example.com", "staff-pass-123", is_staff=True)


@pytest.fixture
def plain_user(django_user_model):
    return django_user_model.objects.create_user("clinician", "c@example.com", "clinician-pass-123")
