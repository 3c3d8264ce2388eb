"""A poll that cannot reach back as far as its cursor: loud, never a silent skip.

A platform serves order changes only so far back (eBay's getOrders: two
years). When pimsync's cursor is older than that (a channel paused for a long
time), the connector refuses with ``connectors.errors.POLL_WINDOW_EXCEEDED`` instead of quietly
starting later; the poll stops, keeps its cursor and raises a ``poll_gap``
alert saying which period cannot be read. A person checks those orders on the
channel and then restarts polling from a date they choose.
"""

from __future__ import annotations

from datetime import datetime

from django.db import transaction

from synclog import services as synclog
from synclog.models import Alert

from ..connectors.errors import ConnectorError
from ..connectors.http import format_timestamp
from ..models import Channel, ChannelSyncState


def poll_window_alert(*, channel: Channel, error: ConnectorError) -> Alert:
    """Open (or count) the channel's poll_gap alert with the connector's explanation."""
    return synclog.alert_raise(
        kind=Alert.Kind.POLL_GAP,
        channel_id=channel.pk,
        severity=Alert.Severity.CRITICAL,
        message=f"Order polling of {channel.name} is stopped: {error.message}",
        source="poll",
    )


def channel_poll_restart(*, channel: Channel, since: datetime) -> str:
    """Start the channel's next poll at ``since`` (a person has settled what came
    before it on the channel) and resolve its poll_gap alert. Returns the cursor."""
    cursor = format_timestamp(since)
    with transaction.atomic():
        state, _ = ChannelSyncState.objects.select_for_update().get_or_create(channel=channel)
        state.poll_cursor = cursor
        state.save(update_fields=["poll_cursor"])
    synclog.alert_resolve(kind=Alert.Kind.POLL_GAP, channel_id=channel.pk)
    return cursor
