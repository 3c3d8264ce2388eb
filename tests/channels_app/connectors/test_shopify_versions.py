"""Shopify Admin API versions: the schedule as data, and where a channel's version stands."""

from __future__ import annotations

from datetime import date

import pytest

from channels_app.connectors.shopify_versions import (
    DEFAULT_VERSION,
    RETIREMENT_WARNING_DAYS,
    VERSIONS,
    VersionState,
    channel_api_version,
    version_status,
)


def test_the_table_follows_shopifys_quarterly_release_and_twelve_months_of_support() -> None:
    for name, version in VERSIONS.items():
        year, month = (int(part) for part in name.split("-"))
        assert month in (1, 4, 7, 10)
        assert version.released == date(year, month, 1)
        assert version.supported_until == date(year + 1, month, 1)
    assert DEFAULT_VERSION in VERSIONS


@pytest.mark.parametrize(
    ("today", "state", "days_left"),
    [
        (date(2026, 10, 1), VersionState.SUPPORTED, 92),
        (date(2026, 11, 1), VersionState.SUPPORTED, 61),
        (date(2026, 11, 2), VersionState.RETIRING, RETIREMENT_WARNING_DAYS),
        (date(2026, 12, 6), VersionState.RETIRING, 26),
        (date(2027, 1, 1), VersionState.RETIRED, 0),
    ],
)
def test_a_version_warns_sixty_days_before_it_is_retired(
    today: date, state: VersionState, days_left: int
) -> None:
    status = version_status("2026-01", today=today)
    assert (status.state, status.days_left) == (state, days_left)
    assert status.supported_until == date(2027, 1, 1)
    assert status.needs_attention is (state is not VersionState.SUPPORTED)


def test_the_messages_say_what_to_do() -> None:
    retiring = version_status("2026-01", today=date(2026, 12, 6))
    assert retiring.message == (
        "Admin API 2026-01 is supported until 2027-01-01 (26 days left): move the channel to "
        "a newer api_version before then"
    )
    retired = version_status("2025-10", today=date(2026, 12, 6))
    assert retired.state is VersionState.RETIRED
    assert "was retired on 2026-10-01" in retired.message
    unknown = version_status("2026-02", today=date(2026, 12, 6))
    assert (unknown.state, unknown.supported_until) == (VersionState.UNKNOWN, None)
    assert unknown.message.startswith("Admin API 2026-02 is not a known Shopify version")


def test_a_channel_uses_its_configured_version_or_the_default() -> None:
    assert channel_api_version({}) == DEFAULT_VERSION
    assert channel_api_version({"api_version": " 2026-07 "}) == "2026-07"
    assert channel_api_version({"api_version": ""}) == DEFAULT_VERSION
    assert channel_api_version(None) == DEFAULT_VERSION
