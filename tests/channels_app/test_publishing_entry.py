"""Publishing from the product admin (action with confirmation) and the API
(POST /api/v1/publications/), against the sandbox."""

from __future__ import annotations

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.messages import get_messages
from rest_framework.test import APIClient

from channels_app.models import ChannelListing, ChannelPublication
from pimsync.api.roles import MERCHANDISER, OPS, user_api_token, user_roles_set
from tests.support.publishing import publishing_channels, sock_product
from tests.support.sandbox import control

pytestmark = pytest.mark.django_db(transaction=True)

PRODUCTS_PAGE = "/admin/inventory/product/"


def api_client(django_user_model, role: str) -> APIClient:
    user = django_user_model.objects.create_user(username=f"u-{role}", password="x")
    user_roles_set(user=user, roles=[role])
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {user_api_token(user=user)}")
    return client


def test_the_admin_action_asks_first_then_publishes_and_says_what_happened(
    admin_client, sandbox
) -> None:
    channels = publishing_channels(sandbox, ["shopify", "woocommerce"])
    product = sock_product()
    chosen = {"action": "publish_action", ACTION_CHECKBOX_NAME: [product.pk]}

    asked = admin_client.post(PRODUCTS_PAGE, chosen)

    assert asked.status_code == 200
    assert b"Publish to channel" in asked.content
    assert not ChannelPublication.objects.exists()
    assert control(sandbox.url, "GET", "/_control/counters/shopify")[1]["calls"] == 0

    done = admin_client.post(
        PRODUCTS_PAGE,
        {**chosen, "confirm": "yes", "channels": [c.pk for c in channels.values()]},
        follow=True,
    )

    assert done.status_code == 200
    said = [str(m) for m in get_messages(done.wsgi_request)]
    assert "Published 2 of 2 product-channel pair(s)." in said
    assert any(s.startswith("Trail Sock on Shopify") and "published 3 of 3" in s for s in said)
    assert ChannelListing.objects.filter(sync_content=True).count() == 6
    page = admin_client.get(f"{PRODUCTS_PAGE}{product.pk}/change/")
    assert b"Published on channels" in page.content


def test_the_admin_action_reports_a_channel_that_cannot_take_the_product(
    admin_client, sandbox
) -> None:
    channel = publishing_channels(sandbox, ["ebay"])["ebay"]
    product = sock_product()
    product.status = "archived"
    product.save()

    done = admin_client.post(
        PRODUCTS_PAGE,
        {
            "action": "publish_action",
            ACTION_CHECKBOX_NAME: [product.pk],
            "confirm": "yes",
            "channels": [channel.pk],
        },
        follow=True,
    )

    said = [str(m) for m in get_messages(done.wsgi_request)]
    assert "Published 0 of 1 product-channel pair(s)." in said
    assert any("is archived" in s for s in said)
    assert not ChannelListing.objects.exists()


def test_the_api_publishes_on_each_channel_and_lists_the_publications(
    django_user_model, sandbox
) -> None:
    channels = publishing_channels(sandbox, ["magento", "amazon"])
    product = sock_product(sizes=("S", "M"))
    client = api_client(django_user_model, MERCHANDISER)

    answer = client.post(
        "/api/v1/publications/",
        {"product": product.pk, "channels": [channels["magento"].pk, channels["amazon"].pk]},
        format="json",
    )

    assert answer.status_code == 200, answer.json()
    results = {r["channel_slug"]: r for r in answer.json()["results"]}
    assert {slug: r["status"] for slug, r in results.items()} == {
        channels["magento"].slug: "published",
        channels["amazon"].slug: "published",
    }
    assert sorted(results[channels["amazon"].slug]["listed"]) == ["TRAIL-SOCK-M", "TRAIL-SOCK-S"]
    listed = client.get("/api/v1/publications/", {"channel": channels["magento"].pk}).json()
    assert [(p["product"], p["status"]) for p in listed["results"]] == [(product.pk, "published")]
    listing = client.get("/api/v1/listings/", {"channel": channels["amazon"].pk}).json()
    assert {row["sync_content"] for row in listing["results"]} == {True}


def test_the_api_refuses_a_product_no_channel_can_take_and_sends_nothing(
    django_user_model, sandbox
) -> None:
    channels = publishing_channels(sandbox, ["shopify", "woocommerce"])
    channels["woocommerce"].is_enabled = False
    channels["woocommerce"].save()
    product = sock_product()
    client = api_client(django_user_model, MERCHANDISER)

    answer = client.post(
        "/api/v1/publications/",
        {"product": product.pk, "channels": [c.pk for c in channels.values()]},
        format="json",
    )

    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "cannot_publish"
    assert control(sandbox.url, "GET", "/_control/counters/shopify")[1]["calls"] == 0
    assert not ChannelPublication.objects.exists()
    empty = client.post(
        "/api/v1/publications/", {"product": product.pk, "channels": []}, format="json"
    )
    assert empty.status_code == 400


def test_only_merchandisers_publish_through_the_api(django_user_model, sandbox) -> None:
    channel = publishing_channels(sandbox, ["shopify"])["shopify"]
    product = sock_product()

    answer = api_client(django_user_model, OPS).post(
        "/api/v1/publications/", {"product": product.pk, "channels": [channel.pk]}, format="json"
    )

    assert answer.status_code == 403
    assert not ChannelPublication.objects.exists()
