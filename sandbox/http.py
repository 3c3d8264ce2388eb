"""The wire as a platform handler sees it: requests, responses, routes, and how
values are written on it (timestamps, money, HMAC signatures)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import parse_qs

JsonDict = dict[str, Any]
Handler = Callable[["Request"], "Response"]


def utcnow() -> datetime:
    return datetime.now(tz=UTC)


def iso(dt: datetime) -> str:
    """ISO-8601 in UTC with a Z suffix and whole seconds (what the platforms render)."""
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso(value: str) -> datetime:
    """Parse ISO-8601 (``Z`` or offset; naive values are taken as UTC)."""
    parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def hmac_sha256_base64(secret: str, body: bytes) -> str:
    """base64(HMAC-SHA256(secret, body)): how Shopify and WooCommerce sign webhooks."""
    digest = hmac.new(secret.encode(), body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def money(value: Decimal | None) -> str | None:
    return None if value is None else f"{value:.2f}"


def to_decimal(value: Any) -> Decimal:
    try:
        return Decimal(str(value))
    except (InvalidOperation, ValueError) as exc:
        raise ValueError(f"not a decimal: {value!r}") from exc


@dataclass
class Request:
    """One request as a platform sees it (path without the platform prefix)."""

    method: str
    path: str
    query: dict[str, list[str]] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)  # keys lower-cased
    body: bytes = b""
    params: dict[str, str] = field(default_factory=dict)  # named groups of the route regex
    route_name: str = ""
    contract: Any = None  # what the contract check made of the request (Shopify: the document)

    @classmethod
    def build(cls, method: str, target: str, headers: Mapping[str, str], body: bytes) -> Request:
        path, _, query = target.partition("?")
        return cls(
            method=method.upper(),
            path=path,
            query=parse_qs(query, keep_blank_values=True),
            headers={k.lower(): v for k, v in headers.items()},
            body=body,
        )

    def header(self, name: str, default: str = "") -> str:
        return self.headers.get(name.lower(), default)

    def arg(self, name: str, default: str = "") -> str:
        values = self.query.get(name)
        return values[0] if values else default

    def json(self) -> Any:
        """The body as JSON; a malformed body is the platform's 400."""
        try:
            return json.loads(self.body or b"null")
        except ValueError as exc:
            raise ApiError(Response.json(400, {"error": "malformed JSON body"})) from exc


@dataclass
class Response:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds to wait before answering (simulated timeout)

    @classmethod
    def json(cls, status: int, payload: Any, headers: Mapping[str, str] | None = None) -> Response:
        all_headers = {"Content-Type": "application/json; charset=utf-8", **(headers or {})}
        return cls(status, json.dumps(payload, default=str).encode(), all_headers)

    @classmethod
    def text(cls, status: int, text: str, content_type: str = "text/plain") -> Response:
        return cls(status, text.encode(), {"Content-Type": f"{content_type}; charset=utf-8"})

    def payload(self) -> Any:
        return json.loads(self.body)


class ApiError(Exception):
    """Raised inside a handler to answer with ``response`` at once.

    ``refusal`` says the platform refuses the request as malformed (a limit, a
    window, a rule of its definition): the sandbox records it like a contract
    refusal, so a test can assert that pimsync sent nothing the platform refuses.
    """

    def __init__(self, response: Response, *, refusal: str | Sequence[str] = "") -> None:
        super().__init__(f"HTTP {response.status}")
        self.response = response
        reasons = [refusal] if isinstance(refusal, str) else list(refusal)
        self.refusal = [reason for reason in reasons if reason]


@dataclass(frozen=True)
class Route:
    method: str
    pattern: re.Pattern[str]
    handler: Handler
    name: str
    limit_key: str | None = "default"
