from django.urls import path

from predictor.monitoring import api, views

app_name = "monitoring"

urlpatterns = [
    path("monitoring/", views.monitoring_page, name="page"),
    path("metrics", views.metrics_view, name="metrics"),
    path(
        "api/v1/predictions/<int:prediction_id>/outcome",
        api.OutcomeCreateApi.as_view(),
        name="outcome-create",
    ),
    path(
        "api/v1/batches/<uuid:batch_id>/predictions/<int:position>/outcome",
        api.BatchOutcomeCreateApi.as_view(),
        name="batch-outcome-create",
    ),
    path("api/v1/models/<int:version>/monitoring", api.ModelMonitoringApi.as_view(), name="model-monitoring"),
]
