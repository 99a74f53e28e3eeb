"""The test suite's settings: the real settings, with test-only defaults for what production must set.

pytest-django imports settings before any conftest runs, so the defaults are set here. Real values
from the environment (DATABASE_URL in CI) still win.
"""

import os

from bmiproject import devdb

os.environ.setdefault("SECRET_KEY", "test-secret-key-not-for-production-" + "x" * 32)
os.environ.setdefault("DEBUG", "0")
os.environ.setdefault("ALLOWED_HOSTS", "testserver,localhost,127.0.0.1")
# The test client and the browser tests speak plain HTTP to a local server; production's HTTPS
# redirect and Secure-only cookies are tested in tests/deploy/ against real gunicorn.
os.environ.setdefault("SECURE_SSL_REDIRECT", "0")
os.environ.setdefault("SESSION_COOKIE_SECURE", "0")
os.environ.setdefault("CSRF_COOKIE_SECURE", "0")
# The embedded PostgreSQL unless DATABASE_URL names one (CI). Exported, so that the servers and
# commands the tests start in other processes use the same database.
if not os.environ.get("DATABASE_URL"):
    os.environ["DATABASE_URL"] = devdb.database_url()

from bmiproject.settings import *  # noqa: F403

# The manifest storage needs `collectstatic` first; tests render templates without it. The
# gunicorn integration test runs the production storage after a real collectstatic.
STORAGES = {**STORAGES, "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}  # noqa: F405
# Serve static files from the apps' folders, as runserver does, instead of a collected STATIC_ROOT.
WHITENOISE_AUTOREFRESH = True
WHITENOISE_USE_FINDERS = True
