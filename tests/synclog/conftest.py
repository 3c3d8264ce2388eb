"""The alert webhook mock, an ops person and a stocked channel, shared with the
health tests."""

from tests.channels_app.health.conftest import hook, ops, shop  # noqa: F401 - fixtures
