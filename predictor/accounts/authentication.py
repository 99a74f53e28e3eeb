"""``Authorization: Token <secret>``, checked by knox against the stored digests."""

from __future__ import annotations

import datetime

from django.utils import timezone
from knox.auth import TokenAuthentication as KnoxTokenAuthentication

from predictor.accounts.models import ApiToken

# One write per token per minute at most, however many requests it makes.
LAST_USED_RESOLUTION = datetime.timedelta(minutes=1)


class TokenAuthentication(KnoxTokenAuthentication):
    """knox's authentication (expired tokens deleted, inactive users refused), recording the last use."""

    def validate_user(self, auth_token):
        user, token = super().validate_user(auth_token)
        now = timezone.now()
        if token.last_used is None or now - token.last_used >= LAST_USED_RESOLUTION:
            ApiToken.objects.filter(pk=token.pk).update(last_used=now)
            token.last_used = now
        return user, token
