"""The original service made to log every prediction durably: the benchmark's "logging peer".

``bench/reference/app.py`` is the original as it was, logging nothing, so it answers a question ours
never faces. This is the same service with the three things ours must do for a single prediction
and the original did not, each done the plainest way its own stack offers:

- **validate** the BMI as ours does: a JSON number (not a string, not ``true``), finite, within
  ``PREDICTOR_BMI_MIN``..``PREDICTOR_BMI_MAX`` inclusive (``bench/run.py`` reads both from our
  settings and passes them in), or a 400 naming the field;
- **log** it: one ``INSERT ... RETURNING id`` per prediction through an asyncpg pool (asyncpg's
  defaults: 10 connections, statements prepared and cached per connection), in autocommit, so each
  answer waits for its commit. It sets no ``synchronous_commit`` of its own: like ours it gets the
  server's, which ``/health`` reports so that the benchmark can check they are the same;
- **answer** like ours: the BMI, the prediction, the model version and the log row's id.

Its table is its own (``REFERENCE_LOG_TABLE``, created at start-up if missing): an id, a timestamp
with an index on it, the BMI and the prediction; ours writes one more index entry per row.
Everything else is the original's: ``async def`` handlers on one uvicorn worker, the model's
``np.dot`` on a ``(1, 1)`` weight, a plain ``dict`` encoded by FastAPI.

asyncpg, not psycopg: it is the driver a FastAPI service reaches for when it must not block the
event loop, and the fastest PostgreSQL client for Python, so the peer is not slowed by its driver.

Run (bench/run.py does this): ``DATABASE_URL=... REFERENCE_LOG_TABLE=... REFERENCE_BMI_MIN=10
REFERENCE_BMI_MAX=80 bench/.venv/bin/uvicorn logged:app --app-dir bench/reference --port N``.
"""

from __future__ import annotations

import os
import re
from contextlib import asynccontextmanager

import asyncpg
import numpy as np
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

W = np.array([[float(os.environ.get("REFERENCE_W", "10.23"))]])
B = float(os.environ.get("REFERENCE_B", "-117.77"))
VERSION = int(os.environ.get("REFERENCE_VERSION", "1"))
# No defaults: the benchmark is the one source of these, so a copy here could not drift from ours.
DATABASE_URL = os.environ["DATABASE_URL"]
TABLE = os.environ["REFERENCE_LOG_TABLE"]
BMI_MIN = float(os.environ["REFERENCE_BMI_MIN"])
BMI_MAX = float(os.environ["REFERENCE_BMI_MAX"])
if not re.fullmatch(r"[a-z_][a-z0-9_]*", TABLE):
    raise SystemExit(f"REFERENCE_LOG_TABLE must be a plain lower-case SQL name, not {TABLE!r}")

_CREATE = (
    f"CREATE TABLE IF NOT EXISTS {TABLE} (id bigserial PRIMARY KEY, "
    "created_at timestamptz NOT NULL DEFAULT now(), bmi double precision NOT NULL, "
    "prediction double precision NOT NULL); "
    f"CREATE INDEX IF NOT EXISTS {TABLE}_created_at ON {TABLE} (created_at)"
)
_INSERT = f"INSERT INTO {TABLE} (bmi, prediction) VALUES ($1, $2) RETURNING id"
_state: dict = {}


@asynccontextmanager
async def lifespan(app: FastAPI):
    pool = await asyncpg.create_pool(DATABASE_URL)
    async with pool.acquire() as connection:
        await connection.execute(_CREATE)
        _state["synchronous_commit"] = await connection.fetchval("SHOW synchronous_commit")
    _state["pool"] = pool
    yield
    await pool.close()


app = FastAPI(lifespan=lifespan)


class StreamInput(BaseModel):
    # strict: 27 and 27.4 pass, "27.4" and true do not; NaN and infinities are refused.
    input: float = Field(strict=True, allow_inf_nan=False, ge=BMI_MIN, le=BMI_MAX)


@app.exception_handler(RequestValidationError)
async def bad_request(request: Request, error: RequestValidationError):
    # Ours answers a 400 naming the field; FastAPI's default is a 422 in its own shape.
    fields: dict[str, list[str]] = {}
    for problem in error.errors():
        # ("body", "input") names a field; ("body", 0) is a body that is not JSON at all.
        loc = problem["loc"]
        name = loc[1] if len(loc) > 1 and isinstance(loc[1], str) else "detail"
        fields.setdefault(name, []).append(problem["msg"])
    return JSONResponse(fields, status_code=400)


def predict(x):
    return np.dot(x, W) + B


@app.post("/stream")
async def stream(payload: StreamInput):
    bmi = payload.input
    prediction = predict(bmi).flatten().tolist()[0]
    prediction_id = await _state["pool"].fetchval(_INSERT, bmi, prediction)
    return {"bmi": bmi, "prediction": prediction, "model_version": VERSION, "prediction_id": prediction_id}


@app.get("/health")
async def health():
    return {"status": "ok", "synchronous_commit": _state["synchronous_commit"]}
