"""``Cache-Control: no-store`` on every personal response.

Personal means: answered to a signed-in user (a session, or an API token), whatever the page, so
neither a shared cache nor the browser's disk keeps staff data or a user's records. A public
answer to an anonymous caller (a prediction, the form) is left as the view made it. Pages that are
personal without a sign-in (the form's result, shown by a signed cookie) call ``mark_personal``.
"""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils.cache import patch_cache_control


def mark_personal(response: HttpResponse) -> HttpResponse:
    patch_cache_control(response, private=True, no_store=True)
    return response


class PersonalNoStoreMiddleware:
    """After AuthenticationMiddleware. DRF's token authentication sets ``request.user`` here too."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        # Only a request with credentials can be signed in. Looking at request.user otherwise would
        # read the session and add "Vary: Cookie" to every anonymous answer.
        if (
            settings.SESSION_COOKIE_NAME in request.COOKIES or "HTTP_AUTHORIZATION" in request.META
        ) and request.user.is_authenticated:
            mark_personal(response)
        return response
