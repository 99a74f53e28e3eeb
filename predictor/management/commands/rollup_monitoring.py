from django.core.management.base import BaseCommand, CommandError

from predictor.monitoring import rollups


class Command(BaseCommand):
    help = (
        "Fold the prediction log's new entries and outcomes into the daily monitoring rollups. "
        "Schedule it (every few minutes): the monitoring page, its API, /metrics and check_model read "
        "the rollups plus what is not folded yet, so the less is left unfolded, the faster they are. "
        "Safe to run while serving and from several places at once; it never counts a row twice."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--wait",
            type=float,
            default=30.0,
            metavar="SECONDS",
            help="How long to wait for transactions still writing predictions or outcomes (default 30).",
        )
        parser.add_argument(
            "--chunk",
            type=int,
            default=rollups.CHUNK,
            help=f"Log entries and outcomes folded per transaction at most (default {rollups.CHUNK:,}).",
        )

    def handle(self, *args, **options):
        try:
            report = rollups.rollups_fold(wait_seconds=options["wait"], chunk=options["chunk"])
        except (rollups.RollupError, ValueError) as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(
            self.style.SUCCESS(
                f"Folded {report.entries} log entries and {report.outcomes} outcomes in {report.seconds:.2f} s; "
                f"rollups now reach log entry {report.log_id} and outcome {report.outcome_id}."
            )
        )
