"""Login lockout (django-axes): the client address it counts by, its refusal page, its metrics.

Axes counts failed sign-ins per username and per client address, on every form that calls
``django.contrib.auth.authenticate`` with the request (the admin's ``/admin/login/`` and the
site's ``/login/``); past ``LOGIN_FAILURE_LIMIT`` it refuses further attempts for
``LOGIN_LOCKOUT_MINUTES``, even with the right password.
"""

from __future__ import annotations

import logging
import math

from axes.helpers import get_cool_off
from axes.signals import user_locked_out
from django.conf import settings
from django.contrib.auth.signals import user_login_failed
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from prometheus_client import Counter
from rest_framework.throttling import BaseThrottle

logger = logging.getLogger(__name__)

LOGIN_FAILURES = Counter(
    "bmi_login_failures_total",
    "Refused password sign-ins (wrong password, unknown user, or locked out), by form (admin, site).",
    ["form"],
)
LOGIN_LOCKOUTS = Counter(
    "bmi_login_lockouts_total",
    "Sign-ins locked out after too many failures, by form (admin, site).",
    ["form"],
)


def client_ip(request: HttpRequest) -> str:
    """The client's address as API throttling reads it: X-Forwarded-For behind ``NUM_PROXIES`` proxies.

    One rule for both, so a client is the same client to the rate limits and to the lockout. With
    ``NUM_PROXIES=0`` the socket's address; never a client-chosen X-Forwarded-For entry.
    """
    return BaseThrottle().get_ident(request)


def _form(request: HttpRequest | None) -> str:
    return "admin" if request is not None and request.path.startswith("/admin/") else "site"


def lockout_response(request: HttpRequest, original_response=None, credentials=None) -> HttpResponse:
    """``AXES_LOCKOUT_CALLABLE``: the site's own page, 429, and when to try again."""
    cool_off = get_cool_off(request)
    seconds = math.ceil(cool_off.total_seconds())
    response = render(
        request,
        "predictor/locked_out.html",
        {"minutes": math.ceil(seconds / 60), "failure_limit": settings.AXES_FAILURE_LIMIT, "plain_nav": True},
        status=429,
    )
    response["Retry-After"] = str(seconds)
    return response


@receiver(user_login_failed)
def _count_failure(sender, credentials=None, request=None, **kwargs):
    LOGIN_FAILURES.labels(_form(request)).inc()


@receiver(user_locked_out)
def _count_lockout(sender, request=None, username=None, ip_address=None, **kwargs):
    form = _form(request)
    LOGIN_LOCKOUTS.labels(form).inc()
    logger.warning("sign-in locked out on the %s form: username=%r client=%s", form, username, ip_address)
