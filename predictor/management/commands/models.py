from django.core.management.base import BaseCommand

from predictor.registry import selectors


class Command(BaseCommand):
    help = "List model versions with their status and metrics, newest first."

    def add_arguments(self, parser):
        parser.add_argument("--limit", type=int, default=50, help="Show at most this many versions (default 50).")

    def handle(self, *args, **options):
        versions = list(selectors.version_list()[: options["limit"]])
        if not versions:
            self.stdout.write("No model versions yet. Run 'manage.py train'.")
            return
        header = (
            f"{'version':>7}  {'status':<9}  {'R² test':>8}  {'MSE test':>9}  {'slope':>8}  "
            f"{'intercept':>10}  {'created':<16}  promoted"
        )
        self.stdout.write(header)
        for v in versions:
            promoted = v.promoted_at.strftime("%Y-%m-%d %H:%M") if v.promoted_at else "-"
            line = (
                f"{v.version:>7}  {v.status:<9}  {v.r2_test:>8.4f}  {v.mse_test:>9.1f}  {v.slope:>8.3f}  "
                f"{v.intercept:>10.3f}  {v.created_at:%Y-%m-%d %H:%M}  {promoted}"
            )
            self.stdout.write(self.style.SUCCESS(line) if v.status == v.Status.ACTIVE else line)
