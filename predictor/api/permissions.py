"""DRF's side of :mod:`predictor.access`: predictions and model reads are open by default, management
needs staff with a permission."""

from rest_framework.permissions import SAFE_METHODS, BasePermission

from predictor.access import (
    MANAGE_MODELS,
    READ_PREDICTION_LOG,
    RECORD_OUTCOMES,
    account_refusal,
    predictions_open_to,
    staff_refusal,
)


class PredictionAccess(BasePermission):
    """Anyone, unless ``PREDICTOR_PREDICTIONS_REQUIRE_AUTH`` asks for an authenticated caller."""

    message = "Authentication is required to use this endpoint (PREDICTOR_PREDICTIONS_REQUIRE_AUTH is set)."

    def has_permission(self, request, view):
        return predictions_open_to(request.user)


class StaffWith(BasePermission):
    """Staff with ``permission``; the refusal names what is missing."""

    permission: str
    message = "Only staff users may use this endpoint."

    def has_permission(self, request, view):
        refusal = staff_refusal(request.user, self.required(request))
        if refusal is not None:
            self.message = refusal
        return refusal is None

    def required(self, request) -> str:
        return self.permission


class ManageModels(StaffWith):
    """Staff with ``predictor.change_modelversion``: train, promote, roll back (as the admin's actions)."""

    permission = MANAGE_MODELS


class ReadPredictionLog(StaffWith):
    """Staff with ``predictor.view_predictionlog``: the prediction log and the monitoring figures."""

    permission = READ_PREDICTION_LOG


class IsStaff(StaffWith):
    """The project default (REST_FRAMEWORK) for a view that names no permission: closed but to staff
    with the log permission for reads and the registry one for writes, so a forgotten declaration
    never opens an endpoint to view-only staff, let alone anonymous callers.
    """

    def required(self, request) -> str:
        return READ_PREDICTION_LOG if request.method in SAFE_METHODS else MANAGE_MODELS


class RecordOutcomes(BasePermission):
    """Any signed-in account with ``predictor.add_outcome`` (clinicians need not be staff).

    Outcomes feed live quality and ``train --with-outcomes``, so not every account may write them.
    The refusal is the outcome page's (:func:`predictor.access.account_refusal`).
    """

    message = "Authentication is required to use this endpoint."

    def has_permission(self, request, view):
        refusal = account_refusal(request.user, RECORD_OUTCOMES)
        if refusal is not None:
            self.message = refusal
        return refusal is None
