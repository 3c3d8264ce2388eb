"""Shopify Admin API versions and the dates Shopify stops supporting them (data).

Source: Shopify's documented release schedule, https://shopify.dev/docs/api/usage/versioning
("Release schedule"): a stable version is released every three months at the
start of a quarter (named YYYY-MM after its release month) and "is supported for
a minimum of 12 months"; the page's example table gives 2023-01 as released
January 1, 2023 and supported until January 1, 2024. The rows below apply that
rule to the versions released so far. A version can stay reachable a little
longer, but only the date below is promised, so pimsync warns against it.

Pure data and date arithmetic: the connector, the channel form and the admin
read it; nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from enum import StrEnum


@dataclass(frozen=True)
class ApiVersion:
    name: str  # "2026-01"
    released: date
    supported_until: date  # the first day Shopify no longer promises it


def _quarterly(year: int, month: int) -> ApiVersion:
    return ApiVersion(f"{year}-{month:02d}", date(year, month, 1), date(year + 1, month, 1))


VERSIONS: dict[str, ApiVersion] = {
    v.name: v
    for v in (
        _quarterly(2025, 1),
        _quarterly(2025, 4),
        _quarterly(2025, 7),
        _quarterly(2025, 10),
        _quarterly(2026, 1),
        _quarterly(2026, 4),
        _quarterly(2026, 7),
        _quarterly(2026, 10),
    )
}

# The version whose schema pimsync's documents are checked against
# (sandbox/contracts/shopify_2026-01.graphql); a newer one needs its schema first.
DEFAULT_VERSION = "2026-01"
# The channel page and list warn this long before the version is retired.
RETIREMENT_WARNING_DAYS = 60


class VersionState(StrEnum):
    SUPPORTED = "supported"
    RETIRING = "retiring"  # within RETIREMENT_WARNING_DAYS of its end of support
    RETIRED = "retired"
    UNKNOWN = "unknown"  # not a version in the table (a typo, or newer than the table)


@dataclass(frozen=True)
class VersionStatus:
    version: str
    state: VersionState
    supported_until: date | None
    days_left: int | None

    @property
    def needs_attention(self) -> bool:
        return self.state is not VersionState.SUPPORTED

    @property
    def message(self) -> str:
        if self.state is VersionState.UNKNOWN:
            known = ", ".join(VERSIONS)
            return f"Admin API {self.version} is not a known Shopify version ({known})"
        until = f"{self.supported_until:%Y-%m-%d}"
        if self.state is VersionState.RETIRED:
            return (
                f"Admin API {self.version} was retired on {until}: Shopify answers with its "
                "oldest supported version; choose a supported api_version"
            )
        if self.state is VersionState.RETIRING:
            return (
                f"Admin API {self.version} is supported until {until} ({self.days_left} days "
                "left): move the channel to a newer api_version before then"
            )
        return f"Admin API {self.version}, supported until {until}"


def version_status(version: str, *, today: date) -> VersionStatus:
    """Where ``version`` stands on ``today`` against Shopify's schedule."""
    known = VERSIONS.get(version)
    if known is None:
        return VersionStatus(version, VersionState.UNKNOWN, None, None)
    days_left = (known.supported_until - today).days
    if days_left <= 0:
        state = VersionState.RETIRED
    elif days_left <= RETIREMENT_WARNING_DAYS:
        state = VersionState.RETIRING
    else:
        state = VersionState.SUPPORTED
    return VersionStatus(version, state, known.supported_until, days_left)


def channel_api_version(platform_config: object) -> str:
    """The version a Shopify channel uses: platform_config["api_version"], else the default."""
    if isinstance(platform_config, Mapping):
        value = platform_config.get("api_version")
        if isinstance(value, str) and value.strip():
            return value.strip()
    return DEFAULT_VERSION


def api_version_problem(platform_config: object) -> str:
    """Why a Shopify channel's platform_config cannot be saved ("" when it can).

    A retired version still answers (Shopify falls forward to its oldest supported
    one), so it only draws a warning; a version Shopify never released is refused.
    """
    version = channel_api_version(platform_config)
    if version in VERSIONS:
        return ""
    return f"api_version: {VersionStatus(version, VersionState.UNKNOWN, None, None).message}"
