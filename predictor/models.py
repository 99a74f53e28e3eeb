"""Django loads an app's models from here; each table is defined beside the code that owns it."""

from predictor.accounts.models import ApiToken
from predictor.monitoring.models import DailyRollup, RollupWatermark
from predictor.predictions.models import Outcome, PredictionLog
from predictor.registry.models import ModelVersion, PromotionEvent, RegistryLock

__all__ = [
    "ApiToken",
    "DailyRollup",
    "ModelVersion",
    "Outcome",
    "PredictionLog",
    "PromotionEvent",
    "RegistryLock",
    "RollupWatermark",
]
