"""The original service, reproduced minimally for the benchmark: FastAPI + plain uvicorn, one worker.

``POST /stream {"input": x}`` and ``POST /batch {"input": [..]}`` answer ``y = w*x + b``. Nothing is
validated beyond pydantic's float coercion and nothing is logged (the uvicorn access log aside):
that is the baseline our service is compared with while it logs every prediction durably.

Run (bench/run.py does this): ``bench/.venv/bin/uvicorn app:app --app-dir bench/reference --port N``.
"""

from __future__ import annotations

import os

from fastapi import FastAPI
from pydantic import BaseModel

# The fitted parameters; the benchmark passes ours so both services return the same numbers.
W = float(os.environ.get("REFERENCE_W", "10.23"))
B = float(os.environ.get("REFERENCE_B", "-117.77"))

app = FastAPI()


class StreamInput(BaseModel):
    input: float


class BatchInput(BaseModel):
    input: list[float]


@app.post("/stream")
def stream(payload: StreamInput) -> dict:
    return {"output": W * payload.input + B}


@app.post("/batch")
def batch(payload: BatchInput) -> dict:
    return {"output": [W * x + B for x in payload.input]}


@app.get("/health")
def health() -> dict:
    return {"status": "ok"}
