"""The demo catalog that `make run` seeds: 50 products × 4 sizes over 2 locations,
one channel per platform pointing at the local sandbox (Magento lists each
product as a configurable with four simple children), one buffer rule and one
price rule. Seeding is idempotent: existing data is kept."""

from __future__ import annotations

import json
import random
import secrets
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from channels_app.models import BufferRule, Channel, ChannelListing, ChannelLocation, PriceRule
from channels_app.sync.markers import listings_mark_dirty
from inventory import services
from inventory.models import Location, Product, Variant

SIZES = ("S", "M", "L", "XL")
COLOURS = ("Black", "Navy", "Olive", "Sand", "Red", "Grey", "White", "Teal", "Rust", "Plum")
KINDS = ("Tee", "Hoodie", "Cap", "Jacket", "Sweater")
DEMO_LOGIN_FILE = "demo-login.txt"

# Credentials the sandbox accepts by default (docs/sandbox.md); never real secrets.
SANDBOX_CHANNELS = [
    {
        "platform": "shopify",
        "name": "Shopify (sandbox)",
        "slug": "shopify",
        "credentials": {"access_token": "shpat_sandbox"},
        # Shopify signs the webhooks an app registers with the app's client secret: the
        # sandbox app's (docs/sandbox.md). WooCommerce takes the channel's own secret.
        "webhook_secret": "shpss_sandbox",
        "platform_config": {"location_id": "gid://shopify/Location/1", "api_version": "2026-01"},
        "rate": "2",
        "locations": ("main", "store"),
    },
    {
        "platform": "woocommerce",
        "name": "WooCommerce (sandbox)",
        "slug": "woocommerce",
        "credentials": {"consumer_key": "ck_sandbox", "consumer_secret": "cs_sandbox"},
        "platform_config": {},
        "rate": "5",
        "locations": ("main",),
    },
    {
        "platform": "ebay",
        "name": "eBay (sandbox)",
        "slug": "ebay",
        # Refresh-token credentials: pimsync obtains and refreshes the access token
        # from the sandbox's token endpoint (docs/channels.md).
        "credentials": {
            "client_id": "sandbox-ebay-client",
            "client_secret": "sandbox-ebay-secret",
            "refresh_token": "v^1.1#i^1#r^1#sandbox-ebay-refresh",
        },
        "platform_config": {"marketplace_id": "EBAY_US"},
        "rate": "5",
        "locations": ("main",),
    },
    {
        "platform": "amazon",
        "name": "Amazon (sandbox)",
        "slug": "amazon",
        "credentials": {
            "client_id": "amzn1.application-oa2-client.sandbox",
            "client_secret": "sandbox-amazon-secret",
            "refresh_token": "Atzr|sandbox-amazon-refresh",
        },
        "platform_config": {
            "seller_id": "A1SANDBOXSELLER",
            "marketplace_id": "ATVPDKIKX0DER",
            "product_type": "PRODUCT",
            # Login with Amazon on the sandbox (a path on the base URL); the real
            # one is https://api.amazon.com/auth/o2/token, the default.
            "token_url": "/auth/o2/token",
        },
        "rate": "5",
        "locations": ("main",),
    },
    {
        "platform": "magento",
        "name": "Magento (sandbox)",
        "slug": "magento",
        "credentials": {"access_token": "sandbox-magento-token"},
        "platform_config": {
            "store_code": "default",
            "price_store_id": 0,
            "msi": True,
            "source_codes": ["default"],
            "stock_id": 1,
        },
        "rate": "5",
        "locations": ("main", "store"),
    },
]


