"""API tokens: knox's hashed tokens, with a name and the time of their last use.

knox stores a SHA-512 digest of each token and the first characters of it (``token_key``, to
find candidates without hashing every row), never the token itself, so a database dump or an
admin page cannot be replayed as a credential. The model is knox's own abstract one
(``KNOX_TOKEN_MODEL``), so knox's authentication and expiry handling apply unchanged.
"""

from django.db import models
from knox.models import AbstractAuthToken
from knox.settings import CONSTANTS


class ApiToken(AbstractAuthToken):
    # An ordinary key: knox makes the digest the primary key, which would put it in every admin URL.
    id = models.BigAutoField(primary_key=True)
    digest = models.CharField(max_length=CONSTANTS.DIGEST_LENGTH, unique=True, editable=False)
    token_key = models.CharField(
        max_length=CONSTANTS.MAXIMUM_TOKEN_PREFIX_LENGTH + CONSTANTS.TOKEN_KEY_LENGTH, db_index=True, editable=False
    )
    # Every token expires: the service always sets it, and the database refuses one that does not.
    expiry = models.DateTimeField(help_text="When it stops authenticating (knox deletes it at its next use).")
    name = models.CharField(max_length=100, help_text="What the token is for, e.g. 'ci-deploy' or 'outcome import'.")
    last_used = models.DateTimeField(
        null=True, blank=True, help_text="Last request it authenticated (updated at most once a minute)."
    )

    class Meta:
        verbose_name = "API token"
        ordering = ["-created"]
        constraints = [
            # Operators tell a user's tokens apart by name, in the admin and in `create_token`'s output.
            models.UniqueConstraint(fields=["user", "name"], name="predictor_apitoken_name_once"),
        ]

    def __str__(self) -> str:
        # Never the digest: this is what the admin shows in titles, breadcrumbs and delete pages.
        return f"{self.name} ({self.user})"
