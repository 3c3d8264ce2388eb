"""A catalog to publish: one channel per platform pointing at the sandbox (the demo's
settings), a location feeding them and products with stock, none listed yet."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from channels_app.models import Channel, ChannelLocation
from inventory import services
from inventory.models import Location, Product, Variant
from pimsync.demo import SANDBOX_CHANNELS
from sandbox.server import RunningSandbox

PLATFORMS = ("shopify", "woocommerce", "ebay", "amazon", "magento")
IMAGES = ["https://images.example.com/trail-sock-front.jpg", "https://images.example.com/back.jpg"]


def publishing_channels(
    sandbox: RunningSandbox, platforms: Sequence[str] = PLATFORMS, *, rate: str = "1000"
) -> dict[str, Channel]:
    location = Location.objects.get_or_create(code="pub", defaults={"name": "Publishing"})[0]
    channels = {}
    for spec in SANDBOX_CHANNELS:
        if spec["platform"] not in platforms:
            continue
        channel = Channel.objects.create(
            name=spec["name"],
            slug=spec["slug"],
            platform=spec["platform"],
            base_url=sandbox.platform_url(spec["platform"]),
            credentials=spec["credentials"],
            platform_config=spec["platform_config"],
            rate_limit_per_second=Decimal(rate),
        )
        ChannelLocation.objects.create(channel=channel, location=location)
        channels[spec["platform"]] = channel
    return channels


def sock_product(
    handle: str = "trail-sock", sizes: Sequence[str] = ("S", "M", "L"), *, stock: int = 7
) -> Product:
    """A product with one size option, barcodes, images and stock at the location."""
    product = services.product_save(
        product=Product(
            title="Trail Sock",
            handle=handle,
            description="<p>Merino trail sock.</p>",
            vendor="Acme",
            product_type="Socks",
            image_urls=list(IMAGES),
        )
    )
    location = Location.objects.get_or_create(code="pub", defaults={"name": "Publishing"})[0]
    for n, size in enumerate(sizes):
        variant = services.variant_save(
            variant=Variant(
                product=product,
                sku=f"{handle.upper()}-{size}",
                options={"size": size},
                barcode=f"0{400638133390 + n}",
                price=Decimal("12.00"),
            )
        )
        services.stock_adjust(
            variant=variant,
            location=location,
            quantity=stock,
            reason="receive",
            source="t",
            idempotency_key=f"pub-{variant.sku}",
        )
    return product


def single_product(handle: str = "cap") -> Product:
    """A product of one variant without options."""
    product = services.product_save(
        product=Product(
            title="Cap",
            handle=handle,
            description="A cap.",
            vendor="Acme",
            product_type="Hats",
            image_urls=[IMAGES[0]],
        )
    )
    services.variant_save(
        variant=Variant(product=product, sku=handle.upper(), price=Decimal("9.50"))
    )
    return product
