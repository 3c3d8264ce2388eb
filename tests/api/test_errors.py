"""One JSON error shape for every error, and no input that makes the API answer 500."""

from __future__ import annotations

import pytest
from django.test.utils import override_settings
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db


def _error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == code
    assert body["error"]["message"]
    return body["error"]


def test_malformed_json_is_400_parse_error(catalog, staff_api):
    response = staff_api.post("/api/v1/products/", "{nope", content_type="application/json")
    _error(response, 400, "parse_error")


def test_validation_errors_name_the_fields(catalog, staff_api):
    response = staff_api.post("/api/v1/variants/", {"sku": "", "price": "x"}, format="json")
    error = _error(response, 400, "invalid")
    assert set(error["details"]["fields"]) >= {"sku", "price", "product"}


def test_model_validation_from_a_service_is_400(catalog, staff_api):
    both = {"variant": catalog["variants"][0].pk, "product": catalog["product"].pk, "value": "1"}
    error = _error(staff_api.post("/api/v1/buffer-rules/", both, format="json"), 400, "invalid")
    assert "not both" in error["message"]


def test_unauthenticated_and_bad_token_are_401():
    anonymous = APIClient()
    _error(anonymous.get("/api/v1/variants/"), 401, "not_authenticated")
    anonymous.credentials(HTTP_AUTHORIZATION="Token not-a-real-token")
    _error(anonymous.get("/api/v1/variants/"), 401, "authentication_failed")


def test_forbidden_is_403(catalog, client_for):
    _error(client_for("merchandiser").get("/api/v1/sync-log/"), 403, "permission_denied")


@pytest.mark.parametrize("method", ["get", "post", "put", "delete"])
def test_unknown_paths_under_api_are_json_404(staff_api, method):
    _error(getattr(staff_api, method)("/api/v1/no-such-thing/1.5/"), 404, "not_found")


def test_unknown_object_is_404(catalog, staff_api):
    _error(staff_api.get("/api/v1/variants/987654/"), 404, "not_found")
    _error(staff_api.get("/api/v1/variants/99999999999999999999999999/"), 404, "not_found")


def test_method_not_allowed_is_405(catalog, staff_api):
    _error(staff_api.delete("/api/v1/stock-levels/"), 405, "method_not_allowed")
    _error(staff_api.get("/api/v1/bulk/prices/"), 405, "method_not_allowed")


def test_non_json_body_is_415(catalog, staff_api):
    response = staff_api.post(
        "/api/v1/products/", "title=x", content_type="application/x-www-form-urlencoded"
    )
    _error(response, 415, "unsupported_media_type")


def test_unacceptable_format_is_406(catalog, staff_api):
    _error(staff_api.get("/api/v1/products/", HTTP_ACCEPT="application/xml"), 406, "not_acceptable")


def test_conflict_is_409(catalog, staff_api):
    staff_api.post("/api/v1/reservations/1/commit/")
    reservation = staff_api.post(
        "/api/v1/reservations/",
        {"sku": "TEE-S", "location": "main", "quantity": 1},
        format="json",
        HTTP_IDEMPOTENCY_KEY="r",
    ).json()
    staff_api.post(f"/api/v1/reservations/{reservation['id']}/release/")
    response = staff_api.post(f"/api/v1/reservations/{reservation['id']}/commit/")
    _error(response, 409, "invalid_transition")


def test_a_product_with_stock_history_cannot_be_deleted(catalog, staff_api):
    response = staff_api.delete(f"/api/v1/products/{catalog['product'].pk}/")
    _error(response, 409, "protected")


@override_settings(PIMSYNC_API_RATE="3/minute")
def test_too_many_requests_is_429_with_retry_after(catalog, staff_api):
    for _ in range(3):
        assert staff_api.get("/api/v1/locations/").status_code == 200
    response = staff_api.get("/api/v1/locations/")
    error = _error(response, 429, "throttled")
    assert int(response["Retry-After"]) >= 1
    assert error["details"]["retry_after_seconds"] == int(response["Retry-After"])


