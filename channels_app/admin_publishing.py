"""The product admin with "Publish to channel…" and what each channel made of it
(added here so inventory never imports channels_app)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from inventory.admin import ProductAdmin as InventoryProductAdmin
from inventory.models import Product
from pimsync.admin_utils import confirmed_action

from .models import Channel, ChannelPublication
from .publishing import PublishError, products_publish


class PublishForm(forms.Form):
    channels = forms.ModelMultipleChoiceField(
        queryset=Channel.objects.filter(is_enabled=True).order_by("name"),
        widget=forms.CheckboxSelectMultiple,
        help_text="The product is created on each (or updated where pimsync published it "
        "before); its prices and quantities follow, later content edits are pushed.",
    )


class PublicationInline(admin.TabularInline):
    model = ChannelPublication
    extra = 0
    max_num = 0
    can_delete = False
    fields = (
        "channel",
        "status",
        "product_ref",
        "published_variants",
        "failed_variants",
        "message",
        "updated_at",
    )
    readonly_fields = fields
    verbose_name_plural = "Published on channels"

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


admin.site.unregister(Product)


@admin.register(Product)
class ProductAdmin(InventoryProductAdmin):
    inlines = [*InventoryProductAdmin.inlines, PublicationInline]
    actions = [*(InventoryProductAdmin.actions or []), "publish_action"]

    def has_publish_permission(self, request: HttpRequest) -> bool:
        """Publishing creates listings: who may add them may publish."""
        return request.user.has_perm("channels_app.add_channellisting")

    @confirmed_action(
        description="Publish to channel…",
        permissions=("publish",),
        form_class=PublishForm,
        explanation="Creates each selected product with its active variants (title, "
        "description, options, barcodes, prices, quantities, images by URL where the platform "
        "takes them) on the chosen channels and lists them; each channel is called now, one "
        "after another, through its rate limit.",
    )
    def publish_action(self, request: HttpRequest, queryset: QuerySet, form: PublishForm) -> str:
        outcomes = products_publish(
            channels=list(form.cleaned_data["channels"]), products=list(queryset), user=request.user
        )
        published = 0
        for outcome in outcomes:
            if isinstance(outcome, PublishError):
                self.message_user(request, str(outcome), messages.ERROR)
                continue
            text = f"{outcome.publication.product} on {outcome}"
            level = messages.SUCCESS if outcome.ok else messages.WARNING
            self.message_user(request, text, level)
            published += outcome.ok
        return f"Published {published} of {len(outcomes)} product-channel pair(s)."
