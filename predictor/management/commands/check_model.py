from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from predictor import selectors
from predictor.monitoring import stats


class Command(BaseCommand):
    help = (
        "Check the active model version's live quality and input drift, for a scheduled job. Exits "
        "non-zero when no version is active, when its live R² is at or below the promotion threshold "
        "(given enough outcomes), or when the BMI drift PSI exceeds the alert level (given enough "
        "served predictions); prints a summary and exits 0 otherwise."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--threshold",
            type=float,
            default=None,
            help=f"Live R² must exceed this (default {settings.PREDICTOR_PROMOTION_THRESHOLD}, the promotion gate).",
        )
        parser.add_argument(
            "--min-outcomes",
            type=int,
            default=settings.PREDICTOR_MONITOR_MIN_OUTCOMES,
            help=(
                "Judge live R² only with at least this many outcomes "
                f"(default {settings.PREDICTOR_MONITOR_MIN_OUTCOMES})."
            ),
        )
        parser.add_argument(
            "--min-predictions",
            type=int,
            default=settings.PREDICTOR_MONITOR_MIN_PREDICTIONS,
            help=(
                "Judge drift only with at least this many served predictions "
                f"(default {settings.PREDICTOR_MONITOR_MIN_PREDICTIONS})."
            ),
        )
        parser.add_argument(
            "--max-psi",
            type=float,
            default=settings.PREDICTOR_MONITOR_PSI_ALERT,
            help=f"Drift alert above this PSI (default {settings.PREDICTOR_MONITOR_PSI_ALERT}).",
        )

    def handle(self, *args, **options):
        threshold = (
            settings.PREDICTOR_PROMOTION_THRESHOLD if options["threshold"] is None else float(options["threshold"])
        )
        version = selectors.active_version()
        if version is None:
            raise CommandError("No model version is active: nothing is being served.")
        quality = stats.version_quality(version)
        self.stdout.write(
            f"Version {version.version}: {quality.n_predictions} predictions, {quality.n_outcomes} outcomes; "
            f"live R² {_fmt(quality.r2)}, live MAE {_fmt(quality.mae, 2)}; "
            f"drift PSI {_fmt(quality.psi)} ({quality.psi_reading})."
        )
        problems = []
        if quality.n_outcomes < options["min_outcomes"]:
            self.stdout.write(
                f"Live R² not judged: {quality.n_outcomes} outcomes, at least {options['min_outcomes']} needed."
            )
        elif quality.r2 is None or not quality.r2 > threshold:
            problems.append(f"live R² {_fmt(quality.r2)} is not above the threshold {threshold:g}")
        if quality.n_predictions < options["min_predictions"]:
            self.stdout.write(
                f"Drift not judged: {quality.n_predictions} predictions, at least {options['min_predictions']} needed."
            )
        elif quality.psi is not None and quality.psi > options["max_psi"]:
            problems.append(f"BMI drift PSI {quality.psi:.4f} exceeds {options['max_psi']:g}")
        if problems:
            raise CommandError(f"Version {version.version} needs attention: {'; '.join(problems)}.")
        self.stdout.write(self.style.SUCCESS(f"Version {version.version} is healthy."))


def _fmt(value, digits: int = 4) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"
