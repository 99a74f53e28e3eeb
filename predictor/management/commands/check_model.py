from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from predictor.monitoring import stats
from predictor.registry import selectors


class Command(BaseCommand):
    help = (
        "Check the active model version's live quality and input drift, for a scheduled job. Exits "
        "non-zero when no version is active, when its live R² is at or below the promotion threshold "
        "or its live coverage is clearly below the interval's level (one-sided binomial test; both "
        "given enough outcomes), or when the BMI drift PSI exceeds the alert level (given enough "
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
                "Judge live R² and coverage only with at least this many outcomes "
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
        parser.add_argument(
            "--coverage-alpha",
            type=float,
            default=settings.PREDICTOR_MONITOR_COVERAGE_ALPHA,
            help=(
                "Coverage alert when the one-sided binomial test of live coverage against the interval's "
                f"level gives p below this (default {settings.PREDICTOR_MONITOR_COVERAGE_ALPHA})."
            ),
        )

    def handle(self, *args, **options):
        threshold = (
            settings.PREDICTOR_PROMOTION_THRESHOLD if options["threshold"] is None else float(options["threshold"])
        )
        version = selectors.active_version()
        if version is None:
            raise CommandError("No model version is active: nothing is being served.")
        health = stats.version_health(
            version,
            threshold=threshold,
            min_outcomes=options["min_outcomes"],
            min_predictions=options["min_predictions"],
            max_psi=options["max_psi"],
            coverage_alpha=options["coverage_alpha"],
        )
        quality = health.quality
        self.stdout.write(
            f"Version {version.version}: {quality.n_predictions} predictions, {quality.n_outcomes} outcomes; "
            f"live R² {_fmt(quality.r2)}, live MAE {_fmt(quality.mae, 2)}, "
            f"live coverage {_percent(quality.coverage)} of a nominal {_percent(quality.interval_level)}; "
            f"drift PSI {_fmt(quality.psi)} ({quality.psi_reading})."
        )
        for note in health.not_judged:
            self.stdout.write(note)
        if not health.ok:
            raise CommandError(f"Version {version.version} needs attention: {'; '.join(health.problems)}.")
        self.stdout.write(self.style.SUCCESS(f"Version {version.version} is healthy."))


def _fmt(value, digits: int = 4) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _percent(value) -> str:
    return "n/a" if value is None else f"{value:.1%}"
