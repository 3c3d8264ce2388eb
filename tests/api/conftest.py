"""API fixtures: a user per role with a token client, and a small stocked catalog."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

import pytest
from rest_framework.test import APIClient

from inventory import services
from pimsync.api.roles import ROLES, user_api_token, user_roles_set
from tests import factories


@pytest.fixture(autouse=True)
def _api_caches():
    """Throttle counters never leak from one test into the next."""
    from django.core.cache import caches

    caches["api-throttle"].clear()
    yield
    caches["api-throttle"].clear()


@pytest.fixture
def make_user(db, django_user_model) -> Callable[[str], object]:
    def make(role: str):
        user = django_user_model.objects.create_user(username=f"u-{role}", password="x")
        if role == "staff":
            user.is_staff = True
            user.save(update_fields=["is_staff"])
        elif role in ROLES:
            user_roles_set(user=user, roles=[role])
        return user

    return make


@pytest.fixture
def client_for(make_user) -> Callable[[str], APIClient]:
    made: dict[str, APIClient] = {}

    def for_role(role: str) -> APIClient:
        if role not in made:
            client = APIClient()
            if role != "anonymous":
                client.credentials(
                    HTTP_AUTHORIZATION=f"Token {user_api_token(user=make_user(role))}"
                )
            made[role] = client
        return made[role]

    return for_role


@pytest.fixture
def staff_api(client_for) -> APIClient:
    return client_for("staff")


@pytest.fixture
def integrator_api(client_for) -> APIClient:
    return client_for("integrator")


@pytest.fixture
def catalog(db):
    """Two locations, one Shopify channel fed by main, three listed variants with stock."""
    main = factories.LocationFactory(code="main", name="Main")
    store = factories.LocationFactory(code="store", name="Store")
    channel = factories.ChannelFactory(slug="shop", name="Shop")
    factories.ChannelLocationFactory(channel=channel, location=main)
    product = factories.ProductFactory(title="Tee", handle="tee")
    variants = [
        factories.VariantFactory(product=product, sku=f"TEE-{size}", price=Decimal("20.00"))
        for size in ("S", "M", "L")
    ]
    for v in variants:
        factories.ChannelListingFactory(channel=channel, variant=v)
        services.stock_adjust(
            variant=v,
            location=main,
            quantity=10,
            reason="receive",
            source="test",
            idempotency_key=f"seed:{v.sku}",
        )
    return {
        "main": main,
        "store": store,
        "channel": channel,
        "product": product,
        "variants": variants,
    }
