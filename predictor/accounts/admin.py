"""API tokens in the admin: who holds which, until when, last used; never a secret or digest.

There is no "add" here: a token is created by ``manage.py create_token``, which prints the secret
once in the operator's terminal (an admin message would keep it in the session's database row).
Deleting a token revokes it.
"""

from __future__ import annotations

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from predictor.accounts import services
from predictor.accounts.models import ApiToken


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ("name", "user", "created", "expiry", "last_used")
    list_filter = ("user",)
    list_select_related = ("user",)
    search_fields = ("name", "user__username")
    # The digest and the stored prefix of the secret are left out of every page.
    fields = ("name", "user", "created", "expiry", "last_used")
    readonly_fields = fields
    actions = ["delete_selected"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def delete_model(self, request: HttpRequest, obj: ApiToken) -> None:
        services.api_tokens_revoke(tokens=ApiToken.objects.filter(pk=obj.pk), reason=f"by {request.user} in the admin")

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[ApiToken]) -> None:
        services.api_tokens_revoke(tokens=queryset, reason=f"by {request.user} in the admin")
