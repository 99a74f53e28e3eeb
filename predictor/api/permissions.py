"""Who may call what: predictions and model reads are open by default, management is staff only."""

from django.conf import settings
from rest_framework.permissions import BasePermission, IsAdminUser


class PredictionAccess(BasePermission):
    """Anyone, unless ``PREDICTOR_PREDICTIONS_REQUIRE_AUTH`` asks for an authenticated caller.

    Read at request time so that the setting can be changed by tests and in one place.
    """

    message = "Authentication is required to use this endpoint (PREDICTOR_PREDICTIONS_REQUIRE_AUTH is set)."

    def has_permission(self, request, view):
        if not settings.PREDICTOR_PREDICTIONS_REQUIRE_AUTH:
            return True
        return bool(request.user and request.user.is_authenticated)


class IsStaff(IsAdminUser):
    """Staff users only (``is_staff``), by token or session: training, promotion, the prediction log."""

    message = "Only staff users may use this endpoint."
