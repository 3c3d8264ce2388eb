"""Small building blocks the admins share: status badges and confirmed actions."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils.html import format_html

TONES = ("ok", "warn", "bad", "info", "muted")


class AdminMedia:
    css = {"all": ["pimsync/admin.css"]}


class ReadOnlyAdmin(admin.ModelAdmin):
    """Pages to look at, never to add, change or delete through."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


def badge(text: str, tone: str = "info") -> str:
    if tone not in TONES:
        tone = "info"
    return format_html('<span class="ps-badge ps-{}">{}</span>', tone, text)


def stock_tone(available: int, low: int = 5) -> str:
    if available <= 0:
        return "bad"
    if available <= low:
        return "warn"
    return "ok"


def confirmed_action(
    *,
    description: str,
    permissions: tuple[str, ...] = ("change",),
    form_class: type[forms.Form] | None = None,
    explanation: str = "",
) -> Callable[[Callable[..., Any]], Any]:
    """Turn `fn(modeladmin, request, queryset, form) -> message` into an admin
    action that first shows what will happen and asks for confirmation (and the
    form's fields, if any); the returned message is shown after it runs (a
    returned response - e.g. a redirect to what the action started - is sent as is)."""

    def wrap(fn: Callable[..., Any]) -> Any:
        def action(
            modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet
        ) -> HttpResponse | None:
            form = (
                form_class(request.POST if "confirm" in request.POST else None)
                if form_class
                else None
            )
            if "confirm" in request.POST and (form is None or form.is_valid()):
                message = fn(modeladmin, request, queryset, form)
                if isinstance(message, HttpResponse):
                    return message
                modeladmin.message_user(request, message, messages.SUCCESS)
                return None
            context = {
                **modeladmin.admin_site.each_context(request),
                "title": description,
                "explanation": explanation,
                "objects": queryset[:50],
                "count": queryset.count(),
                "form": form,
                "action_name": fn.__name__,
                "opts": modeladmin.model._meta,
                "selected": request.POST.getlist(admin.helpers.ACTION_CHECKBOX_NAME),
                "select_across": request.POST.get("select_across", "0"),
            }
            return TemplateResponse(request, "admin/pimsync/action_confirm.html", context)

        action.__name__ = fn.__name__
        return admin.action(description=description, permissions=permissions)(action)

    return wrap
