"""The synclog tests share the alert fixtures (tests.plugins.alerts) with the
health tests; their channel is the same alerting shop."""

import pytest


@pytest.fixture
def shop(alerting_shop):
    return alerting_shop
