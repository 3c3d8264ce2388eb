"""Staff reveal or rotate a channel's webhook secret (admin page, `manage.py
webhook_secret`); every reveal, rotation and replacement is recorded: who, when, which
channel, how."""

from __future__ import annotations

from io import StringIO

import pytest
from django.contrib.auth.models import Permission
from django.core.management import CommandError, call_command
from django.urls import reverse

from channels_app.models import Channel, WebhookSecretEvent
from tests.support.admin_forms import channel_form_data
from tests.support.webhooks import shopify_order, sign

pytestmark = pytest.mark.django_db


def secret_page(channel: Channel) -> str:
    return reverse("admin:channels_app_channel_webhook_secret", args=[channel.pk])


def events(channel: Channel) -> list[tuple[str, str, str]]:
    return list(
        WebhookSecretEvent.objects.filter(channel=channel)
        .order_by("id")
        .values_list("action", "via", "username")
    )


def deliver(client, channel: Channel, secret: str) -> int:
    body = shopify_order()
    response = client.post(
        f"/webhooks/{channel.slug}/",
        data=body,
        content_type="application/json",
        headers={
            "X-Shopify-Topic": "orders/create",
            "X-Shopify-Hmac-Sha256": sign(body, secret),
            "X-Shopify-Webhook-Id": f"delivery-{secret[:6]}",
        },
    )
    return response.status_code


def test_the_page_shows_no_secret_until_asked_and_links_from_the_channel(
    admin_client, channel_factory
) -> None:
    channel = channel_factory(webhook_secret="whsec_demo_1234567890")

    page = admin_client.get(secret_page(channel))
    change = admin_client.get(reverse("admin:channels_app_channel_change", args=[channel.pk]))

    assert page.status_code == 200
    assert "whsec_demo_1234567890" not in page.content.decode()
    assert "Nobody yet." in page.content.decode()
    assert secret_page(channel) in change.content.decode()
    assert "whsec_demo_1234567890" not in change.content.decode()
    assert events(channel) == []


def test_revealing_shows_the_secret_uncached_and_records_who(
    admin_client, admin_user, channel_factory
) -> None:
    channel = channel_factory(webhook_secret="whsec_demo_1234567890")

    response = admin_client.post(secret_page(channel), {"action": "reveal"})

    assert response.status_code == 200
    assert '<code class="ps-secret" id="webhook-secret">whsec_demo_1234567890</code>' in (
        response.content.decode()
    )
    assert "no-store" in response["Cache-Control"]
    assert events(channel) == [("revealed", "admin", admin_user.username)]
    event = WebhookSecretEvent.objects.get(channel=channel)
    assert event.user == admin_user
    assert event.at is not None


def test_rotating_makes_a_new_secret_that_signs_deliveries_and_the_old_one_is_refused(
    admin_client, client, admin_user, channel_factory
) -> None:
    channel = channel_factory(webhook_secret="whsec_old_secret_value")

    response = admin_client.post(secret_page(channel), {"action": "rotate"})

    channel.refresh_from_db()
    new = channel.webhook_secret
    assert new != "whsec_old_secret_value"
    assert len(new) >= 40
    assert new in response.content.decode()
    assert events(channel) == [("rotated", "admin", admin_user.username)]
    assert deliver(client, channel, "whsec_old_secret_value") == 401
    assert deliver(client, channel, new) == 200


def test_staff_who_may_not_change_channels_get_403_and_nothing_is_recorded(
    client, django_user_model, channel_factory
) -> None:
    channel = channel_factory()
    viewer = django_user_model.objects.create_user("viewer", password="pw-Very-Long-1")
    viewer.is_staff = True
    viewer.save()
    viewer.user_permissions.add(Permission.objects.get(codename="view_channel"))
    client.force_login(viewer)

    response = client.post(secret_page(channel), {"action": "reveal"})

    assert response.status_code == 403
    assert events(channel) == []


def test_the_audit_is_listed_in_the_admin_read_only(admin_client, channel_factory) -> None:
    channel = channel_factory()
    admin_client.post(secret_page(channel), {"action": "reveal"})

    listing = admin_client.get(reverse("admin:channels_app_webhooksecretevent_changelist"))
    add = admin_client.get(reverse("admin:channels_app_webhooksecretevent_add"))
    page = admin_client.get(secret_page(channel)).content.decode()

    assert listing.status_code == 200
    assert channel.name in listing.content.decode()
    assert add.status_code == 403
    assert "Revealed" in page
    assert "boss" in page


def test_the_command_prints_the_secret_rotates_it_and_is_recorded(channel_factory) -> None:
    channel = channel_factory(slug="shopify", webhook_secret="whsec_cli_secret")
    out = StringIO()

    call_command("webhook_secret", "shopify", stdout=out)
    call_command("webhook_secret", "shopify", "--rotate", stdout=out)

    printed = out.getvalue().split()
    channel.refresh_from_db()
    assert printed == ["whsec_cli_secret", channel.webhook_secret]
    assert events(channel) == [("revealed", "command", ""), ("rotated", "command", "")]
    with pytest.raises(CommandError, match="No channel 'nope' \\(channels: shopify\\)"):
        call_command("webhook_secret", "nope")


def test_a_secret_typed_in_the_admin_or_the_api_is_recorded_as_replaced(
    admin_client, admin_user, channel_factory
) -> None:
    channel = channel_factory(platform="woocommerce", base_url="https://shop.example.com")
    form_url = reverse("admin:channels_app_channel_change", args=[channel.pk])
    data = channel_form_data(channel, new_webhook_secret="typed-in-secret")

    saved = admin_client.post(form_url, data)
    admin_client.patch(
        f"/api/v1/channels/{channel.pk}/",
        {"webhook_secret": "from-the-api"},
        content_type="application/json",
    )

    channel.refresh_from_db()
    assert saved.status_code == 302
    assert channel.webhook_secret == "from-the-api"
    assert events(channel) == [
        ("replaced", "admin", admin_user.username),
        ("replaced", "api", admin_user.username),
    ]
