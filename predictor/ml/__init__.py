"""The estimator and its data: NumPy only, no Django imports, usable on its own."""

from predictor.ml.data import DataError, Dataset, load_csv, load_diabetes_bmi
from predictor.ml.sgd import ConvergenceWarning, NotFittedError, SGDLinearRegression

__all__ = [
    "ConvergenceWarning",
    "DataError",
    "Dataset",
    "NotFittedError",
    "SGDLinearRegression",
    "load_csv",
    "load_diabetes_bmi",
]
