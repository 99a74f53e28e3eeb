from django.core.management import call_command
from django.core.management.base import BaseCommand

from predictor.registry import selectors


class Command(BaseCommand):
    help = "First-run set-up: train and promote a model on the diabetes data if no version is active."

    def handle(self, *args, **options):
        active = selectors.active_version()
        if active is not None:
            self.stdout.write(f"Version {active.version} is active; nothing to do.")
            return
        self.stdout.write("No active model version: training one on the diabetes data.")
        call_command("train", stdout=self.stdout, stderr=self.stderr)
