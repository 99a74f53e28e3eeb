from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from predictor.predictions import services


class Command(BaseCommand):
    help = (
        "Delete logged predictions, single ones and batches (and their recorded outcomes), older than "
        "the retention period. Run it daily from a scheduler."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--older-than",
            type=int,
            metavar="DAYS",
            default=settings.PREDICTOR_LOG_RETENTION_DAYS,
            help=f"Age in days beyond which logs are deleted (default PREDICTOR_LOG_RETENTION_DAYS, "
            f"now {settings.PREDICTOR_LOG_RETENTION_DAYS}).",
        )

    def handle(self, *args, **options):
        try:
            deleted = services.predictions_prune(older_than_days=options["older_than"])
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(
            self.style.SUCCESS(
                f"Deleted {deleted} log entries (single predictions and batches) "
                f"older than {options['older_than']} days."
            )
        )
