"""Every endpoint × every role: allowed roles get their answer, others 403, anonymous 401.

One table: (endpoint, roles allowed besides staff). Bodies are valid, so an allowed
role's request succeeds (2xx) — a 4xx other than 403 would hide a broken endpoint.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.db import transaction
from django.utils import timezone

from channels_app.models import (
    BufferRule,
    CatalogImport,
    CatalogImportItem,
    ChannelOrder,
    PriceRule,
)
from inventory import services
from synclog.models import Alert, ReconciliationRun, SyncLogEntry
from tests import factories
from tests.support.roles import ROLE_NAMES
from tests.support.sandbox import MAGENTO_TOKEN

pytestmark = pytest.mark.django_db

MER, INT, OPS = "merchandiser", "integrator", "ops"
ALL = (MER, INT, OPS)


@dataclass(frozen=True)
class Call:
    name: str
    method: str
    path: str  # formatted with the ids of the `world` fixture
    allowed: tuple[str, ...]
    body: dict[str, Any] | None = None
    idempotency: bool = False
    fixtures: tuple[str, ...] = ()  # more ids the call needs (fixtures returning a dict)


CALLS = [
    Call("products list", "get", "/api/v1/products/", ALL),
    Call("product read", "get", "/api/v1/products/{product}/", ALL),
    Call("product create", "post", "/api/v1/products/", (MER,), {"title": "New", "handle": "new"}),
    Call("product change", "patch", "/api/v1/products/{product}/", (MER,), {"vendor": "Acme"}),
    Call("product delete", "delete", "/api/v1/products/{empty_product}/", (MER,)),
    Call("variants list", "get", "/api/v1/variants/", ALL),
    Call("variants with channels", "get", "/api/v1/variants/?include=channels", ALL),
    Call("variant read", "get", "/api/v1/variants/{variant}/", ALL),
    Call(
        "variant create",
        "post",
        "/api/v1/variants/",
        (MER,),
        {"product": "{product}", "sku": "NEW-1", "price": "9.50"},
    ),
    Call("variant change", "patch", "/api/v1/variants/{variant}/", (MER,), {"price": "22.00"}),
    Call("variant delete", "delete", "/api/v1/variants/{unstocked_variant}/", (MER,)),
    Call("locations list", "get", "/api/v1/locations/", ALL),
    Call("location read", "get", "/api/v1/locations/{main}/", ALL),
    Call("location create", "post", "/api/v1/locations/", (), {"code": "east", "name": "East"}),
    Call("location change", "patch", "/api/v1/locations/{store}/", (), {"name": "Shop"}),
    Call("stock levels", "get", "/api/v1/stock-levels/?low_stock=false", ALL),
    Call("stock level read", "get", "/api/v1/stock-levels/{level}/", ALL),
    Call("movements list", "get", "/api/v1/stock-movements/", ALL),
    Call("movement read", "get", "/api/v1/stock-movements/{movement}/", ALL),
    Call(
        "movement apply",
        "post",
        "/api/v1/stock-movements/",
        (INT,),
        {"sku": "TEE-S", "location": "main", "reason": "receive", "quantity": 2},
        idempotency=True,
    ),
    Call(
        "transfer",
        "post",
        "/api/v1/transfers/",
        (INT,),
        {"sku": "TEE-S", "from_location": "main", "to_location": "store", "quantity": 1},
        idempotency=True,
    ),
    Call(
        "cycle count",
        "post",
        "/api/v1/cycle-counts/",
        (INT,),
        {"sku": "TEE-S", "location": "main", "counted_on_hand": 8},
        idempotency=True,
    ),
    Call("reservations list", "get", "/api/v1/reservations/", ALL),
    Call("reservation read", "get", "/api/v1/reservations/{reservation}/", ALL),
    Call(
        "reservation create",
        "post",
        "/api/v1/reservations/",
        (INT,),
        {"sku": "TEE-M", "location": "main", "quantity": 1},
        idempotency=True,
    ),
    Call("reservation commit", "post", "/api/v1/reservations/{reservation}/commit/", (INT,)),
    Call("reservation release", "post", "/api/v1/reservations/{reservation}/release/", (INT,)),
    Call(
        "bulk movements",
        "post",
        "/api/v1/bulk/stock-movements/",
        (INT,),
        {"movements": [{"sku": "TEE-S", "location": "main", "reason": "receive", "quantity": 1}]},
        idempotency=True,
    ),
    Call(
        "bulk prices",
        "post",
        "/api/v1/bulk/prices/",
        (MER,),
        {"prices": [{"sku": "TEE-S", "price": "30.00"}]},
    ),
    Call("channels list", "get", "/api/v1/channels/", ALL),
    Call("channel read", "get", "/api/v1/channels/{channel}/", ALL),
    Call(
        "channel create",
        "post",
        "/api/v1/channels/",
        (),
        {
            "name": "Woo",
            "slug": "woo",
            "platform": "woocommerce",
            "base_url": "http://127.0.0.1:8700/woocommerce",
            "credentials": {"consumer_key": "ck", "consumer_secret": "cs"},
        },
    ),
    Call("channel change", "patch", "/api/v1/channels/{channel}/", (), {"low_stock_level": 3}),
    Call("push now", "post", "/api/v1/channels/{channel}/push-now/", (OPS,), {"skus": ["TEE-S"]}),
    Call(
        "force resync",
        "post",
        "/api/v1/channels/{channel}/force-resync/",
        (OPS,),
        {"skus": ["TEE-S", "TEE-M"]},
    ),
    Call("listings list", "get", "/api/v1/listings/", ALL),
    Call("listing read", "get", "/api/v1/listings/{listing}/", ALL),
    Call(
        "listing create",
        "post",
        "/api/v1/listings/",
        (MER,),
        {"channel": "{channel}", "variant": "{unlisted_variant}"},
    ),
    Call(
        "listing change", "patch", "/api/v1/listings/{listing}/", (MER,), {"price_override": "18"}
    ),
    Call(
        "link variants",
        "post",
        "/api/v1/listings/link-variants/",
        (MER,),
        {"channel": "{magento_channel}", "product": "{product}", "product_ref": "TEE"},
        fixtures=("magento_world",),
    ),
    Call("publications list", "get", "/api/v1/publications/", ALL),
    Call(
        "publication read",
        "get",
        "/api/v1/publications/{publication}/",
        ALL,
        fixtures=("publishing_world",),
    ),
    Call(
        "publish",
        "post",
        "/api/v1/publications/",
        (MER,),
        {"product": "{product}", "channels": ["{publishing_channel}"]},
        fixtures=("publishing_world",),
    ),
    Call(
        "bulk listings",
        "post",
        "/api/v1/bulk/listings/",
        (MER,),
        {"listings": [{"sku": "TEE-S", "channel": "shop", "external_variant_id": "77"}]},
    ),
    Call(
        "catalog import start", "post", "/api/v1/channels/{other_channel}/catalog-import/", (MER,)
    ),
    Call("channel's latest import", "get", "/api/v1/channels/{channel}/catalog-import/", ALL),
    Call("catalog imports", "get", "/api/v1/catalog-imports/?status=failed", ALL),
    Call("catalog import", "get", "/api/v1/catalog-imports/{catalog_import}/", ALL),
    Call("catalog import items", "get", "/api/v1/catalog-imports/{catalog_import}/items/", ALL),
    Call(
        "catalog import resume",
        "post",
        "/api/v1/catalog-imports/{catalog_import}/resume/",
        (MER,),
    ),
    Call("buffer rules list", "get", "/api/v1/buffer-rules/", ALL),
    Call("buffer rule read", "get", "/api/v1/buffer-rules/{buffer_rule}/", ALL),
    Call(
        "buffer rule create",
        "post",
        "/api/v1/buffer-rules/",
        (MER,),
        {"channel": "{channel}", "product": "{product}", "mode": "percent", "value": "10"},
    ),
    Call(
        "buffer rule change", "patch", "/api/v1/buffer-rules/{buffer_rule}/", (MER,), {"value": "3"}
    ),
    Call("buffer rule delete", "delete", "/api/v1/buffer-rules/{buffer_rule}/", (MER,)),
    Call("price rules list", "get", "/api/v1/price-rules/", ALL),
    Call("price rule read", "get", "/api/v1/price-rules/{price_rule}/", ALL),
    Call(
        "price rule create",
        "post",
        "/api/v1/price-rules/",
        (MER,),
        {"channel": "{other_channel}", "multiplier": "1.1", "rounding": "0.99"},
    ),
    Call(
        "price rule change",
        "patch",
        "/api/v1/price-rules/{price_rule}/",
        (MER,),
        {"adjustment": "1"},
    ),
    Call("price rule delete", "delete", "/api/v1/price-rules/{price_rule}/", (MER,)),
    Call("orders list", "get", "/api/v1/orders/", (INT, OPS)),
    Call("order read", "get", "/api/v1/orders/{order}/", (INT, OPS)),
    Call("order ship", "post", "/api/v1/orders/{order}/ship/", (INT,), {"carrier": "UPS"}),
    Call("order retry on channel", "post", "/api/v1/orders/{order}/retry-on-channel/", (INT,)),
    Call("customers list", "get", "/api/v1/customers/", (INT, OPS)),
    Call("customer read", "get", "/api/v1/customers/{customer}/", (INT, OPS)),
    Call("sync log", "get", "/api/v1/sync-log/?status=failed", (OPS,)),
    Call("sync log entry", "get", "/api/v1/sync-log/{log_entry}/", (OPS,)),
    Call("alerts list", "get", "/api/v1/alerts/?is_open=true", (OPS,)),
    Call("alert read", "get", "/api/v1/alerts/{alert}/", (OPS,)),
    Call("alert acknowledge", "post", "/api/v1/alerts/{alert}/acknowledge/", (OPS,)),
    Call("alert resolve", "post", "/api/v1/alerts/{alert}/resolve/", (OPS,)),
    Call("reconciliation runs", "get", "/api/v1/reconciliation-runs/?status=finished", (OPS,)),
    Call("reconciliation run", "get", "/api/v1/reconciliation-runs/{run}/", (OPS,)),
    Call("run findings", "get", "/api/v1/reconciliation-runs/{run}/findings/", (OPS,)),
    Call(
        "reconcile start",
        "post",
        "/api/v1/reconciliation-runs/",
        (OPS,),
        {"channel": "{channel}", "skus": ["TEE-S"]},
    ),
    Call("me", "get", "/api/v1/me/", ALL),
    Call("my token", "post", "/api/v1/me/token/", ALL),
    Call("schema", "get", "/api/schema/", (*ALL, "none")),
]


@pytest.fixture
def world(catalog):
    """Ids of one object of every kind the calls address."""
    tee_s, tee_m, _ = catalog["variants"]
    channel = catalog["channel"]
    other = factories.ChannelFactory(slug="other")
    empty_product = factories.ProductFactory()
    unstocked = factories.VariantFactory(product=empty_product)
    reservation = services.reservation_create(
        variant=tee_m, location=catalog["main"], quantity=1, source="t", idempotency_key="r"
    )
    order = ChannelOrder.objects.create(
        channel=channel,
        external_id="1001",
        status="paid",
        placed_at=timezone.now() - timedelta(hours=1),
        channel_updated_at=timezone.now(),
        first_seen_via="webhook",
        total=Decimal("20.00"),
    )
    customer = factories_customer()
    entry = SyncLogEntry.objects.create(
        channel=channel, sku="TEE-S", event_type="price", status="failed", value_sent="20.00"
    )
    alert = Alert.objects.create(
        kind="dead_letter",
        channel=channel,
        sku="TEE-S",
        message="refused",
        last_seen=timezone.now(),
    )
    run = ReconciliationRun.objects.create(
        channel=channel,
        trigger="manual",
        status="finished",
        started_at=timezone.now() - timedelta(minutes=5),
        finished_at=timezone.now(),
    )
    catalog_import = CatalogImport.objects.create(
        channel=channel, status="failed", started_at=timezone.now(), error_message="401"
    )
    CatalogImportItem.objects.create(run=catalog_import, key="1", position=0, sku="TEE-S")
    return {
        "catalog_import": catalog_import.pk,
        "run": run.pk,
        "product": catalog["product"].pk,
        "empty_product": factories.ProductFactory().pk,
        "variant": tee_s.pk,
        "unstocked_variant": unstocked.pk,
        "unlisted_variant": unstocked.pk,
        "main": catalog["main"].pk,
        "store": catalog["store"].pk,
        "level": tee_s.stock_levels.get().pk,
        "movement": tee_s.movements.get().pk,
        "reservation": reservation.pk,
        "channel": channel.pk,
        "other_channel": other.pk,
        "listing": tee_s.listings.get().pk,
        "buffer_rule": BufferRule.objects.create(channel=channel, value=Decimal("1")).pk,
        "price_rule": PriceRule.objects.create(channel=channel).pk,
        "order": order.pk,
        "customer": customer.pk,
        "log_entry": entry.pk,
        "alert": alert.pk,
    }


@pytest.fixture
def magento_world(catalog, sandbox):
    """A Magento channel on the sandbox whose configurable TEE has the catalog's SKUs."""
    sandbox.platform("magento").seed(
        [
            {"sku": v.sku, "price": "20.00", "quantity": 10, "group": "TEE"}
            for v in catalog["variants"]
        ]
    )
    channel = factories.ChannelFactory(
        slug="magento",
        platform="magento",
        base_url=sandbox.platform_url("magento"),
        credentials={"access_token": MAGENTO_TOKEN},
        platform_config={},
    )
    return {"magento_channel": channel.pk}


