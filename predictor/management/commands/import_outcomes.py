from django.core.management.base import BaseCommand, CommandError

from predictor.predictions import services


class Command(BaseCommand):
    help = (
        "Import observed outcomes from a CSV file with the header 'prediction_id,observed', and a "
        "'position' column (from 0) for items of batches (prediction_id is then the batch_id). All or "
        "nothing: every bad row (unknown or repeated prediction, outcome already recorded, value not a "
        "number or out of range) is reported and then nothing is imported."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "file",
            metavar="FILE",
            help="CSV file, UTF-8, header 'prediction_id,observed' or 'prediction_id,position,observed'.",
        )

    def handle(self, *args, **options):
        path = options["file"]
        try:
            with open(path, "rb") as handle:
                report = services.outcomes_import(source=handle)
        except OSError as exc:
            raise CommandError(f"Cannot read {path}: {exc.strerror}.") from exc
        except services.OutcomeImportError as exc:
            for error in exc.errors:
                self.stderr.write(error)
            raise CommandError(f"{path}: {exc}") from exc
        self.stdout.write(self.style.SUCCESS(f"Imported {report.imported} outcome(s) from {path}."))
