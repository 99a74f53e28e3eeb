from django.urls import path

from predictor.monitoring import views

app_name = "monitoring"

urlpatterns = [
    path("metrics", views.metrics_view, name="metrics"),
]
