from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    # REST API under /api/v1/, the OpenAPI schema at /api/schema/ and Swagger UI at /docs.
    path("", include("predictor.api.urls")),
    # Prometheus metrics (/metrics).
    path("", include("predictor.monitoring.urls")),
    # HTML pages: the prediction form, the model pages, monitoring, outcomes, sign-in and sign-out.
    path("", include("predictor.web.urls")),
]

# Under /api/ these answer with the API's JSON error body; elsewhere with Django's pages (404.html).
handler400 = "predictor.api.exceptions.bad_request"
handler404 = "predictor.api.exceptions.not_found"
handler500 = "predictor.api.exceptions.server_error"
