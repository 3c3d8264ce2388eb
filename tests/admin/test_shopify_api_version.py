"""The channel admin shows each Shopify channel's Admin API version and warns before
Shopify retires it (60 days); an unknown version is refused when saving."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from django.urls import reverse

from channels_app.models import Channel
from tests.support.admin_forms import channel_form_data

pytestmark = pytest.mark.django_db

# 26 days before 2026-01 leaves support (2027-01-01).
TODAY = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


@pytest.fixture
def on_today(time_machine):
    time_machine.move_to(TODAY, tick=False)


def test_the_channel_list_flags_a_version_close_to_retirement(
    admin_client, channel_factory, on_today
) -> None:
    channel_factory(name="Old shop", platform_config={})  # the default: 2026-01
    channel_factory(name="New shop", platform_config={"api_version": "2026-07"})
    channel_factory(name="Woo shop", platform="woocommerce", platform_config={})

    page = admin_client.get(reverse("admin:channels_app_channel_changelist")).content.decode()

    assert "2026-01 · retires in 26 d" in page
    assert 'class="ps-badge ps-warn">2026-01 · retires in 26 d<' in page
    assert 'class="ps-badge ps-ok">2026-07<' in page
    assert page.count("retires in") == 1


def test_the_channel_page_warns_and_says_until_when(admin_client, channel_factory, on_today):
    channel = channel_factory(platform_config={"api_version": "2026-01"})

    response = admin_client.get(reverse("admin:channels_app_channel_change", args=[channel.pk]))

    message = (
        "Admin API 2026-01 is supported until 2027-01-01 (26 days left): move the channel to "
        "a newer api_version before then"
    )
    assert [str(m) for m in response.context["messages"]] == [message]
    assert message in response.content.decode()


def test_a_supported_version_and_other_platforms_raise_no_warning(
    admin_client, channel_factory, on_today
) -> None:
    shopify = channel_factory(platform_config={"api_version": "2026-10"})
    woo = channel_factory(platform="woocommerce", platform_config={})
    for channel in (shopify, woo):
        url = reverse("admin:channels_app_channel_change", args=[channel.pk])
        assert list(admin_client.get(url).context["messages"]) == []


def test_saving_an_unknown_version_is_refused(admin_client, channel_factory, on_today) -> None:
    channel = channel_factory(platform_config={"location_id": "gid://shopify/Location/1"})
    url = reverse("admin:channels_app_channel_change", args=[channel.pk])
    data = channel_form_data(channel, platform_config=json.dumps({"api_version": "2026-02"}))

    page = admin_client.post(url, data).content.decode()

    assert "api_version: Admin API 2026-02 is not a known Shopify version" in page
    assert Channel.objects.get(pk=channel.pk).platform_config == {
        "location_id": "gid://shopify/Location/1"
    }
    saved = admin_client.post(
        url, channel_form_data(channel, platform_config='{"api_version": "2026-04"}')
    )
    assert saved.status_code == 302
    assert Channel.objects.get(pk=channel.pk).platform_config == {"api_version": "2026-04"}
