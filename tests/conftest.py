import pytest

from tests import factories

# Shared fixtures by name, without importing them into test modules. pytest
# accepts pytest_plugins only here, in the top-level conftest.
pytest_plugins = [
    "tests.plugins.tasks",
    "tests.plugins.alerts",
    "tests.plugins.sandbox",
]
# Asserts in the shared helpers report like a test's (pytest rewrites only what
# it is told about, and only if told before the first import).
pytest.register_assert_rewrite("tests.support")


@pytest.fixture(autouse=True)
def _require_postgres_for_postgres_tests(request: pytest.FixtureRequest) -> None:
    """Never a silent skip: a concurrency test without PostgreSQL fails loudly."""
    if request.node.get_closest_marker("postgres") is None:
        return
    request.getfixturevalue("django_db_blocker")
    from django.conf import settings

    if settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
        pytest.fail(
            "This test proves a concurrency claim and needs PostgreSQL: run `make test-pg`."
        )


@pytest.fixture(autouse=True, scope="session")
def _own_rate_limit_buckets_per_xdist_worker(worker_id: str) -> None:
    """Parallel workers (pytest-xdist) each have their own test database, so their
    channel ids repeat: in the lane that shares the rate limiter through Redis each
    worker gets a Redis database of its own, or one worker's buckets would slow the
    other's calls."""
    from django.conf import settings

    url = settings.PIMSYNC_RATE_LIMIT_REDIS_URL
    if worker_id == "master" or not url:
        return
    base, _, _ = url.rpartition("/")
    settings.PIMSYNC_RATE_LIMIT_REDIS_URL = f"{base}/{2 + int(worker_id.removeprefix('gw'))}"


@pytest.fixture
def product_factory():
    return factories.ProductFactory


@pytest.fixture
def variant_factory():
    return factories.VariantFactory


@pytest.fixture
def location_factory():
    return factories.LocationFactory


@pytest.fixture
def channel_factory():
    return factories.ChannelFactory


@pytest.fixture
def channel_location_factory():
    return factories.ChannelLocationFactory


@pytest.fixture
def listing_factory():
    return factories.ChannelListingFactory


@pytest.fixture
def buffer_rule_factory():
    return factories.BufferRuleFactory


@pytest.fixture
def price_rule_factory():
    return factories.PriceRuleFactory


@pytest.fixture
def variant(db, variant_factory):
    return variant_factory()


@pytest.fixture
def location(db, location_factory):
    return location_factory(code="main", name="Main")


@pytest.fixture
def location2(db, location_factory):
    return location_factory(code="store", name="Store")


@pytest.fixture
def admin_user(db, django_user_model):
    return django_user_model.objects.create_superuser("boss", "boss@example.com", "pw-Very-Long-1")


@pytest.fixture
def admin_client(client, admin_user):
    client.force_login(admin_user)
    return client
