"""Channel form: secrets are write-only — shown masked, replaced only when typed."""

from __future__ import annotations

import json

from django import forms

from inventory.models import Product
from pimsync.crypto import mask

from .connectors.registry import credentials_problems
from .models import Channel

PLATFORM_CONFIG_HELP = (
    "Non-secret settings, by platform (docs/channels.md): Shopify "
    '{"location_id": "gid://shopify/Location/1", "api_version": "2026-01"}; Amazon '
    "seller_id, marketplace_id, product_type; eBay marketplace_id; Magento "
    '{"store_code": "default", "price_store_id": 0, "msi": true, "source_codes": '
    '["default"], "stock_id": 1, "async_threshold": 500} (store_code: the store view in '
    "the API URL, whose prices are read; price_store_id: 0 = default scope, or a store "
    "view of the website when prices are per website; msi false: legacy single-source "
    "stock; source_codes: the MSI sources pimsync writes, the first holds the stock; "
    "stock_id: the stock whose salable quantity buyers see; async_threshold: pushes of "
    "more SKUs go through Magento's asynchronous bulk API, 0 = never; also "
    "sync_batch_size (20 when Magento's Web API input limits are on), read_page_size, "
    "requests_per_second and burst for a host's rate limit)."
)


class ChannelAdminForm(forms.ModelForm):
    base_url = forms.URLField(
        assume_scheme="https",
        max_length=300,
        help_text="API root, e.g. https://shop.myshopify.com (the demo uses the local sandbox)",
    )
    public_url = forms.URLField(
        assume_scheme="https",
        max_length=300,
        required=False,
        help_text=Channel._meta.get_field("public_url").help_text,
    )
    new_credentials = forms.CharField(
        label="Replace credentials",
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 70, "autocomplete": "off"}),
        help_text='JSON object, e.g. {"access_token": "…"}; eBay and Amazon: {"client_id": "…", '
        '"client_secret": "…", "refresh_token": "…"}, and pimsync refreshes the access token '
        "itself (docs/channels.md). Leave empty to keep the stored credentials. Stored "
        "encrypted; never shown again.",
    )
    new_webhook_secret = forms.CharField(
        label="Replace webhook secret",
        required=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="Leave empty to keep the stored secret.",
    )

    class Meta:
        model = Channel
        fields = (
            "name",
            "slug",
            "platform",
            "base_url",
            "currency",
            "is_enabled",
            "platform_config",
            *Channel.SYNC_SETTINGS,
            *Channel.RECONCILE_SETTINGS,
            *Channel.EDIT_SETTINGS,
            *Channel.IMPORT_SETTINGS,
        )
        widgets = {"platform_config": forms.Textarea(attrs={"rows": 6, "cols": 70})}
        help_texts = {"platform_config": PLATFORM_CONFIG_HELP}

    def clean_new_credentials(self) -> dict | None:
        raw = self.cleaned_data["new_credentials"].strip()
        if not raw:
            return None
        try:
            value = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise forms.ValidationError(f"Not valid JSON: {exc.msg} (line {exc.lineno})") from exc
        if not isinstance(value, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()
        ):
            raise forms.ValidationError(
                'Enter a JSON object of strings, e.g. {"access_token": "…"}'
            )
        return value

    def clean(self) -> dict:
        cleaned = super().clean() or {}
        platform = cleaned.get("platform") or self.instance.platform
        new = cleaned.get("new_credentials")
        credentials = new if new is not None else (self.instance.credentials or {})
        for problem in credentials_problems(platform, credentials):
            self.add_error("new_credentials", problem)
        return cleaned

    def save(self, commit: bool = True) -> Channel:
        channel = super().save(commit=False)
        if self.cleaned_data.get("new_credentials") is not None:
            channel.credentials = self.cleaned_data["new_credentials"]
        if self.cleaned_data.get("new_webhook_secret"):
            channel.webhook_secret = self.cleaned_data["new_webhook_secret"]
        if commit:
            channel.save()
            self.save_m2m()
        return channel


class LinkVariantsForm(forms.Form):
    product = forms.ModelChoiceField(
        queryset=Product.objects.all(),
        to_field_name="handle",
        widget=forms.TextInput,
        help_text="The pimsync product, by its handle",
    )
    product_ref = forms.CharField(
        max_length=100,
        label="Channel product",
        help_text="Magento: the SKU of the configurable product whose simple children are "
        "this product's variants (matched by SKU)",
    )


def credentials_masked(credentials: dict) -> dict[str, str]:
    return {key: mask(str(value)) for key, value in sorted(credentials.items())}
