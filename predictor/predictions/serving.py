"""The serving path: the active model cached per worker, predictions computed and logged.

A prediction is ``slope * bmi + intercept``; this module imports neither scikit-learn nor
anything heavier than NumPy. Every prediction returned has been logged first: if the write fails,
the caller gets the database error, never an unlogged prediction. A request is one
:class:`~predictor.predictions.models.PredictionLog` entry, whether it held one BMI or a batch.

Freshness without a timeout: a single prediction's INSERT only succeeds while the cached version
is still the active one (``WHERE EXISTS``), and a batch checks the same under a share lock before
its write. When the check fails, the worker reloads the model and tries again, so after a
promotion or rollback every worker serves the new version from its next request, at the cost of
no extra query in the common case.
"""

from __future__ import annotations

import io
import itertools
import struct
import threading
import weakref
from dataclasses import dataclass
from functools import partial

import numpy as np
from django.db import Error as DBError
from django.db import connection, transaction

from predictor.ml.cautions import Explained, Limits, explain
from predictor.ml.intervals import IntervalFigures
from predictor.predictions import metrics
from predictor.predictions.models import PredictionLog
from predictor.registry.models import INTERVAL_COLUMNS, LIMITS_COLUMNS, ModelVersion

__all__ = ["LoggedPredictions", "NoActiveModel", "ServingModel", "active_model", "predict", "reset_cache"]

_LOG_TABLE = PredictionLog._meta.db_table
_VERSION_TABLE = ModelVersion._meta.db_table
# A worker that keeps losing the race with promotions gives up after this many reloads.
_MAX_RELOADS = 5


class NoActiveModel(Exception):
    """No version is active, so nothing can be predicted (the API answers 503)."""


@dataclass(frozen=True)
class ServingModel:
    """The active version as a worker serves it: its line, interval figures and training limits.

    Loaded in one query with the model, so an answer's interval and cautions cost a few float
    operations and no query.
    """

    version: int
    slope: float
    intercept: float
    interval: IntervalFigures
    limits: Limits

    # The columns _load reads: what from_version uses, and no more.
    COLUMNS = ("version", "slope", "intercept", *INTERVAL_COLUMNS.values(), *LIMITS_COLUMNS)

    @classmethod
    def from_version(cls, version: ModelVersion) -> ServingModel:
        return cls(
            version=version.version,
            slope=version.slope,
            intercept=version.intercept,
            interval=version.interval,
            limits=version.limits,
        )

    def predict(self, bmi: np.ndarray) -> np.ndarray:
        return self.slope * bmi + self.intercept

    def explain(self, bmi, predictions) -> Explained:
        """The intervals and cautions of these predictions (predictor/ml/cautions.py)."""
        return explain(bmi, predictions, interval=self.interval, limits=self.limits)


@dataclass(frozen=True)
class LoggedPredictions:
    """What one request was answered with, as logged: entry ``log_id`` of the prediction log."""

    model: ServingModel
    bmi: list[float]
    predictions: list[float]
    log_id: int

    @classmethod
    def from_log(cls, log: PredictionLog) -> LoggedPredictions:
        """The predictions a log entry records (its ``model_version`` loaded with it).

        The version's stored figures reproduce the intervals and cautions the answer carried.
        """
        model = ServingModel.from_version(log.model_version)
        return cls(model=model, bmi=log.bmi, predictions=log.predictions, log_id=log.pk)

    def explain(self) -> Explained:
        return self.model.explain(self.bmi, self.predictions)


_lock = threading.Lock()
_cached: ServingModel | None = None


def reset_cache() -> None:
    """Forget the cached model (tests; the serving path reloads by itself)."""
    global _cached
    with _lock:
        _cached = None


def _load() -> ServingModel:
    global _cached
    row = ModelVersion.objects.filter(status=ModelVersion.Status.ACTIVE).only(*ServingModel.COLUMNS).first()
    model = None if row is None else ServingModel.from_version(row)
    with _lock:
        _cached = model
    if model is None:
        raise NoActiveModel("No model version is active; train and promote one first.")
    return model


def active_model(*, refresh: bool = False) -> ServingModel:
    """The cached active model, loaded on first use (or when ``refresh`` is asked)."""
    model = _cached
    if model is None or refresh:
        model = _load()
    return model


def predict(bmis, *, channel: str) -> LoggedPredictions:
    """Predict for BMIs (kg/m², already validated) and log them as one entry, all or nothing.

    ``channel`` says where the request came from (:class:`PredictionLog.Channel`); a single
    prediction (``api``, ``web``) takes one round trip, a batch three (check and lock, COPY, commit).
    """
    values = np.asarray(bmis, dtype=np.float64).reshape(-1)
    if channel != PredictionLog.Channel.BATCH and values.size != 1:
        raise ValueError(f"A single prediction (channel {channel!r}) takes exactly one BMI, got {values.size}.")
    write = _log_batch if channel == PredictionLog.Channel.BATCH else _log_single
    model = active_model()
    for _ in range(_MAX_RELOADS):
        predictions = model.predict(values)
        log_id = write(model.version, channel, values, predictions)
        if log_id is not None:
            bmi_list, prediction_list = values.tolist(), predictions.tolist()
            return LoggedPredictions(model=model, bmi=bmi_list, predictions=prediction_list, log_id=log_id)
        model = active_model(refresh=True)  # promoted or rolled back since we cached it
    raise NoActiveModel("The active model kept changing; try again.")


