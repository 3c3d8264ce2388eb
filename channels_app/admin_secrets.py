"""The channel's webhook secret in the admin: reveal it or rotate it, each time audited.

The page is reached from the channel's change form ("Reveal or rotate…"); both
buttons POST (with CSRF) and the secret is shown once in the answer, which no cache
keeps. Only staff who may change the channel get the page.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils.cache import add_never_cache_headers

from pimsync.admin_utils import ReadOnlyAdmin

from .models import Channel, WebhookSecretEvent
from .webhook_secrets import webhook_secret_reveal, webhook_secret_rotate

HISTORY_ROWS = 20


class WebhookSecretEventInline(admin.TabularInline):
    model = WebhookSecretEvent
    extra = 0
    max_num = 0
    can_delete = False
    fields = ("at", "action", "username", "via")
    readonly_fields = fields
    verbose_name_plural = "Webhook secret: who saw or changed it"

    def get_queryset(self, request: HttpRequest) -> Any:
        return super().get_queryset(request).order_by("-at", "-id")

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(WebhookSecretEvent)
class WebhookSecretEventAdmin(ReadOnlyAdmin):
    list_display = ("at", "channel", "action", "username", "via")
    list_filter = ("action", "via", "channel")
    search_fields = ("username", "channel__name", "channel__slug")
    date_hierarchy = "at"


def webhook_secret_view(
    model_admin: admin.ModelAdmin, request: HttpRequest, object_id: str
) -> HttpResponse:
    """GET: what the buttons do and who saw the secret before. POST action=reveal|rotate:
    the secret (the new one after a rotation), recorded with the user."""
    channel = model_admin.get_object(request, object_id)
    if channel is None:
        raise Http404("No such channel")
    if not (request.user.is_staff and model_admin.has_change_permission(request, channel)):
        raise PermissionDenied
    secret, done = None, ""
    action = request.POST.get("action") if request.method == "POST" else None
    if action == "reveal":
        secret = webhook_secret_reveal(
            channel=channel, via=WebhookSecretEvent.Via.ADMIN, user=request.user
        )
        done = "revealed"
    elif action == "rotate":
        secret = webhook_secret_rotate(
            channel=channel, via=WebhookSecretEvent.Via.ADMIN, user=request.user
        )
        done = "rotated"
    context = {
        **model_admin.admin_site.each_context(request),
        "title": f"Webhook secret of {channel}",
        "opts": Channel._meta,
        "original": channel,
        "secret": secret,
        "done": done,
        "history": channel.webhook_secret_events.all()[:HISTORY_ROWS],
        "webhook_path": f"/webhooks/{channel.slug}/",
    }
    response = TemplateResponse(request, "admin/channels_app/channel/webhook_secret.html", context)
    add_never_cache_headers(response)
    return response