@pytest.fixture
def publishing_world(catalog, sandbox):
    """A Shopify channel on the sandbox that can take the catalog's product, and a
    publication of another product."""
    from channels_app.models import ChannelPublication
    from pimsync.demo import SANDBOX_CHANNELS

    spec = next(s for s in SANDBOX_CHANNELS if s["platform"] == "shopify")
    channel = factories.ChannelFactory(
        slug="shop-publish",
        platform="shopify",
        base_url=sandbox.platform_url("shopify"),
        credentials=spec["credentials"],
        platform_config=spec["platform_config"],
    )
    publication = ChannelPublication.objects.create(
        channel=channel, product=factories.ProductFactory(), status="failed"
    )
    return {"publishing_channel": channel.pk, "publication": publication.pk}


def factories_customer():
    from channels_app.models import Customer

    return Customer.objects.create(email="ann@example.com", name="Ann")


def _fill(value: Any, ids: dict[str, int]) -> Any:
    if isinstance(value, str) and value.startswith("{") and value.endswith("}"):
        return ids[value[1:-1]]
    if isinstance(value, dict):
        return {k: _fill(v, ids) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, ids) for v in value]
    return value


def _send(client, call: Call, ids: dict[str, int]):
    headers = {"HTTP_IDEMPOTENCY_KEY": f"k-{call.name}"} if call.idempotency else {}
    body = _fill(call.body, ids) if call.body is not None else None
    return getattr(client, call.method)(call.path.format(**ids), body, format="json", **headers)


