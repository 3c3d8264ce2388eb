"""Idempotency-Key: a retried write is answered again, never applied twice."""

from __future__ import annotations

import pytest

from inventory.models import StockLevel, StockMovement
from pimsync.models import ApiIdempotencyKey

pytestmark = pytest.mark.django_db

RECEIVE = {"sku": "TEE-S", "location": "main", "reason": "receive", "quantity": 5}


def _on_hand(sku: str = "TEE-S", code: str = "main") -> int:
    return StockLevel.objects.get(variant__sku=sku, location__code=code).on_hand


def _post(client, body, key, path="/api/v1/stock-movements/"):
    headers = {"HTTP_IDEMPOTENCY_KEY": key} if key is not None else {}
    return client.post(path, body, format="json", **headers)


def test_same_key_and_body_twice_replays_the_first_response(catalog, integrator_api):
    first = _post(integrator_api, RECEIVE, "po-1")
    second = _post(integrator_api, RECEIVE, "po-1")

    assert first.status_code == second.status_code == 201
    assert second.json() == first.json()
    assert second["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first
    assert _on_hand() == 15
    assert StockMovement.objects.filter(source="api").count() == 1


def test_key_order_and_whitespace_of_the_body_do_not_matter(catalog, integrator_api):
    _post(integrator_api, RECEIVE, "po-1")
    reordered = integrator_api.post(
        "/api/v1/stock-movements/",
        '{ "quantity": 5, "reason": "receive",\n "location": "main", "sku": "TEE-S" }',
        content_type="application/json",
        HTTP_IDEMPOTENCY_KEY="po-1",
    )
    assert reordered.status_code == 201
    assert reordered["Idempotent-Replayed"] == "true"
    assert _on_hand() == 15


def test_same_key_different_body_is_409_and_changes_nothing(catalog, integrator_api):
    _post(integrator_api, RECEIVE, "po-1")
    conflict = _post(integrator_api, {**RECEIVE, "quantity": 6}, "po-1")

    assert conflict.status_code == 409
    assert conflict.json()["error"]["code"] == "idempotency_conflict"
    assert _on_hand() == 15


def test_same_key_on_another_endpoint_is_409(catalog, integrator_api):
    _post(integrator_api, RECEIVE, "k")
    other = _post(
        integrator_api,
        {"sku": "TEE-S", "location": "main", "counted_on_hand": 3},
        "k",
        path="/api/v1/cycle-counts/",
    )
    assert other.status_code == 409
    assert _on_hand() == 15


def test_keys_belong_to_their_user(catalog, client_for, make_user):
    from rest_framework.test import APIClient

    from pimsync.api.roles import user_api_token, user_roles_set

    other_user = make_user("other")
    user_roles_set(user=other_user, roles=["integrator"])
    other = APIClient()
    other.credentials(HTTP_AUTHORIZATION=f"Token {user_api_token(user=other_user)}")

    assert _post(client_for("integrator"), RECEIVE, "same").status_code == 201
    assert _post(other, RECEIVE, "same").status_code == 201
    assert _on_hand() == 20


def test_a_failed_request_leaves_the_key_free_for_a_corrected_retry(catalog, integrator_api):
    too_many = {"sku": "TEE-S", "location": "main", "reason": "sale", "quantity": -50}
    refused = _post(integrator_api, too_many, "sale-1")
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "insufficient_stock"
    assert not ApiIdempotencyKey.objects.exists()

    corrected = _post(integrator_api, {**too_many, "quantity": -2}, "sale-1")
    assert corrected.status_code == 201
    assert _on_hand() == 8


def test_missing_or_malformed_key_is_400(catalog, integrator_api):
    missing = _post(integrator_api, RECEIVE, None)
    too_long = _post(integrator_api, RECEIVE, "x" * 201)
    assert (missing.status_code, too_long.status_code) == (400, 400)
    assert missing.json()["error"]["code"] == "idempotency_key_required"
    assert too_long.json()["error"]["code"] == "invalid_idempotency_key"
    assert _on_hand() == 10


@pytest.mark.parametrize(
    ("path", "body"),
    [
        (
            "/api/v1/transfers/",
            {"sku": "TEE-S", "from_location": "main", "to_location": "store", "quantity": 4},
        ),
        ("/api/v1/cycle-counts/", {"sku": "TEE-S", "location": "main", "counted_on_hand": 6}),
        ("/api/v1/reservations/", {"sku": "TEE-S", "location": "main", "quantity": 4}),
        (
            "/api/v1/bulk/stock-movements/",
            {"movements": [RECEIVE, {**RECEIVE, "sku": "TEE-M"}]},
        ),
    ],
)
def test_every_stock_write_replays(catalog, integrator_api, path, body):
    first = _post(integrator_api, body, "once", path=path)
    ledger = StockMovement.objects.count()
    second = _post(integrator_api, body, "once", path=path)

    assert first.status_code == 201
    assert (second.status_code, second.json()) == (201, first.json())
    assert StockMovement.objects.count() == ledger


def test_a_key_whose_stored_response_was_purged_still_applies_once(catalog, integrator_api):
    from pimsync.api.idempotency import api_idempotency_purge

    _post(integrator_api, RECEIVE, "po-9")
    ApiIdempotencyKey.objects.update(created_at="2000-01-01T00:00:00Z")
    assert api_idempotency_purge(older_than_days=7) == 1

    again = _post(integrator_api, RECEIVE, "po-9")
    assert again.status_code == 200  # the ledger already holds this change
    assert _on_hand() == 15


def test_a_purged_reservation_key_reused_for_another_hold_is_409(catalog, integrator_api):
    from pimsync.api.idempotency import api_idempotency_purge

    hold = {"sku": "TEE-S", "location": "main", "quantity": 1}
    first = _post(integrator_api, hold, "cart-7", path="/api/v1/reservations/")
    ApiIdempotencyKey.objects.update(created_at="2000-01-01T00:00:00Z")
    assert api_idempotency_purge(older_than_days=7) == 1

    changed = _post(integrator_api, {**hold, "quantity": 3}, "cart-7", path="/api/v1/reservations/")
    same = _post(integrator_api, hold, "cart-7", path="/api/v1/reservations/")

    assert (first.status_code, changed.status_code) == (201, 409)
    assert changed.json()["error"]["code"] == "idempotency_conflict"
    assert (same.status_code, same.json()["id"]) == (201, first.json()["id"])
    assert StockLevel.objects.get(variant__sku="TEE-S", location__code="main").reserved == 1
