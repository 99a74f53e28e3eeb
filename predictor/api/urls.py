from django.urls import path, re_path
from django.views.generic import RedirectView

from predictor.api import views
from predictor.api.exceptions import api_path_not_found

app_name = "api"

urlpatterns = [
    path("api/v1/predict", views.PredictView.as_view(), name="predict"),
    path("api/v1/predict/batch", views.PredictBatchView.as_view(), name="predict-batch"),
    path("api/v1/models", views.ModelListView.as_view(), name="model-list"),
    path("api/v1/models/active", views.ActiveModelView.as_view(), name="model-active"),
    path("api/v1/models/train", views.TrainView.as_view(), name="model-train"),
    path("api/v1/models/rollback", views.RollbackView.as_view(), name="model-rollback"),
    path("api/v1/models/<int:version>", views.ModelDetailView.as_view(), name="model-detail"),
    path("api/v1/models/<int:version>/promote", views.PromoteView.as_view(), name="model-promote"),
    path("api/v1/models/<int:version>/monitoring", views.ModelMonitoringView.as_view(), name="model-monitoring"),
    path("api/v1/predictions", views.PredictionListView.as_view(), name="prediction-list"),
    path("api/v1/predictions/<int:prediction_id>", views.PredictionDetailView.as_view(), name="prediction-detail"),
    path("api/v1/predictions/<int:prediction_id>/outcome", views.OutcomeCreateView.as_view(), name="outcome-create"),
    path("api/schema/", views.SchemaView.as_view(), name="schema"),
    path("docs", views.SwaggerView.as_view(url_name="api:schema"), name="docs"),
    # The pages' URLs end in a slash, so people type this one with one too.
    path("docs/", RedirectView.as_view(pattern_name="api:docs"), name="docs-slash"),
    # Last: any other /api/ path is the API's JSON 404, with DEBUG on too (see api_path_not_found).
    re_path(r"^api/", api_path_not_found, name="not-found"),
]
