"""HTML pages: the prediction form and the model registry pages (included at the site root)."""

from django.urls import path

from predictor import views

app_name = "predictor"

urlpatterns = [
    path("", views.predict, name="predict"),
    path("models/", views.model_list, name="model-list"),
    path("models/<int:version>/", views.model_detail, name="model-detail"),
]
