"""HTTP requests checked against an OpenAPI 3 / Swagger 2 document (jsonschema, $refs resolved).

:class:`OpenApiContract` loads one trimmed definition (sandbox/contracts/*.json)
and, for an operation named by its operationId, lists what is wrong with a
request as :class:`Problem` values; each platform module renders them in its
own error shape. Checked:

* the path against the operation's template (path parameters typed);
* query parameters: unknown ones, required ones missing, a value given twice,
  and each value against its schema after the wire coercion (integers,
  booleans, comma-separated arrays);
* required header parameters present (the value is the platform's business);
* the JSON body: present when required, parseable, and valid against its
  schema; a form body (``application/x-www-form-urlencoded``, the OAuth token
  endpoints) sent as a form, each field once, valid against its schema.
  Objects that list their properties are closed (no other property
  accepted): the platforms often ignore an unknown field, which for pimsync
  means a misspelt field silently does nothing - the sandbox refuses it.

:meth:`OpenApiContract.check_response` validates one of the sandbox's own
answers against the operation's documented response, the same way.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any
from urllib.parse import parse_qs, unquote

from jsonschema import Draft4Validator, Draft7Validator
from jsonschema.exceptions import ValidationError
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4, DRAFT7

JsonDict = dict[str, Any]
JSON_MEDIA = "application/json"
FORM_MEDIA = "application/x-www-form-urlencoded"
DOCUMENT_URI = "urn:pimsync:contract"
HTTP_METHODS = ("get", "put", "post", "delete", "patch")
# Swagger 2 parameter keys that are JSON Schema keywords.
SCHEMA_KEYS = (
    "type",
    "format",
    "items",
    "enum",
    "maximum",
    "minimum",
    "exclusiveMaximum",
    "exclusiveMinimum",
    "maxLength",
    "minLength",
    "pattern",
    "maxItems",
    "minItems",
    "uniqueItems",
    "default",
)


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a request: where (path/query/header/body), what, why."""

    location: str
    name: str  # the parameter, or the body path ("requests/0/offers/0/price")
    message: str
    value: Any = None

    @property
    def path_parts(self) -> list[str]:
        return [part for part in self.name.split("/") if part]


@dataclass(frozen=True)
class Operation:
    operation_id: str
    method: str
    template: str  # the full path, base path included
    pattern: re.Pattern[str]
    parameters: tuple[JsonDict, ...]
    body_schema: JsonDict | None
    body_required: bool
    responses: Mapping[str, Any] = field(default_factory=dict)
    body_media: str = JSON_MEDIA  # or FORM_MEDIA (OAuth token endpoints)

    def params(self, location: str) -> dict[str, JsonDict]:
        return {p["name"]: p for p in self.parameters if p.get("in") == location}


