"""HTML pages (included at the site root): prediction, models, monitoring, outcomes, sign-in and sign-out."""

from django.contrib.auth import views as auth_views
from django.urls import path

from predictor.web import views

app_name = "predictor"

urlpatterns = [
    path("", views.predict, name="predict"),
    path("models/", views.model_list, name="model-list"),
    path("models/<int:version>/", views.model_detail, name="model-detail"),
    path("monitoring/", views.monitoring, name="monitoring"),
    path("outcomes/", views.outcome_record, name="outcome-record"),
    # Browsers ask for /favicon.ico on pages without a <link rel="icon"> (the admin, the API's JSON).
    path("favicon.ico", views.favicon, name="favicon"),
    # With PREDICTOR_PREDICTIONS_REQUIRE_AUTH the pages need a signed-in user, who need not be staff:
    # the admin's login form refuses non-staff accounts, so clinicians sign in here.
    path(
        "login/",
        auth_views.LoginView.as_view(template_name="predictor/login.html", next_page="predictor:predict"),
        name="login",
    ),
    # POST signs out (the header's button sends the CSRF token); GET shows a page with that button.
    path("logout/", views.SignOutView.as_view(), name="logout"),
]