@override_settings(PIMSYNC_API_BULK_RATE="1/minute")
def test_bulk_endpoints_have_their_own_lower_rate(catalog, client_for):
    merch = client_for("merchandiser")
    body = {"prices": [{"sku": "TEE-S", "price": "1.00"}]}
    assert merch.post("/api/v1/bulk/prices/", body, format="json").status_code == 200
    _error(merch.post("/api/v1/bulk/prices/", body, format="json"), 429, "throttled")
    assert merch.get("/api/v1/variants/").status_code == 200


@override_settings(PIMSYNC_API_RATE="2/minute")
def test_throttling_is_per_user(catalog, client_for):
    merch, ops = client_for("merchandiser"), client_for("ops")
    for _ in range(2):
        merch.get("/api/v1/locations/")
    assert merch.get("/api/v1/locations/").status_code == 429
    assert ops.get("/api/v1/locations/").status_code == 200


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/v1/products/", '{"title": "a\\u0000b", "handle": "ab"}'),
        ("/api/v1/products/", '{"title": "\\ud800", "handle": "ab"}'),
        ("/api/v1/channels/", '{"platform_config": {"k\\u0000": 1}}'),
        ("/api/v1/products/", "[1, 2, 3]"),
        ("/api/v1/products/", '"just a string"'),
        ("/api/v1/bulk/prices/", '{"prices": "all"}'),
        ("/api/v1/bulk/prices/", '{"prices": [null, 7, "x"]}'),
        ("/api/v1/bulk/stock-movements/", '{"movements": {"0": {}}}'),
        ("/api/v1/stock-movements/", '{"sku": ["TEE-S"], "quantity": 1e400}'),
        ("/api/v1/variants/", '{"product": 99999999999999999999999, "sku": "z", "price": "1"}'),
        ("/api/v1/variants/", '{"product": 1, "sku": "z", "price": "NaN"}'),
        ("/api/v1/variants/", '{"product": 1, "sku": "z", "price": "1e30"}'),
        ("/api/v1/variants/", '{"product": 1, "sku": "z", "price": "1", "options": {"a": []}}'),
        ("/api/v1/listings/", '{"channel": 1, "variant": 1, "price_override": "-5"}'),
        ("/api/v1/channels/1/push-now/", '{"skus": []}'),
        ("/api/v1/channels/1/push-now/", '{"skus": [""]}'),
    ],
)
def test_hostile_bodies_are_4xx_never_5xx(catalog, staff_api, path, body):
    response = staff_api.post(path, body, content_type="application/json", HTTP_IDEMPOTENCY_KEY="h")
    assert 400 <= response.status_code < 500, response.content
    assert set(response.json()["error"]) == {"code", "message", "details"}


@pytest.mark.parametrize(
    "query",
    [
        "/api/v1/variants/?product=1e300",
        "/api/v1/variants/?updated_since=yesterday",
        "/api/v1/variants/?cursor=garbage",
        "/api/v1/variants/?page_size=-1",
        "/api/v1/stock-levels/?available_lte=99999999999999999999999",
        "/api/v1/sync-log/?channel=%00",
        "/api/v1/sync-log/?sku=%00",
        "/api/v1/orders/?placed_after=0000-00-00",
        "/api/v1/alerts/?is_open=maybe",
        # PostgreSQL refuses offsets beyond ±15:59; these instants do not exist in UTC.
        "/api/v1/reconciliation-runs/?started_after=4235-09-02T04:07:13.32-23:51",
        "/api/v1/sync-log/?created_after=0001-01-01T00:00:00%2B05:00",
        "/api/v1/variants/?updated_since=9999-12-31T23:59:59-05:00",
    ],
)
def test_hostile_queries_are_answered_without_5xx(catalog, staff_api, query):
    response = staff_api.get(query)
    assert response.status_code < 500, response.content
    if response.status_code >= 400:
        assert set(response.json()["error"]) == {"code", "message", "details"}


def test_a_throttle_store_that_is_down_lets_requests_through(catalog, staff_api):
    from unittest import mock

    class DownCache:
        def get(self, *args, **kwargs):
            raise ConnectionError("redis is down")

        set = get

    with mock.patch("pimsync.api.throttling.caches", {"api-throttle": DownCache()}):
        assert staff_api.get("/api/v1/locations/").status_code == 200
