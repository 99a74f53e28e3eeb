from django.core.management.base import BaseCommand, CommandError

from predictor.management.commands._common import cli_actor
from predictor.registry import services


class Command(BaseCommand):
    help = "Return to the version that was active before the current one."

    def add_arguments(self, parser):
        parser.add_argument("--reason", default="", help="Why, for the audit trail.")

    def handle(self, *args, **options):
        try:
            version = services.model_version_rollback(actor_name=cli_actor(), reason=options["reason"])
        except services.RegistryError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(self.style.SUCCESS(f"Rolled back: version {version.version} is now active."))
