"""OpenAPI: tags per area, and the one error shape documented on every operation."""

from __future__ import annotations

from typing import Any

from drf_spectacular.openapi import AutoSchema

ERROR_STATUSES = {
    "400": "Invalid input: malformed JSON, failed validation (details name the fields or rows)",
    "401": "No or invalid credentials",
    "403": "Authenticated, but the role does not allow this request",
    "404": "No such object or endpoint",
    "405": "Method not allowed here",
    "406": "Cannot answer in the requested format",
    "409": "Conflicts with the current state (idempotency key reused, not enough stock, ...)",
    "415": "Body is not application/json",
    "429": "Too many requests for this user; see Retry-After",
}

ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message", "details"],
            "properties": {
                "code": {"type": "string", "example": "not_found"},
                "message": {"type": "string", "example": "Not found."},
                "details": {
                    "description": "Field errors, row errors or other context; {} when none",
                    "type": "object",
                    "additionalProperties": True,
                },
            },
        }
    },
}


class ApiAutoSchema(AutoSchema):
    def get_tags(self) -> list[str]:
        tag = getattr(self.view, "api_tag", None)
        return [tag] if tag else super().get_tags()


def add_error_responses(result: dict[str, Any], generator: Any, **kwargs: Any) -> dict[str, Any]:
    """Every operation may answer the error statuses, always in the ApiError shape."""
    result.setdefault("components", {}).setdefault("schemas", {})["ApiError"] = ERROR_SCHEMA
    ref = {"$ref": "#/components/schemas/ApiError"}
    for path_item in result.get("paths", {}).values():
        for operation in path_item.values():
            responses = operation.setdefault("responses", {})
            for status, description in ERROR_STATUSES.items():
                responses.setdefault(
                    status,
                    {"description": description, "content": {"application/json": {"schema": ref}}},
                )
    return result
