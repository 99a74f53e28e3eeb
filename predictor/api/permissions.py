"""Who may call what: predictions and model reads are open by default, management needs staff with a permission.

The permissions are the admin's (``django.contrib.auth``): an operator who may promote in the admin
(``predictor.change_modelversion``) may train, promote and roll back here; reading the prediction log
or the monitoring figures needs ``predictor.view_predictionlog``. ``is_staff`` alone (a view-only
account, say) is not enough. Superusers have every permission.
"""

from django.conf import settings
from rest_framework.permissions import SAFE_METHODS, BasePermission

MANAGE_MODELS = "predictor.change_modelversion"
READ_PREDICTION_LOG = "predictor.view_predictionlog"
RECORD_OUTCOMES = "predictor.add_outcome"


class PredictionAccess(BasePermission):
    """Anyone, unless ``PREDICTOR_PREDICTIONS_REQUIRE_AUTH`` asks for an authenticated caller.

    Read at request time so that the setting can be changed by tests and in one place.
    """

    message = "Authentication is required to use this endpoint (PREDICTOR_PREDICTIONS_REQUIRE_AUTH is set)."

    def has_permission(self, request, view):
        if not settings.PREDICTOR_PREDICTIONS_REQUIRE_AUTH:
            return True
        return bool(request.user and request.user.is_authenticated)


def _staff_with(permission: str, request, check) -> bool:
    user = request.user
    if not (user and user.is_authenticated and user.is_active and user.is_staff):
        check.message = "Only staff users may use this endpoint."
        return False
    if not user.has_perm(permission):
        check.message = f"Your account is staff but lacks the '{permission}' permission this endpoint needs."
        return False
    return True


class ManageModels(BasePermission):
    """Staff with ``predictor.change_modelversion``: train, promote, roll back (as the admin's actions)."""

    message = "Only staff users may use this endpoint."

    def has_permission(self, request, view):
        return _staff_with(MANAGE_MODELS, request, self)


class ReadPredictionLog(BasePermission):
    """Staff with ``predictor.view_predictionlog``: the prediction log and the monitoring figures."""

    message = "Only staff users may use this endpoint."

    def has_permission(self, request, view):
        return _staff_with(READ_PREDICTION_LOG, request, self)


class RecordOutcomes(BasePermission):
    """Any signed-in account with ``predictor.add_outcome`` (clinicians need not be staff).

    Outcomes feed live quality and ``train --with-outcomes``, so not every account may write them.
    """

    message = "Authentication is required to use this endpoint."

    def has_permission(self, request, view):
        user = request.user
        if not (user and user.is_authenticated):
            return False
        if not user.has_perm(RECORD_OUTCOMES):
            self.message = f"Your account lacks the '{RECORD_OUTCOMES}' permission needed to record outcomes."
            return False
        return True


class IsStaff(BasePermission):
    """The project default (REST_FRAMEWORK) for a view that names no permission: closed but to staff
    with the log permission for reads and the registry one for writes, so a forgotten declaration
    never opens an endpoint to view-only staff, let alone anonymous callers.
    """

    message = "Only staff users may use this endpoint."

    def has_permission(self, request, view):
        permission = READ_PREDICTION_LOG if request.method in SAFE_METHODS else MANAGE_MODELS
        return _staff_with(permission, request, self)