# One round trip: the entry is written only if this worker's model is still the active one.
# Table names come from the models; every value is a parameter.
_PREPARE_SINGLE = (
    "PREPARE {name} (integer, varchar, double precision, double precision) AS "  # noqa: S608
    f"INSERT INTO {_LOG_TABLE} (model_version_id, channel, size, bmi, predictions) "
    "SELECT $1, $2, 1, ARRAY[$3], ARRAY[$4] "
    f"WHERE EXISTS (SELECT 1 FROM {_VERSION_TABLE} WHERE version = $1 AND status = 'active') RETURNING id"
)
# The name of the statement prepared on each open database session (keyed by the DB-API connection,
# which goes away with its session). A fresh name each time: preparing again after an error can
# never collide with a statement the session still holds.
_prepared: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_prepared_names = itertools.count(1)


def _log_single(version: int, channel: str, bmis: np.ndarray, predictions: np.ndarray) -> int | None:
    """Log one prediction with the INSERT prepared once per database session; None if not active.

    Parsing and planning the statement was about a third of PostgreSQL's CPU per prediction
    (measured: 210-225 µs of backend CPU per INSERT, 130-145 µs prepared).
    """
    with connection.cursor() as cursor:
        raw = connection.connection
        name = _prepared.get(raw)
        if name is None:
            name = f"predictor_log_single_{next(_prepared_names)}"
            cursor.execute(_PREPARE_SINGLE.format(name=name))
            _prepared[raw] = name
        try:
            params = [version, channel, float(bmis[0]), float(predictions[0])]
            cursor.execute(f"EXECUTE {name} (%s, %s, %s, %s)", params)
        except DBError:
            # Whatever went wrong (a pooler's DISCARD ALL, a lost session), prepare anew next time.
            _prepared.pop(raw, None)
            raise
        row = cursor.fetchone()
    if row is None:
        return None
    metrics.record_predictions(version, channel, 1)  # after the log write
    return row[0]


def _log_batch(version: int, channel: str, bmis: np.ndarray, predictions: np.ndarray) -> int | None:
    with transaction.atomic(), connection.cursor() as cursor:
        # FOR SHARE holds off a promotion until the batch commits, so the whole batch is logged
        # against a version that was active throughout; the entry's id comes with the same trip.
        cursor.execute(
            f"SELECT nextval(pg_get_serial_sequence('{_LOG_TABLE}', 'id')) FROM {_VERSION_TABLE} "  # noqa: S608
            "WHERE version = %s AND status = 'active' FOR SHARE",
            [version],
        )
        row = cursor.fetchone()
        if row is None:
            return None
        log_id = row[0]
        # One row in PostgreSQL's binary COPY format: the arrays are built by NumPy in one pass (no
        # float formatting) and reach the server bit for bit, with no float parsing on either side.
        # The raw psycopg2 cursor raises psycopg2 errors; wrap them as Django's, like every other query.
        with connection.wrap_database_errors:
            cursor.cursor.copy_expert(
                f"COPY {_LOG_TABLE} (id, model_version_id, channel, size, bmi, predictions) "
                "FROM STDIN WITH (FORMAT binary)",
                io.BytesIO(_binary_copy_row(log_id, version, channel, bmis, predictions)),
            )
        # Counted once the batch is committed, so a rolled-back batch is never counted.
        transaction.on_commit(partial(metrics.record_predictions, version, channel, int(bmis.size)))
    return log_id


# PostgreSQL's binary COPY: a signature, flags and header-extension length; per row the field
# count, then each field as a 4-byte length and its value in network byte order; -1 as the trailer.
_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + b"\x00" * 8
_COPY_TRAILER = b"\xff\xff"
_FLOAT8_OID = 701
_ELEMENT = np.dtype([("length", ">i4"), ("value", ">f8")])


def _float8_array(values: np.ndarray) -> bytes:
    # A one-dimensional float8[] without NULLs: dimensions, has-nulls flag, element type, then the
    # dimension's size and lower bound (1), then every element as its length (8) and its value.
    elements = np.empty(values.shape[0], dtype=_ELEMENT)
    elements["length"] = 8
    elements["value"] = values
    return struct.pack(">iiiii", 1, 0, _FLOAT8_OID, values.shape[0], 1) + elements.tobytes()


def _binary_copy_row(log_id: int, version: int, channel: str, bmis: np.ndarray, predictions: np.ndarray) -> bytes:
    channel_bytes = channel.encode()
    bmi_array, prediction_array = _float8_array(bmis), _float8_array(predictions)
    return b"".join(
        [
            _COPY_HEADER,
            struct.pack(">hiqii", 6, 8, log_id, 4, version),
            struct.pack(">i", len(channel_bytes)),
            channel_bytes,
            struct.pack(">ii", 4, bmis.shape[0]),
            struct.pack(">i", len(bmi_array)),
            bmi_array,
            struct.pack(">i", len(prediction_array)),
            prediction_array,
            _COPY_TRAILER,
        ]
    )
