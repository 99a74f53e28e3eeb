"""Receivers: tokens die with a password change or a deactivation; staff sessions are short."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_logged_in
from django.db.models.signals import post_save, pre_save
from django.dispatch import receiver

from predictor.accounts import (
    lockout,  # noqa: F401  (connects the lockout metrics)
    services,
)
from predictor.accounts.models import ApiToken

User = get_user_model()


@receiver(pre_save, sender=User)
def _note_credential_change(sender, instance, update_fields=None, **kwargs):
    """Mark a save that changes the password or deactivates the user, for ``_revoke_tokens``."""
    instance._revoke_tokens_reason = None
    if instance.pk is None or (update_fields is not None and not {"password", "is_active"} & set(update_fields)):
        return  # a new user has no tokens; a last_login update (every sign-in) changes neither
    before = User.objects.filter(pk=instance.pk).values("password", "is_active").first()
    if before is None:
        return
    if before["password"] != instance.password:
        instance._revoke_tokens_reason = "password changed"
    elif before["is_active"] and not instance.is_active:
        instance._revoke_tokens_reason = "user deactivated"


@receiver(post_save, sender=User)
def _revoke_tokens(sender, instance, **kwargs):
    # In the same transaction as the save: a password change that rolls back keeps the tokens.
    reason = getattr(instance, "_revoke_tokens_reason", None)
    if reason:
        services.api_tokens_revoke(tokens=ApiToken.objects.filter(user=instance), reason=reason)


@receiver(user_logged_in)
def _shorten_staff_session(sender, request, user, **kwargs):
    """Staff sessions open the registry and the prediction log: they last ``STAFF_SESSION_HOURS``."""
    if user.is_staff and hasattr(request, "session"):
        request.session.set_expiry(settings.STAFF_SESSION_SECONDS)
