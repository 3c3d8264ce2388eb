from decimal import Decimal

import factory

from channels_app.models import BufferRule, Channel, ChannelListing, ChannelLocation, PriceRule
from inventory.models import Location, Product, Variant


class ProductFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Product

    title = factory.Sequence(lambda n: f"Product {n}")
    handle = factory.Sequence(lambda n: f"product-{n}")


class VariantFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Variant

    product = factory.SubFactory(ProductFactory)
    sku = factory.Sequence(lambda n: f"SKU-{n:05d}")
    price = Decimal("20.00")
    options = factory.LazyFunction(lambda: {"size": "M"})


class LocationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Location

    code = factory.Sequence(lambda n: f"loc-{n}")
    name = factory.Sequence(lambda n: f"Location {n}")


class ChannelFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Channel

    name = factory.Sequence(lambda n: f"Channel {n}")
    slug = factory.Sequence(lambda n: f"channel-{n}")
    platform = "shopify"
    base_url = "http://127.0.0.1:8700/shopify"
    credentials = factory.LazyFunction(lambda: {"access_token": "shpat_test_token_123456"})
    webhook_secret = "whsec_test_secret"


class ChannelLocationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ChannelLocation

    channel = factory.SubFactory(ChannelFactory)
    location = factory.SubFactory(LocationFactory)
    priority = 1


class ChannelListingFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ChannelListing

    channel = factory.SubFactory(ChannelFactory)
    variant = factory.SubFactory(VariantFactory)


class BufferRuleFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = BufferRule

    mode = BufferRule.Mode.UNITS
    value = Decimal("1")


class PriceRuleFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = PriceRule

    channel = factory.SubFactory(ChannelFactory)
