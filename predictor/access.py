"""Who may do what, for every door (API, pages, /metrics): one rule each, written once.

The permissions are the admin's (``django.contrib.auth``): an operator who may promote in the admin
(``predictor.change_modelversion``) may train, promote and roll back anywhere; reading the prediction
log or the monitoring figures needs ``predictor.view_predictionlog``; recording an observed outcome
needs ``predictor.add_outcome``. ``is_staff`` alone (a view-only account, say) is not enough.
Superusers have every permission.
"""

from __future__ import annotations

import hmac
import ipaddress
from functools import lru_cache

from django.conf import settings

MANAGE_MODELS = "predictor.change_modelversion"
READ_PREDICTION_LOG = "predictor.view_predictionlog"
RECORD_OUTCOMES = "predictor.add_outcome"


def predictions_open_to(user) -> bool:
    """Predictions are open to anyone unless ``PREDICTOR_PREDICTIONS_REQUIRE_AUTH`` asks for a signed-in user.

    Read at request time so that the setting can be changed by tests and in one place.
    """
    return not settings.PREDICTOR_PREDICTIONS_REQUIRE_AUTH or bool(user and user.is_authenticated)


def account_refusal(user, permission: str, *, door: str = "this endpoint") -> str | None:
    """Why a signed-in ``user`` (staff or not) may not use a ``door`` that needs ``permission``; None when they may."""
    if not (user and user.is_authenticated and user.is_active):
        return f"Sign in to use {door}."
    if not user.has_perm(permission):
        return f"Your account lacks the '{permission}' permission {door} needs."
    return None


def staff_refusal(user, permission: str, *, door: str = "this endpoint") -> str | None:
    """Why ``user`` may not use a staff ``door`` that needs ``permission``; None when they may."""
    if not (user and user.is_authenticated and user.is_active and user.is_staff):
        return f"Only staff users may use {door}."
    if not user.has_perm(permission):
        return f"Your account is staff but lacks the '{permission}' permission {door} needs."
    return None


@lru_cache(maxsize=8)
def _networks(allowed: tuple[str, ...]) -> tuple:
    # settings.py has validated every entry at start-up; strict=False accepts "10.0.0.7/24" as the /24.
    return tuple(ipaddress.ip_network(entry, strict=False) for entry in allowed)


def scraper_authorized(request) -> bool:
    """A Prometheus scraper, not a person: the bearer token (``PREDICTOR_METRICS_TOKEN``) or an allowed address."""
    token = settings.PREDICTOR_METRICS_TOKEN
    if token:
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode()):
            return True
    allowed = settings.PREDICTOR_METRICS_ALLOWED_IPS
    if allowed:
        try:
            address = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
        except ValueError:
            return False
        return any(address in network for network in _networks(tuple(allowed)))
    return False


def metrics_refusal(request) -> str | None:
    """Why ``request`` may not read /metrics (a scraper, or staff who may read the log); None when it may."""
    if scraper_authorized(request):
        return None
    return staff_refusal(getattr(request, "user", None), READ_PREDICTION_LOG, door="/metrics")
