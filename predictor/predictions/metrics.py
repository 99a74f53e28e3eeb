"""The Prometheus counter of logged predictions; /metrics exposes it with the others."""

from prometheus_client import Counter

PREDICTIONS = Counter(
    "bmi_predictions_total",
    "Predictions served and logged, by model version and channel (api, batch, web).",
    ["model_version", "channel"],
)


def record_predictions(version: int, channel: str, count: int = 1) -> None:
    """Count ``count`` logged predictions; called by the serving path after the log write."""
    PREDICTIONS.labels(str(version), str(channel)).inc(count)