def listing_ids(platform: str, index: int, product_index: int, sku: str) -> dict[str, str]:
    """Channel ids in each platform's own format."""
    if platform == "shopify":
        return {
            "external_product_id": f"gid://shopify/Product/{1000 + product_index}",
            "external_variant_id": f"gid://shopify/ProductVariant/{5000 + index}",
            "inventory_item_id": f"gid://shopify/InventoryItem/{9000 + index}",
        }
    if platform == "woocommerce":
        return {
            "external_product_id": str(100 + product_index),
            "external_variant_id": str(1000 + index),
        }
    if platform == "ebay":
        return {"offer_id": str(700000 + index), "listing_sku": sku}
    if platform == "magento":
        # Simple children of one configurable per product, named by the SKUs' stem.
        parent = sku.rsplit("-", 1)[0] if "-" in sku else f"CFG-{product_index}"
        return {"external_product_id": parent, "external_variant_id": str(30000 + index)}
    return {"listing_sku": sku}


def _demo_admin() -> tuple[str, str]:
    path = Path(settings.VAR_DIR) / DEMO_LOGIN_FILE
    user_model = get_user_model()
    if path.exists() and user_model.objects.filter(username="admin").exists():
        username, password = path.read_text().strip().split(":", 1)
        return username, password
    password = secrets.token_urlsafe(12)
    user, _ = user_model.objects.get_or_create(
        username="admin", defaults={"email": "admin@localhost"}
    )
    user.is_staff = user.is_superuser = True
    user.set_password(password)
    user.save()
    path.write_text(f"admin:{password}")
    path.chmod(0o600)
    return "admin", password


