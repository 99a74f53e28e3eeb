import pytest


@pytest.fixture(autouse=True)
def _static_without_manifest(settings):
    # Production serves hashed names from collectstatic's manifest; tests render templates
    # without running collectstatic, so they resolve {% static %} against the source files.
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
