from django.apps import AppConfig


class PredictorConfig(AppConfig):
    name = "predictor"
    verbose_name = "Diabetes progression predictor"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        # Connects the credential receivers (token revocation, staff session length, lockout
        # metrics) and registers the token scheme with drf-spectacular.
        from predictor.accounts import schema, signals  # noqa: F401
