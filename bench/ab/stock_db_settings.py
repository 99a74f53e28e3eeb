"""Our settings with Django's stock PostgreSQL backend: the A/B's alternative to bmiproject/db/postgresql.

Bench-only (``bench/run.py --ab overrides`` puts this folder on PYTHONPATH and names this module in
DJANGO_SETTINGS_MODULE), so the service's code runs unchanged. settings.py swaps the stock engine
for the custom one; this swaps it back. CONN_HEALTH_CHECKS still comes from the environment.
"""

from django.core.exceptions import ImproperlyConfigured

from bmiproject.settings import *  # noqa: F403

if DATABASES["default"]["ENGINE"] != "bmiproject.db.postgresql":  # noqa: F405
    # Once the custom backend is gone there is nothing left to compare.
    raise ImproperlyConfigured(
        f"Expected the custom backend bmiproject.db.postgresql, found {DATABASES['default']['ENGINE']!r}."  # noqa: F405
    )
DATABASES["default"]["ENGINE"] = "django.db.backends.postgresql"  # noqa: F405
