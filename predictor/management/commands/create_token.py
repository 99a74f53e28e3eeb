from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from predictor.accounts import services


class Command(BaseCommand):
    help = (
        "Create a named API token for a user and print its secret, once: only a digest is stored. "
        "Send it as 'Authorization: Token <secret>'. The secret alone goes to stdout, so a script can "
        "capture it (TOKEN=$(manage.py create_token ...)); the explanation goes to stderr."
    )

    def add_arguments(self, parser):
        parser.add_argument("username", help="The user the token acts as (its permissions apply).")
        parser.add_argument("--name", required=True, help="What the token is for, unique per user, e.g. 'ci-deploy'.")
        parser.add_argument(
            "--expires-in-days",
            type=int,
            default=settings.API_TOKEN_DAYS,
            help=f"Days until it expires (default {settings.API_TOKEN_DAYS}, at most {settings.API_TOKEN_MAX_DAYS}).",
        )

    def handle(self, *args, username, name, expires_in_days, **options):
        user_model = get_user_model()
        try:
            user = user_model.objects.get_by_natural_key(username)
        except user_model.DoesNotExist:
            raise CommandError(f"No user named {username!r}.") from None
        try:
            token, secret = services.api_token_create(user=user, name=name, expires_in_days=expires_in_days)
        except services.TokenRefused as exc:
            raise CommandError(str(exc)) from None
        self.stderr.write(
            self.style.SUCCESS(
                f"Token {token.name!r} for {username}, expires {token.expiry:%Y-%m-%d %H:%M} UTC. "
                "Store the secret below now: it cannot be shown again."
            )
        )
        self.stdout.write(secret)
