from django.apps import AppConfig


class PredictorConfig(AppConfig):
    name = "predictor"
    verbose_name = "Diabetes progression predictor"
    default_auto_field = "django.db.models.BigAutoField"
