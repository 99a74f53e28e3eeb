"""``Cache-Control: no-store`` on every personal response.

Personal means: answered to a request that carries credentials (the session cookie, or an
``Authorization`` header: an API token, the metrics bearer token), whatever the page, so neither a
shared cache nor the browser's disk keeps staff data or a user's records. Carrying them is the
test, not being signed in with them: it needs no session lookup (which fails while the database
is down, and would add "Vary: Cookie" to every answer), and a stale cookie costs only a cache miss.
A public answer to an anonymous caller (a prediction, the form) is left as the view made it. Pages
that are personal without a sign-in (the form's result, shown by a signed cookie) call
``mark_personal``. The admin's own views already send no-store (Django's ``never_cache``).
"""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils.cache import patch_cache_control


def mark_personal(response: HttpResponse) -> HttpResponse:
    patch_cache_control(response, private=True, no_store=True)
    return response


class PersonalNoStoreMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if settings.SESSION_COOKIE_NAME in request.COOKIES or "HTTP_AUTHORIZATION" in request.META:
            mark_personal(response)
        return response
