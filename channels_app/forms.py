"""Channel form: secrets are write-only — shown masked, replaced only when typed."""

from __future__ import annotations

import json

from django import forms

from pimsync.crypto import mask

from .connectors.shopify_versions import api_version_problem
from .models import Channel, Platform


class ChannelAdminForm(forms.ModelForm):
    base_url = forms.URLField(
        assume_scheme="https",
        max_length=300,
        help_text="API root, e.g. https://shop.myshopify.com (the demo uses the local sandbox)",
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
        )

    def clean(self) -> dict:
        cleaned = super().clean() or {}
        config = cleaned.get("platform_config")
        if cleaned.get("platform") == Platform.SHOPIFY and isinstance(config, dict):
            problem = api_version_problem(config)
            if problem:
                self.add_error("platform_config", problem)
        return cleaned

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


def credentials_masked(credentials: dict) -> dict[str, str]:
    return {key: mask(str(value)) for key, value in sorted(credentials.items())}