class OpenApiContract:
    def __init__(self, document: Mapping[str, Any], *, closed: bool = True) -> None:
        self.document: JsonDict = copy.deepcopy(dict(document))
        if closed:
            _close_objects(self.document)
        self.swagger2 = "swagger" in self.document
        spec = DRAFT4 if self.swagger2 or "openapi" in self.document else DRAFT7
        self.registry: Registry = Registry().with_resource(
            DOCUMENT_URI, Resource(contents=self.document, specification=spec)
        )
        self._validator_class = Draft4Validator if spec is DRAFT4 else Draft7Validator
        self.base_path = self._base_path()
        self.operations: dict[str, Operation] = {}
        for path, item in self.document.get("paths", {}).items():
            shared = [self._deref(p) for p in item.get("parameters", [])]
            for method in HTTP_METHODS:
                if method in item:
                    operation = self._operation(method, path, item[method], shared)
                    self.operations[operation.operation_id] = operation

    # ------------------------------------------------------------------ loading

    def _base_path(self) -> str:
        if self.swagger2:
            return str(self.document.get("basePath") or "").rstrip("/")
        for server in self.document.get("servers", []):
            base = (server.get("variables") or {}).get("basePath", {}).get("default")
            if base:
                return str(base).rstrip("/")
        return ""

    def _deref(self, value: Any) -> Any:
        while isinstance(value, Mapping) and "$ref" in value:
            ref = str(value["$ref"])
            node: Any = self.document
            for part in ref.removeprefix("#/").split("/"):
                node = node[part]
            value = node
        return value

    def _operation(
        self, method: str, path: str, spec: Mapping[str, Any], shared: list[JsonDict]
    ) -> Operation:
        own = [self._deref(p) for p in spec.get("parameters", [])]
        by_key = {(p["in"], p["name"]): p for p in [*shared, *own]}
        body_schema, body_required = None, False
        body = next((p for p in by_key.values() if p["in"] == "body"), None)
        if body is not None:
            body_schema, body_required = body.get("schema"), bool(body.get("required"))
        body_media = JSON_MEDIA
        request_body = self._deref(spec.get("requestBody"))
        if isinstance(request_body, Mapping):
            content = request_body.get("content") or {}
            body_media = (
                JSON_MEDIA if JSON_MEDIA in content or FORM_MEDIA not in content else FORM_MEDIA
            )
            media = content.get(body_media) or {}
            body_schema, body_required = media.get("schema"), bool(request_body.get("required"))
        template = self.base_path + path
        regex = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(template))
        return Operation(
            operation_id=str(spec["operationId"]),
            method=method.upper(),
            template=template,
            pattern=re.compile(regex),
            parameters=tuple(p for p in by_key.values() if p["in"] != "body"),
            body_schema=body_schema,
            body_required=body_required,
            responses=spec.get("responses", {}),
            body_media=body_media,
        )

    def operation(self, operation_id: str) -> Operation | None:
        return self.operations.get(operation_id)

    # ------------------------------------------------------------------ checks

    def validator(self, schema: Mapping[str, Any]) -> Any:
        return self._validator_class(dict(schema), registry=self.registry)

    def schema_problems(
        self, schema: Mapping[str, Any], value: Any, *, location: str, name: str = ""
    ) -> list[Problem]:
        anchored = _anchor(schema)
        problems = []
        for error in sorted(self.validator(anchored).iter_errors(value), key=_error_order):
            where = "/".join(str(part) for part in error.absolute_path)
            full = "/".join(part for part in (name, where) if part)
            problems.append(Problem(location, full, _message(error), error.instance))
        return problems

    def check_request(
        self,
        operation: Operation,
        *,
        path: str,
        query: Mapping[str, Sequence[str]],
        headers: Mapping[str, str],
        body: bytes,
    ) -> list[Problem]:
        problems: list[Problem] = []
        found = operation.pattern.fullmatch(path)
        if found is None:
            return [Problem("path", path, f"does not match {operation.template}")]
        for name, spec in operation.params("path").items():
            raw = unquote(found.group(name)) if name in found.groupdict() else ""
            problems += self._param_problems(spec, [raw], "path")
        known = operation.params("query")
        problems += [
            Problem("query", name, "is not a parameter of this operation")
            for name in query
            if name not in known
        ]
        for name, spec in known.items():
            values = list(query.get(name, []))
            if not values:
                if spec.get("required"):
                    problems.append(Problem("query", name, "is required"))
                continue
            problems += self._param_problems(spec, values, "query")
        lowered = {k.lower() for k in headers}
        for name, spec in operation.params("header").items():
            if spec.get("required") and name.lower() not in lowered:
                problems.append(Problem("header", name, "is required"))
        if operation.body_media == FORM_MEDIA:
            return problems + self._form_problems(operation, headers, body)
        problems += self._body_problems(operation, body)
        return problems

    def _form_problems(
        self, operation: Operation, headers: Mapping[str, str], body: bytes
    ) -> list[Problem]:
        """A form body: sent as a form, each field once, and valid against its schema."""
        content_type = next((v for k, v in headers.items() if k.lower() == "content-type"), "")
        if not content_type.lower().startswith(FORM_MEDIA):
            return [Problem("header", "Content-Type", f"must be {FORM_MEDIA}", content_type)]
        fields = parse_qs(body.decode("utf-8", errors="replace"), keep_blank_values=True)
        repeated = [
            Problem("body", name, "is given more than once")
            for name, values in fields.items()
            if len(values) > 1
        ]
        if repeated:
            return repeated
        if not fields and operation.body_required:
            return [Problem("body", "", "a form body is required")]
        value = {name: values[0] for name, values in fields.items()}
        return self.schema_problems(operation.body_schema or {}, value, location="body")

    def _param_problems(
        self, spec: Mapping[str, Any], values: list[str], where: str
    ) -> list[Problem]:
        name = str(spec["name"])
        schema = dict(spec.get("schema") or {k: spec[k] for k in SCHEMA_KEYS if k in spec})
        is_array = schema.get("type") == "array"
        if not is_array and len(values) > 1:
            return [Problem(where, name, "is given more than once", values)]
        try:
            value = _coerce(schema, values, spec.get("collectionFormat", "csv"))
        except ValueError as exc:
            return [Problem(where, name, str(exc), values[0] if len(values) == 1 else values)]
        return self.schema_problems(schema, value, location=where, name=name)

    def _body_problems(self, operation: Operation, body: bytes) -> list[Problem]:
        if operation.body_schema is None:
            if body.strip():
                return [Problem("body", "", "this operation takes no request body")]
            return []
        if not body.strip():
            return (
                [Problem("body", "", "a JSON body is required")] if operation.body_required else []
            )
        try:
            value = json.loads(body)
        except ValueError:
            return [Problem("body", "", "is not valid JSON")]
        return self.schema_problems(operation.body_schema, value, location="body")

    def check_response(self, operation: Operation, status: int, body: bytes) -> list[Problem]:
        """Does one of the sandbox's answers match the documented response?"""
        spec = operation.responses.get(str(status)) or operation.responses.get("default")
        if spec is None:
            return [Problem("response", str(status), "is not a documented status")]
        spec = self._deref(spec)
        schema = spec.get("schema")
        if schema is None:
            media = (spec.get("content") or {}).get("application/json") or {}
            schema = media.get("schema")
        if schema is None or not body.strip():
            return []
        try:
            value = json.loads(body)
        except ValueError:
            return [Problem("response", "", "is not valid JSON")]
        return self.schema_problems(schema, value, location="response")


