"""The health tests' channel: the shared alerting shop (tests.plugins.alerts)."""

import pytest


@pytest.fixture
def shop(alerting_shop):
    return alerting_shop
