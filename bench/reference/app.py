"""The original service, reproduced minimally for the benchmark: FastAPI + plain uvicorn, one worker.

``POST /stream {"input": x}`` and ``POST /batch {"input": [..]}`` answer ``y = w*x + b``. Nothing is
validated beyond pydantic's float coercion and nothing is logged (the uvicorn access log aside):
that is the baseline our service is compared with while it logs every prediction durably.

Faithful to the original in what costs time: ``async def`` handlers on the event loop, the model's
``np.dot(X, W) + b`` on a ``(n, 1)`` array, ``.flatten().tolist()``, and a plain ``dict`` returned
with no response model, so FastAPI encodes it with ``jsonable_encoder`` (for a 10,000-value batch
that is most of the reference's time; a ``-> dict`` annotation would switch to pydantic's encoder
and make the reference several times faster than the service it stands for). ``/health`` is ours:
the benchmark polls it to know the server is up and uses it to drain connections.

Run (bench/run.py does this): ``bench/.venv/bin/uvicorn app:app --app-dir bench/reference --port N``.
"""

from __future__ import annotations

import os

import numpy as np
from fastapi import FastAPI
from pydantic import BaseModel

# The fitted parameters, shaped as the original model held them (W is (1, 1)); the benchmark
# passes ours so both services return the same numbers.
W = np.array([[float(os.environ.get("REFERENCE_W", "10.23"))]])
B = float(os.environ.get("REFERENCE_B", "-117.77"))

app = FastAPI()


class StreamInput(BaseModel):
    input: float


class BatchInput(BaseModel):
    input: list[float]


def predict(x):
    return np.dot(x, W) + B


@app.post("/stream")
async def stream(payload: StreamInput):
    return {"Response Predict": predict(payload.input).flatten().tolist()}


@app.post("/batch")
async def batch(payload: BatchInput):
    return {"Response Predict": predict(np.array(payload.input)[:, np.newaxis]).flatten().tolist()}


@app.get("/health")
async def health():
    return {"status": "ok"}
