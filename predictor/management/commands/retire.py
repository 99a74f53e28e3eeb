from django.core.management.base import BaseCommand, CommandError

from predictor.management.commands._common import cli_actor
from predictor.registry import services


class Command(BaseCommand):
    help = "Withdraw a candidate version so that rollbacks skip it. The active version cannot be retired."

    def add_arguments(self, parser):
        parser.add_argument("version", type=int, help="Version number to retire.")
        parser.add_argument("--reason", default="", help="Why, for the audit trail.")

    def handle(self, *args, **options):
        try:
            version = services.model_version_retire(
                version=options["version"], actor_name=cli_actor(), reason=options["reason"]
            )
        except services.RegistryError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(self.style.SUCCESS(f"Version {version.version} retired."))