# ---------------------------------------------------------------------- helpers


@lru_cache(maxsize=16)
def load_contract(path: str) -> OpenApiContract:
    with open(path, encoding="utf-8") as handle:
        return OpenApiContract(json.load(handle))


def _anchor(schema: Mapping[str, Any]) -> JsonDict:
    """Local $refs ("#/definitions/X") resolve inside the contract document."""
    text = json.dumps(schema)
    return json.loads(text.replace('"$ref": "#/', f'"$ref": "{DOCUMENT_URI}#/'))


COMBINATORS = ("oneOf", "anyOf", "allOf", "not")


def _close_objects(node: Any, *, in_combinator: bool = False) -> None:
    """Objects that list their properties accept no others (unless they say so).

    A schema combined with others (oneOf/anyOf/allOf, or a branch of one) stays
    open: closing a branch would refuse the properties the other parts define.
    """
    if isinstance(node, list):
        for item in node:
            _close_objects(item, in_combinator=in_combinator)
        return
    if not isinstance(node, dict):
        return
    combined = any(key in node for key in COMBINATORS)
    properties = node.get("properties")
    if (
        isinstance(properties, dict)
        and not in_combinator
        and not combined
        and "additionalProperties" not in node
        and node.get("type", "object") == "object"
    ):
        node["additionalProperties"] = False
    for key, value in node.items():
        if key in COMBINATORS:
            _close_objects(value, in_combinator=True)
        elif key == "properties" and isinstance(value, dict):
            for schema in value.values():
                _close_objects(schema)
        else:
            _close_objects(value)


def _coerce(schema: Mapping[str, Any], values: list[str], collection_format: str) -> Any:
    """A query/path value as the platform reads it off the wire."""
    kind = schema.get("type")
    if kind == "array":
        parts = values if collection_format == "multi" or len(values) > 1 else values[0].split(",")
        items = schema.get("items") or {}
        return [_coerce(items, [part], "csv") for part in parts]
    raw = values[0]
    if kind == "integer":
        try:
            return int(raw)
        except ValueError:
            raise ValueError(f"{raw!r} is not an integer") from None
    if kind == "number":
        try:
            return float(raw)
        except ValueError:
            raise ValueError(f"{raw!r} is not a number") from None
    if kind == "boolean":
        if raw.lower() not in ("true", "false", "1", "0"):
            raise ValueError(f"{raw!r} is not a boolean")
        return raw.lower() in ("true", "1")
    return raw


def _error_order(error: ValidationError) -> list[str]:
    return [str(part) for part in error.absolute_path]


def _message(error: ValidationError) -> str:
    if error.validator == "additionalProperties":
        extra = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        return f"unknown field(s) {', '.join(extra)}" if extra else error.message
    return error.message
