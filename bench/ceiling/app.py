"""The ceiling for single predictions: gunicorn and the durable log write, with no framework at all.

Not a service: a measuring stick for ``bench/run.py``. It runs under the same gunicorn command,
configuration file and environment as ours (workers, threads, access log as ECS sets it, preload)
against the same database, and answers ``POST /api/v1/predict {"bmi": x}`` by executing the same
prepared ``INSERT ... WHERE EXISTS`` as ``predictor.predictions.serving`` (one
``predictor_predictionlog`` row of size 1, in autocommit, so each answer waits for its commit, as
ours does), with one psycopg2 connection per thread. ``POST /unlogged`` answers the same way without
touching the database. Nothing is validated and no security header is sent.

So two rows of the benchmark say what any Django code of ours competes with on this machine:
gunicorn alone, and gunicorn plus one durable INSERT per prediction. What separates the ceiling
from our service is Django's request cycle, our validation and its connection handling.

Run (bench/run.py does this): ``.venv/bin/gunicorn --config bmiproject/gunicorn.conf.py
--chdir bench/ceiling app:application`` with ``DATABASE_URL`` set.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from pathlib import Path

import psycopg2

# The gunicorn configuration preloads Django's URLconf in the master; set Django up so that hook
# runs as it does for our service, and read the exact statement our service executes.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bmiproject.settings")
import django

django.setup()
from predictor.predictions.serving import _PREPARE_SINGLE  # noqa: E402

# The statement itself is our service's: only its prepared name is the ceiling's.
_PREPARE = _PREPARE_SINGLE.format(name="log_one")
_ACTIVE = "SELECT version, slope, intercept FROM predictor_modelversion WHERE status = 'active'"
_local = threading.local()


def _session():
    """This thread's connection, with the statement prepared and the active model read once."""
    session = getattr(_local, "session", None)
    if session is None:
        connection = psycopg2.connect(os.environ["DATABASE_URL"])
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute(_PREPARE)
            cursor.execute(_ACTIVE)
            model = cursor.fetchone()
        session = _local.session = (connection, model)
    return session


def _answer(start_response, body: bytes, status: str = "200 OK"):
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


def application(environ, start_response):
    method, path = environ["REQUEST_METHOD"], environ["PATH_INFO"]
    if method == "GET" and path in ("/healthz", "/readyz"):
        return _answer(start_response, b'{"status":"ok"}')
    if method != "POST" or path not in ("/api/v1/predict", "/unlogged"):
        return _answer(start_response, b'{"detail":"not found"}', "404 Not Found")
    bmi = float(json.loads(environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0)))["bmi"])
    connection, (version, slope, intercept) = _session()
    prediction = slope * bmi + intercept
    prediction_id = None
    if path == "/api/v1/predict":
        with connection.cursor() as cursor:
            cursor.execute("EXECUTE log_one (%s, %s, %s, %s)", (version, "api", bmi, prediction))
            prediction_id = cursor.fetchone()[0]
    body = {"bmi": bmi, "prediction": prediction, "model_version": version, "prediction_id": prediction_id}
    return _answer(start_response, json.dumps(body).encode())
