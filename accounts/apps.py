from django.apps import AppConfig


class AccountsConfig(AppConfig):
    """Who may sign in, and with what: API tokens, login lockout, session lifetimes, private caching."""

    name = "accounts"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from accounts import schema, signals  # noqa: F401  (connects the receivers, registers the scheme)
