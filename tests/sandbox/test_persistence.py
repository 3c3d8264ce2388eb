"""The sandbox's state file: what a restart keeps, and when the seed file applies."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

from sandbox.server import start_sandbox
from tests.support.sandbox import control


def test_state_file_survives_a_restart_and_seed_file_is_loaded(
    tmp_path: Path, webhook_receiver
) -> None:
    seed_file = tmp_path / "seed.json"
    seed_file.write_text(
        json.dumps({"woocommerce": [{"sku": "A", "price": "5.00", "quantity": 4}]})
    )
    state_file = tmp_path / "state" / "sandbox.json"

    # first run: seeded from the seed file, then changed
    with start_sandbox(state_file=state_file, seed_file=seed_file) as first:
        assert first.platform("woocommerce").catalog.get("A").quantity == 4
        control(
            first.url, "POST", "/_control/values", {"woocommerce": [{"sku": "A", "quantity": 2}]}
        )
        control(
            first.url,
            "POST",
            "/_control/webhooks",
            {"woocommerce": {"url": webhook_receiver.url, "secret": "s"}},
        )
        status, created = control(
            first.url,
            "POST",
            "/_control/orders",
            {"platform": "woocommerce", "lines": [{"sku": "A", "quantity": 1}]},
        )
        assert status == 201

    # second run: the state wins over the seed file
    with start_sandbox(state_file=state_file, seed_file=seed_file) as second:
        platform = second.platform("woocommerce")
        assert platform.catalog.get("A").quantity == 1
        assert platform.catalog.get("A").price == Decimal("5.00")
        assert [o.id for o in platform.orders.all()] == [str(created["order"]["id"])]
        assert platform.webhook_target is not None
        assert platform.webhook_target.url == webhook_receiver.url
        # new ids never collide with restored ones
        assert platform.next_id() > int(created["order"]["id"])


def test_a_state_file_from_before_the_token_endpoints_keeps_its_credentials(
    tmp_path: Path,
) -> None:
    state_file = tmp_path / "sandbox.json"
    state_file.write_text(
        json.dumps({"platforms": {"ebay": {"credentials": {"access_token": "kept-token"}}}})
    )

    with start_sandbox(state_file=state_file) as restarted:
        credentials = restarted.platform("ebay").credentials

    assert credentials["access_token"] == "kept-token"
    assert credentials["client_id"] == "sandbox-ebay-client"  # the token endpoint's client