def _catalog(rng: random.Random) -> tuple[list[Variant], dict[str, Location]]:
    locations = {
        "main": Location.objects.get_or_create(code="main", defaults={"name": "Main warehouse"})[0],
        "store": Location.objects.get_or_create(code="store", defaults={"name": "City store"})[0],
    }
    variants = []
    for p in range(50):
        kind, colour = KINDS[p % len(KINDS)], COLOURS[p // len(KINDS) % len(COLOURS)]
        product = services.product_save(
            product=Product(
                title=f"{colour} {kind} {p + 1:02d}",
                handle=f"{colour}-{kind}-{p + 1:02d}".lower(),
                vendor="pimsync demo",
                product_type=kind,
            )
        )
        base = Decimal(rng.choice([19, 24, 29, 39, 49, 79, 99])) + Decimal("0.00")
        for size in SIZES:
            variant = services.variant_save(
                variant=Variant(
                    product=product,
                    sku=f"DEMO-{p + 1:03d}-{size}",
                    title=size,
                    options={"size": size, "colour": colour},
                    price=base,
                    compare_at_price=base + 10 if p % 3 == 0 else None,
                    map_price=(base * Decimal("0.8")).quantize(Decimal("0.01"))
                    if p % 5 == 0
                    else None,
                    barcode=f"400{p:04d}{SIZES.index(size):02d}{rng.randrange(100, 999)}",
                )
            )
            variants.append(variant)
    for variant in variants:
        for code, location in locations.items():
            qty = rng.randrange(0, 40) if code == "main" else rng.randrange(0, 8)
            if qty:
                services.stock_adjust(
                    variant=variant,
                    location=location,
                    quantity=qty,
                    reason="receive",
                    source="admin",
                    idempotency_key=f"demo:receive:{variant.sku}:{code}",
                    note="Demo opening stock",
                )
    # A few open checkout holds, so reservations and their expiry show in the demo.
    for n, variant in enumerate(variants[:40:8]):
        if _available(variant, locations["main"]) <= 0:
            continue
        services.reservation_create(
            variant=variant,
            location=locations["main"],
            quantity=1,
            source="checkout",
            source_ref=f"demo-cart-{n + 1}",
            idempotency_key=f"demo:hold:{variant.sku}",
            expires_at=timezone.now() + timedelta(hours=2),
        )
    return variants, locations


def _available(variant: Variant, location: Location) -> int:
    level = variant.stock_levels.filter(location=location).first()
    return level.available if level else 0


def _channels(variants: list[Variant], locations: dict[str, Location]) -> None:
    sandbox = settings.PIMSYNC_DEMO_SANDBOX_URL.rstrip("/")
    for spec in SANDBOX_CHANNELS:
        channel = Channel.objects.create(
            name=spec["name"],
            slug=spec["slug"],
            platform=spec["platform"],
            base_url=f"{sandbox}/{spec['platform']}",
            credentials=spec["credentials"],
            webhook_secret=spec.get("webhook_secret")
            or f"whsec_{spec['slug']}_{secrets.token_hex(8)}",
            platform_config=spec["platform_config"],
            rate_limit_per_second=Decimal(spec["rate"]),
        )
        for priority, code in enumerate(spec["locations"], start=1):
            ChannelLocation.objects.create(
                channel=channel, location=locations[code], priority=priority
            )
        ChannelListing.objects.bulk_create(
            ChannelListing(
                channel=channel,
                variant=v,
                **listing_ids(spec["platform"], i, i // len(SIZES), v.sku),
            )
            for i, v in enumerate(variants)
        )
    BufferRule.objects.create(
        channel=Channel.objects.get(slug="ebay"),
        mode=BufferRule.Mode.UNITS,
        value=Decimal("2"),
        note="Demo: keep 2 units back from eBay",
    )
    PriceRule.objects.create(
        channel=Channel.objects.get(slug="amazon"),
        multiplier=Decimal("1.15"),
        rounding=PriceRule.Rounding.END_99,
    )
    # The initial sync: every listing's price and ATP goes out once the worker runs.
    listings_mark_dirty(ChannelListing.objects.all())


def sandbox_seed_write(path: Path) -> int:
    """Write the sandbox's opening catalog (the channels' view before the first push)."""
    from channels_app.selectors import channel_atp_bulk, channel_price_bulk

    payload: dict[str, list[dict]] = {}
    for channel in Channel.objects.all():
        listings = list(channel.listings.select_related("variant"))
        ids = [lst.variant_id for lst in listings]
        atp = channel_atp_bulk(channel=channel, variant_ids=ids)
        prices = channel_price_bulk(channel=channel, variant_ids=ids)
        payload[channel.platform] = [
            {
                "sku": lst.listing_sku or lst.variant.sku,
                "product_id": lst.external_product_id,
                "variant_id": lst.external_variant_id,
                "inventory_item_id": lst.inventory_item_id,
                "offer_id": lst.offer_id,
                "price": str(prices[lst.variant_id]),
                "quantity": atp[lst.variant_id],
            }
            for lst in listings
        ]
    path.write_text(json.dumps(payload, indent=1))
    return sum(len(v) for v in payload.values())


def _demo_api_users() -> list[str]:
    """One token-only user per API role (no password), so each role can be tried."""
    from pimsync.api.roles import ROLES, roles_sync, user_roles_set

    roles_sync()
    user_model = get_user_model()
    names = []
    for role in ROLES:
        user, created = user_model.objects.get_or_create(username=f"demo-{role}")
        if created:
            user.set_unusable_password()
            user.save()
        user_roles_set(user=user, roles=[role])
        names.append(user.username)
    return names


def demo_seed() -> dict[str, object]:
    """Seed once; later runs keep the data. Returns what a person needs to log in."""
    username, password = _demo_admin()
    api_users = _demo_api_users()
    created = False
    if not Product.objects.exists():
        with transaction.atomic():
            variants, locations = _catalog(random.Random(42))  # noqa: S311 - demo data
            _channels(variants, locations)
            from channels_app.services import channels_reconcile_schedule_sync

            channels_reconcile_schedule_sync()
        created = True
    seed_path = Path(settings.VAR_DIR) / "sandbox_seed.json"
    if created or not seed_path.exists():
        sandbox_seed_write(seed_path)
    return {
        "created": created,
        "username": username,
        "password": password,
        "products": Product.objects.count(),
        "variants": Variant.objects.count(),
        "channels": Channel.objects.count(),
        "sandbox_seed": str(seed_path),
        "api_users": api_users,
    }