class _Undo(Exception):
    """Raised to roll one role's request back, so every role meets the same data."""


def _outcome(call: Call, role: str, client, ids: dict[str, int]) -> str | None:
    """None when the role got what the table says, else what went wrong."""
    try:
        with transaction.atomic():
            response = _send(client, call, ids)
            raise _Undo
    except _Undo:
        pass
    status = response.status_code
    if role == "anonymous":
        expected_ok = status == 401 and response.json()["error"]["code"] == "not_authenticated"
    elif role == "staff" or role in call.allowed:
        expected_ok = 200 <= status < 300
    else:
        expected_ok = status == 403 and response.json()["error"]["code"] == "permission_denied"
    return None if expected_ok else f"{role}: {status} {response.content[:300]!r}"


@pytest.mark.parametrize("role", ROLE_NAMES)
@pytest.mark.parametrize("call", CALLS, ids=[c.name for c in CALLS])
def test_role_access(call: Call, role: str, world, client_for, request) -> None:
    """Allowed roles and staff succeed, other roles get 403, anonymous gets 401."""
    ids = dict(world)
    for name in call.fixtures:
        ids.update(request.getfixturevalue(name))
    assert _outcome(call, role, client_for(role), ids) is None


def test_every_routed_endpoint_is_in_the_table() -> None:
    """A new endpoint without a row here would escape the role check tests."""
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    covered = {(c.method, _template(c.path)) for c in CALLS}
    routed = {
        (method, _schema_template(path))
        for path, item in schema["paths"].items()
        for method in item
        if method in {"get", "post", "put", "patch", "delete"}
    }
    # PUT is the same permission as PATCH (a write of the same area).
    missing = {(m, p) for m, p in routed - covered if not (m == "put" and ("patch", p) in covered)}
    assert not missing, sorted(missing)


def _template(path: str) -> str:
    import re

    path = path.split("?")[0]
    return re.sub(r"\{[a-z_]+\}", "{id}", path)


def _schema_template(path: str) -> str:
    import re

    return re.sub(r"\{[a-z_]+\}", "{id}", path)
