"""Reconciliation end to end: real worker processes run the reconcile and verify
tasks against the sandbox over HTTP; a person edits 50 values in the channels'
consoles (the sandbox's control API) and the next run finds, fixes, reads back
and resolves exactly those."""

from __future__ import annotations

import random

import pytest

from channels_app import services
from channels_app.dispatch import sweep_due_channels
from channels_app.models import Channel, ChannelListing
from channels_app.sync.markers import listings_mark_dirty
from synclog.models import Alert, DriftFinding
from tests.support.e2e import (
    assert_every_channel_matches,
    build_catalog,
    control,
    wait_for_runs,
    wait_until_drained,
)

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
EDITS = 50


def edit_consoles(sandbox, rng: random.Random) -> dict[int, set[str]]:
    """50 edits spread over the five channels: a price here, a quantity there."""
    listings = list(ChannelListing.objects.select_related("variant", "channel"))
    picked = rng.sample(listings, EDITS)
    by_platform: dict[str, list[dict]] = {}
    changed: dict[int, set[str]] = {}
    for i, listing in enumerate(picked):
        edit = {"sku": listing.channel_sku}
        if i % 2:
            edit["price"] = "123.45"
        else:
            edit["quantity"] = rng.choice([0, 2, 999])
        by_platform.setdefault(listing.channel.platform, []).append(edit)
        changed.setdefault(listing.channel_id, set()).add(listing.variant.sku)
    control(sandbox, "POST", "values", by_platform)
    return changed


def test_fifty_console_edits_are_found_fixed_and_resolved_by_the_workers(
    sandbox_server, start_worker, settings
):
    # given: five channels in sync after a full push by the workers
    build_catalog(sandbox_server, n_variants=120)
    start_worker("rec", concurrency=2)
    listings_mark_dirty(ChannelListing.objects.all(), forced=True)
    wait_until_drained(sweep_due_channels, timeout=240)
    assert_every_channel_matches(sandbox_server)
    # and 50 values edited directly in the channels' consoles
    changed = edit_consoles(sandbox_server, random.Random(11))
    # when: "Reconcile now" on every channel
    requested = services.reconcile_request(channels=Channel.objects.all(), trigger="manual")
    run_ids = [run_id for _, run_id, _ in requested.started]
    assert len(run_ids) == 5
    runs = wait_for_runs(run_ids, timeout=240)
    # then: each run found exactly its channel's edits, fixed them and read them back
    for run in runs:
        expected = changed.get(run.channel_id, set())
        findings = DriftFinding.objects.filter(run=run)
        assert {f.sku for f in findings} == expected, run.channel
        assert (run.status, run.checked, run.errors) == ("finished", 120, 0), run.error_message
        assert run.drifted == run.fixed == len(expected)
        assert not findings.filter(resolved_at__isnull=True).exists()
    assert sum(r.drifted for r in runs) == sum(r.fixed for r in runs) == EDITS
    assert_every_channel_matches(sandbox_server)
    assert not Alert.objects.filter(kind="drift", resolved_at__isnull=True).exists()
