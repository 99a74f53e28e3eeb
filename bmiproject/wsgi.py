"""WSGI entry point (gunicorn bmiproject.wsgi)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bmiproject.settings")

application = get_wsgi_application()
