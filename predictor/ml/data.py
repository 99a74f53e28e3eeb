"""Training data: scikit-learn's diabetes data (BMI column) and users' own CSV files.

NumPy only at import time; scikit-learn is imported lazily by :func:`load_diabetes_bmi`, so the
serving path never pays for it.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from dataclasses import dataclass

import numpy as np

from predictor.ml.ranges import NOT_FINITE, OutOfRange, check_range

__all__ = [
    "BMI_RANGE",
    "DIABETES_PATIENTS",
    "DIABETES_SCALE",
    "DIABETES_SOURCE",
    "MIN_ROWS",
    "PROGRESSION_RANGE",
    "PROGRESSION_UNIT",
    "DataError",
    "Dataset",
    "fingerprint",
    "load_csv",
    "load_diabetes_bmi",
    "parse_csv",
    "parse_csv_integer",
    "parse_csv_number",
]

# Plausible adult BMI in kg/m². Values outside are data-entry errors (a height in cm, a weight),
# not patients. The serving layer reads its own range from settings; this is the loader's default.
BMI_RANGE = (10.0, 80.0)
# The bundled data, as the pages, the API's unit text and the docs describe them (one wording).
DIABETES_PATIENTS = 442
DIABETES_SCALE = (25, 346)  # lowest and highest progression score among its patients
DIABETES_SOURCE = (
    f"the diabetes study bundled with scikit-learn ({DIABETES_PATIENTS} patients; Efron, Hastie, Johnstone "
    "and Tibshirani, “Least Angle Regression”, Annals of Statistics, 2004)"
)
PROGRESSION_UNIT = (
    "disease progression score one year after baseline (the diabetes study's scale: "
    f"{DIABETES_SCALE[0]} to {DIABETES_SCALE[1]} among its {DIABETES_PATIENTS} patients; higher means more progression)"
)
# Plausible progression one year after baseline (the diabetes data spans 25 to 346). A value far
# outside is a unit or entry error, and one near 1e308 overflows the fit's sums into NaN metrics.
# The service reads its own range from settings (PREDICTOR_OUTCOME_MIN/MAX); this is the default.
PROGRESSION_RANGE = (0.0, 1000.0)
# A cell quoted in an error message is cut to this many characters: an unclosed quote can make
# one cell of the rest of the file, and the message must not echo a patient file back.
_QUOTED_CELL_MAX = 40
# What a number in a CSV cell may look like. Python's float() and int() also take "2_5" (25), which
# in a clinical file is a typo, not a number; NaN and infinity pass here to be refused by name.
# ASCII digits only: float() also reads "٢٥" and "２５".
_NUMBER = re.compile(
    r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|[+-]?(?:nan|inf|infinity)", re.IGNORECASE
)
_INTEGER = re.compile(r"[+-]?[0-9]+")


def parse_csv_number(text: str) -> float:
    """A CSV cell as a float: plain decimal or scientific notation only; ``ValueError`` otherwise."""
    if not _NUMBER.fullmatch(text.strip()):
        raise ValueError(f"not a number: {text!r}")
    return float(text)


def parse_csv_integer(text: str) -> int:
    """A CSV cell as an int: digits with an optional sign only; ``ValueError`` otherwise."""
    if not _INTEGER.fullmatch(text.strip()):
        raise ValueError(f"not an integer: {text!r}")
    return int(text)


# Fewer rows cannot give a meaningful hold-out R²: with a 20 % split that is 2 test rows.
MIN_ROWS = 10
DIABETES_TEST_ROWS = 20
# The bundled, published data set: the only one whose rows may be shown on the pages.
DIABETES_DATASET_NAME = "sklearn-diabetes-bmi"
CSV_COLUMNS = ("bmi", "progression")


class DataError(ValueError):
    """A training file or array is unusable; the message names the row and column."""


@dataclass(frozen=True)
class Dataset:
    """A train/test split of (BMI in kg/m², progression) pairs and where it came from."""

    name: str
    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.X_train, self.y_train, self.X_test, self.y_test)

    @property
    def n_train(self) -> int:
        return int(self.X_train.shape[0])

    @property
    def n_test(self) -> int:
        return int(self.X_test.shape[0])

    def with_extra_training_rows(self, X, y, *, name: str) -> Dataset:
        """The same split with more rows appended to the training part (the test part is kept)."""
        X = np.asarray(X, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        return Dataset(
            name=name,
            X_train=np.concatenate([self.X_train, X]),
            y_train=np.concatenate([self.y_train, y]),
            X_test=self.X_test,
            y_test=self.y_test,
        )


def fingerprint(X_train, y_train, X_test, y_test) -> str:
    """SHA-256 of the exact training and test data (values, order and split).

    Each array is hashed as little-endian float64 behind a label and its length, so moving a row
    from train to test, or reordering rows, changes the fingerprint.
    """
    digest = hashlib.sha256()
    for label, array in (("X_train", X_train), ("y_train", y_train), ("X_test", X_test), ("y_test", y_test)):
        values = np.ascontiguousarray(array, dtype="<f8")
        digest.update(f"{label}:{values.shape[0]}:".encode())
        digest.update(values.tobytes())
    return digest.hexdigest()


def load_diabetes_bmi() -> Dataset:
    """scikit-learn's diabetes data: BMI in kg/m² and progression after one year.

    The last 20 rows are held out, as in the original benchmark, so results compare with it.
    """
    from sklearn.datasets import load_diabetes  # training-only dependency; keep it off serving

    data = load_diabetes(scaled=False)
    bmi_column = data.feature_names.index("bmi")
    X = np.asarray(data.data[:, bmi_column], dtype=np.float64)
    y = np.asarray(data.target, dtype=np.float64)
    n_test = DIABETES_TEST_ROWS
    return Dataset(
        name=DIABETES_DATASET_NAME,
        X_train=X[:-n_test],
        y_train=y[:-n_test],
        X_test=X[-n_test:],
        y_test=y[-n_test:],
    )


def parse_csv(
    source,
    *,
    bmi_range: tuple[float, float] = BMI_RANGE,
    progression_range: tuple[float, float] = PROGRESSION_RANGE,
) -> tuple[np.ndarray, np.ndarray]:
    """Read ``bmi,progression`` rows from a path, bytes, text or file object.

    Raises :class:`DataError` naming the first bad row (1-based, the header being row 1) and the
    column. Extra columns are ignored; row order does not matter.
    """
    text = _read_text(source)
    reader = csv.reader(io.StringIO(text))
    try:
        header = next(reader)
    except StopIteration:
        raise DataError("The CSV file is empty: expected a header row 'bmi,progression'.") from None
    except csv.Error as exc:
        raise DataError(f"Row 1: not valid CSV ({exc}).") from None
    names = [h.strip().lstrip("\ufeff").lower() for h in header]
    repeated = [c for c in CSV_COLUMNS if names.count(c) > 1]
    if repeated:
        raise DataError(f"Row 1 (header): column {repeated[0]!r} appears more than once; which one is meant?")
    missing = [c for c in CSV_COLUMNS if c not in names]
    if missing:
        raise DataError(
            f"Row 1 (header): missing column {', '.join(repr(m) for m in missing)}; "
            f"expected a header 'bmi,progression', got {','.join(header)!r}."
        )
    index = {c: names.index(c) for c in CSV_COLUMNS}
    ranges = {"bmi": bmi_range, "progression": progression_range}
    units = {"bmi": " kg/m²", "progression": ""}
    bmis: list[float] = []
    targets: list[float] = []
    row_number = 1
    try:
        for row_number, row in enumerate(reader, start=2):
            if not row or all(not cell.strip() for cell in row):
                continue  # blank lines (often a trailing newline) carry no data
            values = {}
            for column, position in index.items():
                if position >= len(row) or not row[position].strip():
                    raise DataError(f"Row {row_number}, column '{column}': value is missing.")
                raw = row[position].strip()
                try:
                    value = parse_csv_number(raw)
                except ValueError:
                    raise DataError(f"Row {row_number}, column '{column}': {_quoted(raw)} is not a number.") from None
                low, high = ranges[column]
                try:
                    values[column] = check_range(value, low=low, high=high)
                except OutOfRange as exc:
                    if exc.code == NOT_FINITE:
                        reason = f"{_quoted(raw)} is not a finite number."
                    else:
                        reason = f"{value:g}{units[column]} is outside the plausible range {low:g} to {high:g}."
                    raise DataError(f"Row {row_number}, column '{column}': {reason}") from None
            bmis.append(values["bmi"])
            targets.append(values["progression"])
    except csv.Error as exc:
        raise DataError(f"Row {row_number + 1}: not valid CSV ({exc}).") from None
    if len(bmis) < MIN_ROWS:
        raise DataError(f"The CSV file has {len(bmis)} data rows; at least {MIN_ROWS} are needed.")
    X = np.array(bmis, dtype=np.float64)
    if np.all(X[0] == X):
        raise DataError("Column 'bmi': every row has the same value, so no slope can be fitted.")
    return X, np.array(targets, dtype=np.float64)


def _quoted(cell: str) -> str:
    return repr(cell if len(cell) <= _QUOTED_CELL_MAX else cell[:_QUOTED_CELL_MAX] + "…")


def load_csv(
    source,
    *,
    test_fraction: float = 0.2,
    random_state: int | None = 0,
    bmi_range: tuple[float, float] = BMI_RANGE,
    progression_range: tuple[float, float] = PROGRESSION_RANGE,
    name: str | None = None,
) -> Dataset:
    """A user's ``bmi,progression`` CSV, split at random (seeded) into training and test rows."""
    if not 0 < test_fraction < 1:
        raise DataError(f"test_fraction must be between 0 and 1 (exclusive), got {test_fraction!r}.")
    X, y = parse_csv(source, bmi_range=bmi_range, progression_range=progression_range)
    n = X.shape[0]
    n_test = max(2, round(n * test_fraction))
    if n - n_test < 2:
        raise DataError(
            f"test_fraction={test_fraction} leaves {n - n_test} training rows out of {n}; at least 2 are needed."
        )
    order = np.random.default_rng(random_state).permutation(n)
    test, train = order[:n_test], order[n_test:]
    if np.all(X[train] == X[train][0]):
        raise DataError("The training rows all have the same BMI, so no slope can be fitted.")
    return Dataset(
        name=name or "csv",
        X_train=X[train],
        y_train=y[train],
        X_test=X[test],
        y_test=y[test],
    )


def _read_text(source) -> str:
    if hasattr(source, "read"):
        content = source.read()
    elif isinstance(source, (bytes, bytearray)):
        content = bytes(source)
    else:
        try:
            with open(source, "rb") as handle:
                content = handle.read()
        except OSError as exc:
            raise DataError(f"Cannot read {source}: {exc.strerror}.") from None
    if isinstance(content, (bytes, bytearray)):
        try:
            return bytes(content).decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise DataError(f"The CSV file is not UTF-8 text (byte {exc.start}).") from None
    return content
