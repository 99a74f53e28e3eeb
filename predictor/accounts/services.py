"""Writes for API tokens: create one (its secret returned once), revoke them."""

from __future__ import annotations

import datetime
import logging

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.db.models import QuerySet

from predictor.accounts.models import ApiToken

logger = logging.getLogger(__name__)


class TokenRefused(ValueError):
    """The token cannot be created as asked; the message says why."""


def api_token_create(*, user: AbstractBaseUser, name: str, expires_in_days: int) -> tuple[ApiToken, str]:
    """A new token for ``user``, and its secret: the only time the secret exists outside the client."""
    name = name.strip()
    if not name:
        raise TokenRefused("A token needs a name saying what it is for.")
    longest = settings.API_TOKEN_MAX_DAYS
    if not 1 <= expires_in_days <= longest:
        raise TokenRefused(f"A token expires in 1 to {longest} days, not {expires_in_days}.")
    if not user.is_active:
        raise TokenRefused(f"User {user.get_username()!r} is inactive; an inactive user's tokens are refused.")
    try:
        with transaction.atomic():
            token, secret = ApiToken.objects.create(
                user=user, expiry=datetime.timedelta(days=expires_in_days), name=name
            )
    except IntegrityError:
        raise TokenRefused(f"User {user.get_username()!r} already has a token named {name!r}.") from None
    logger.info("API token %r created for %s, expires %s", name, user.get_username(), token.expiry.isoformat())
    return token, secret


def api_tokens_revoke(*, tokens: QuerySet[ApiToken], reason: str) -> int:
    """Delete ``tokens``: a revoked token is gone, so nothing can bring it back."""
    described = [str(token) for token in tokens]
    count, _ = tokens.delete()
    if count:
        logger.info("API tokens revoked (%s): %s", reason, ", ".join(described))
    return count
