"""Concurrent requests with one Idempotency-Key, on PostgreSQL with real connections:
exactly one is applied; every other one gets the replay (or a 409 while in progress)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection
from rest_framework.test import APIClient

from inventory.models import StockLevel, StockMovement

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def _client(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    return client


@pytest.mark.parametrize(
    ("path", "body"),
    [
        (
            "/api/v1/stock-movements/",
            {"sku": "TEE-S", "location": "main", "reason": "receive", "quantity": 7},
        ),
        (
            "/api/v1/bulk/stock-movements/",
            {
                "movements": [
                    {"sku": "TEE-S", "location": "main", "reason": "receive", "quantity": 7}
                ]
            },
        ),
    ],
)
def test_eight_parallel_requests_with_one_key_apply_once(catalog, make_user, path, body):
    from pimsync.api.roles import user_api_token, user_roles_set

    user = make_user("integrator-pg")
    user_roles_set(user=user, roles=["integrator"])
    token = user_api_token(user=user)
    barrier = threading.Barrier(8)

    def send(_: int):
        try:
            client = _client(token)
            barrier.wait()
            response = client.post(path, body, format="json", HTTP_IDEMPOTENCY_KEY="same")
            return response.status_code, response.json(), response.get("Idempotent-Replayed")
        finally:
            connection.close()

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(send, range(8)))

    applied = [r for r in results if r[0] == 201 and r[2] is None]
    replayed = [r for r in results if r[0] == 201 and r[2] == "true"]
    in_progress = [r for r in results if r[0] == 409]
    assert len(applied) == 1
    assert len(applied) + len(replayed) + len(in_progress) == 8
    assert all(r[1] == applied[0][1] for r in replayed)
    assert StockMovement.objects.filter(source="api").count() == 1
    assert StockLevel.objects.get(variant__sku="TEE-S", location__code="main").on_hand == 17
