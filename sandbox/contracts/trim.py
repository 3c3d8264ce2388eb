"""Trimming the platforms' definitions to what pimsync uses, and checking the copies.

Used by ``scripts/check_contracts.py`` (and its tests); the sandbox itself only
reads the trimmed files.

* :func:`trim_openapi` - an OpenAPI 3 / Swagger 2 document cut down to the
  operations named in its ``x-pimsync`` block and the definitions they reach by
  ``$ref``, with descriptions, summaries, examples and documentation-only
  extensions removed. A kept JSON copy is right when trimming the official file
  again gives exactly the copy (:func:`openapi_differences`). Where a definition's
  schema contradicts its own documented wire format, ``x-pimsync.corrections``
  (``[{"at": JSON pointer, "value": schema, "why": ...}]``) replaces that schema in
  the copy; each is applied again at every check, so it stays visible and named.
* :func:`trim_json_schema` - the same clean-up for a plain JSON Schema kept whole.
* :func:`trim_product_type` - an Amazon product type definition (a JSON Schema of
  listing attributes) cut to the attributes in ``x-pimsync.attributes`` and the
  conditional rules (``allOf`` entries, by position) in ``x-pimsync.rules``.
* :func:`sdl_differences` - a trimmed GraphQL SDL against the official schema:
  every kept type, field, argument, input field, default, interface, union
  member and enum value must exist there with the same type; every argument or
  input field the official schema requires must be kept; enums must be whole.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from typing import Any

from graphql import (
    GraphQLEnumType,
    GraphQLInputObjectType,
    GraphQLInterfaceType,
    GraphQLNamedType,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLScalarType,
    GraphQLUnionType,
    build_schema,
    print_ast,
)
from graphql.pyutils import Undefined

JsonDict = dict[str, Any]

# Keys that only document: dropped everywhere except where they name something.
DOC_KEYS = frozenset(
    {
        "description",
        "summary",
        "title",
        "example",
        "examples",
        "externalDocs",
        "tags",
        "$comment",
        "x-docgen-enum-table-extension",
        "x-amzn-api-sandbox",
        "x-response-codes",
        "x-codegen-request-body-name",
    }
)
# Maps whose keys are names (a property called "description" is data, not docs).
NAME_MAPS = frozenset(
    {
        "properties",
        "patternProperties",
        "definitions",
        "schemas",
        "parameters",
        "responses",
        "headers",
        "paths",
        "content",
        "securitySchemes",
        "scopes",
        "variables",
        "$defs",
    }
)
TOP_LEVEL_KEYS = (
    "swagger",
    "openapi",
    "host",
    "basePath",
    "schemes",
    "consumes",
    "produces",
    "servers",
    "security",
)
HTTP_METHODS = frozenset({"get", "put", "post", "delete", "patch", "head", "options"})


def strip_docs(value: Any, *, names: bool = False) -> Any:
    """``value`` without documentation keys; ``names`` marks a map keyed by names."""
    if isinstance(value, list):
        return [strip_docs(item) for item in value]
    if not isinstance(value, Mapping):
        return value
    return {
        key: strip_docs(item, names=key in NAME_MAPS and not names)
        for key, item in value.items()
        if names or key not in DOC_KEYS
    }


def _refs(value: Any) -> Iterator[str]:
    if isinstance(value, Mapping):
        ref = value.get("$ref")
        if isinstance(ref, str):
            yield ref
        for item in value.values():
            yield from _refs(item)
    elif isinstance(value, list):
        for item in value:
            yield from _refs(item)


def _resolve(document: Mapping[str, Any], ref: str) -> Any:
    if not ref.startswith("#/"):
        raise ValueError(f"only local $refs are supported, not {ref!r}")
    node: Any = document
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def trim_openapi(official: Mapping[str, Any], keep: Mapping[str, Any]) -> JsonDict:
    """The official document cut to ``keep["operations"]`` (operationIds) and what
    they reference, documentation removed, with ``keep`` as its ``x-pimsync`` block."""
    wanted = set(keep["operations"])
    paths: JsonDict = {}
    for path, item in official.get("paths", {}).items():
        methods = {
            method: operation
            for method, operation in item.items()
            if method in HTTP_METHODS and operation.get("operationId") in wanted
        }
        if not methods:
            continue
        kept = {k: v for k, v in item.items() if k not in HTTP_METHODS}
        kept.update(methods)
        paths[path] = kept
    found = {
        op.get("operationId")
        for item in paths.values()
        for op in item.values()
        if isinstance(op, Mapping)
    }
    missing = wanted - found
    if missing:
        raise ValueError(f"operations not in the official document: {sorted(missing)}")
    # Every definition reachable from the kept operations (and from those definitions).
    reached: set[str] = set()
    pending = list(_refs(paths))
    while pending:
        ref = pending.pop()
        if ref in reached:
            continue
        reached.add(ref)
        pending.extend(_refs(_resolve(official, ref)))
    trimmed: JsonDict = {"x-pimsync": dict(keep)}
    for key in TOP_LEVEL_KEYS:
        if key in official:
            trimmed[key] = copy.deepcopy(official[key])
    info = official.get("info", {})
    trimmed["paths"] = paths
    for ref in sorted(reached):
        parts = ref[2:].split("/")
        target = trimmed
        for part in parts[:-1]:
            target = target.setdefault(part, {})
        target[parts[-1]] = _resolve(official, ref)
    components = official.get("components", {})
    if "securitySchemes" in components:
        trimmed.setdefault("components", {})["securitySchemes"] = components["securitySchemes"]
    if "securityDefinitions" in official:
        trimmed["securityDefinitions"] = official["securityDefinitions"]
    stripped = strip_docs({k: v for k, v in trimmed.items() if k != "x-pimsync"})
    # The title names the API: kept although a documentation key elsewhere.
    stripped["info"] = {k: info[k] for k in ("title", "version") if k in info}
    for correction in keep.get("corrections", []):
        _set_pointer(stripped, str(correction["at"]), copy.deepcopy(correction["value"]))
    return {"x-pimsync": dict(keep), **_sorted_sections(stripped)}


def _set_pointer(document: JsonDict, pointer: str, value: Any) -> None:
    """Replace what the JSON pointer names (it must exist: a correction of nothing is
    an error, not a silent no-op)."""
    parts = [p.replace("~1", "/").replace("~0", "~") for p in pointer.lstrip("/").split("/")]
    node: Any = document
    for part in parts[:-1]:
        node = node[part]
    if parts[-1] not in node:
        raise KeyError(f"correction at {pointer}: nothing there to correct")
    node[parts[-1]] = value


def _sorted_sections(document: JsonDict) -> JsonDict:
    """Definitions in name order, so a re-trim yields the same file."""
    for section in ("definitions",):
        if section in document:
            document[section] = dict(sorted(document[section].items()))
    components = document.get("components")
    if isinstance(components, dict):
        for name, entries in components.items():
            components[name] = dict(sorted(entries.items()))
    return document


def trim_json_schema(official: Mapping[str, Any], keep: Mapping[str, Any]) -> JsonDict:
    """A plain JSON Schema kept whole, documentation removed."""
    return {"x-pimsync": dict(keep), **strip_docs(dict(official), names=False)}


def trim_product_type(official: Mapping[str, Any], keep: Mapping[str, Any]) -> JsonDict:
    """The definition with only the kept attributes (each whole), the required ones
    among them and the kept rules; documentation removed."""
    attributes = list(keep["attributes"])
    properties = official.get("properties", {})
    missing = [name for name in attributes if name not in properties]
    if missing:
        raise KeyError(f"attributes not in the official definition: {missing}")
    rules = official.get("allOf", [])
    trimmed: JsonDict = {
        key: copy.deepcopy(official[key])
        for key in ("$schema", "$id", "$defs", "type")
        if key in official
    }
    trimmed["required"] = [name for name in official.get("required", []) if name in attributes]
    trimmed["properties"] = {name: copy.deepcopy(properties[name]) for name in attributes}
    if "additionalProperties" in official:
        trimmed["additionalProperties"] = official["additionalProperties"]
    trimmed["allOf"] = [copy.deepcopy(rules[index]) for index in keep.get("rules", [])]
    return {"x-pimsync": dict(keep), **strip_docs(trimmed)}


def product_type_differences(kept: Mapping[str, Any], official: Mapping[str, Any]) -> list[str]:
    """Where the kept attributes differ from the official definition's ([] = same)."""
    keep = kept.get("x-pimsync") or {}
    try:
        expected = trim_product_type(official, keep)
    except (KeyError, IndexError) as exc:
        return [f"cannot trim the official definition: {exc}"]
    return json_differences(kept, expected)


def json_differences(kept: Any, expected: Any, path: str = "") -> list[str]:
    """Where two JSON values differ (JSON-pointer-ish paths), at most 20 lines."""
    found: list[str] = []
    _diff(kept, expected, path or "/", found)
    return found[:20]


def _diff(kept: Any, expected: Any, path: str, found: list[str]) -> None:
    if isinstance(kept, Mapping) and isinstance(expected, Mapping):
        for key in sorted(set(kept) | set(expected)):
            escaped = str(key).replace("~", "~0").replace("/", "~1")  # JSON Pointer
            where = f"{path.rstrip('/')}/{escaped}"
            if key not in expected:
                found.append(f"{where}: kept but not in the official definition")
            elif key not in kept:
                found.append(f"{where}: in the official definition, missing from the copy")
            else:
                _diff(kept[key], expected[key], where, found)
        return
    if isinstance(kept, list) and isinstance(expected, list) and len(kept) == len(expected):
        for index, (a, b) in enumerate(zip(kept, expected, strict=True)):
            _diff(a, b, f"{path.rstrip('/')}/{index}", found)
        return
    if kept != expected:
        found.append(f"{path}: copy has {kept!r:.80}, official has {expected!r:.80}")


def openapi_differences(kept: Mapping[str, Any], official: Mapping[str, Any]) -> list[str]:
    keep = kept.get("x-pimsync")
    if not isinstance(keep, Mapping) or "operations" not in keep:
        return ["/x-pimsync: missing (source and operations of the copy)"]
    try:
        expected = trim_openapi(official, keep)
    except (ValueError, KeyError) as exc:
        return [f"cannot trim the official document: {exc}"]
    return json_differences(kept, expected)


# ---------------------------------------------------------------------- GraphQL SDL


def sdl_differences(kept_sdl: str, official_sdl: str) -> list[str]:
    """What in the trimmed SDL is not exactly as in the official schema."""
    kept = build_schema(kept_sdl)
    official = build_schema(official_sdl)
    found: list[str] = []
    for role in ("query_type", "mutation_type", "subscription_type"):
        ours, theirs = getattr(kept, role), getattr(official, role)
        if ours is not None and (theirs is None or ours.name != theirs.name):
            found.append(f"schema {role}: {ours.name} is not the official root type")
    for name, type_ in kept.type_map.items():
        if name.startswith("__"):
            continue
        other = official.type_map.get(name)
        if other is None:
            found.append(f"{name}: no such type in the official schema")
            continue
        if type(other) is not type(type_):
            found.append(
                f"{name}: is a {_kind(type_)} here, a {_kind(other)} in the official schema"
            )
            continue
        found.extend(_type_differences(type_, other))
    for directive in kept.directives:
        theirs = official.get_directive(directive.name)
        if theirs is None:
            found.append(f"@{directive.name}: no such directive in the official schema")
            continue
        for arg_name, arg in directive.args.items():
            other_arg = theirs.args.get(arg_name)
            if other_arg is None or str(other_arg.type) != str(arg.type):
                found.append(f"@{directive.name}({arg_name}:): not as in the official schema")
    return found


def _kind(type_: GraphQLNamedType) -> str:
    return type(type_).__name__.removeprefix("GraphQL").removesuffix("Type").lower()


def _type_differences(ours: GraphQLNamedType, theirs: GraphQLNamedType) -> list[str]:
    name = ours.name
    found: list[str] = []
    if isinstance(ours, GraphQLEnumType) and isinstance(theirs, GraphQLEnumType):
        if list(ours.values) != list(theirs.values):
            extra = sorted(set(ours.values) - set(theirs.values))
            missing = sorted(set(theirs.values) - set(ours.values))
            found.append(f"{name}: enum values differ (extra {extra}, missing {missing})")
        return found
    if isinstance(ours, GraphQLUnionType) and isinstance(theirs, GraphQLUnionType):
        extra = {t.name for t in ours.types} - {t.name for t in theirs.types}
        if extra:
            found.append(f"{name}: union members {sorted(extra)} not in the official schema")
        return found
    if isinstance(ours, GraphQLScalarType):
        return found
    if isinstance(ours, GraphQLObjectType | GraphQLInterfaceType) and isinstance(
        theirs, GraphQLObjectType | GraphQLInterfaceType
    ):
        extra = {i.name for i in ours.interfaces} - {i.name for i in theirs.interfaces}
        if extra:
            found.append(f"{name}: implements {sorted(extra)}, the official type does not")
        for field_name, field in ours.fields.items():
            other = theirs.fields.get(field_name)
            where = f"{name}.{field_name}"
            if other is None:
                found.append(f"{where}: no such field in the official schema")
                continue
            if str(field.type) != str(other.type):
                found.append(f"{where}: type {field.type} here, {other.type} officially")
            found.extend(_argument_differences(where, field.args, other.args))
        return found
    if isinstance(ours, GraphQLInputObjectType) and isinstance(theirs, GraphQLInputObjectType):
        found.extend(_argument_differences(name, ours.fields, theirs.fields, noun="input field"))
    return found


def _argument_differences(
    where: str, ours: Mapping[str, Any], theirs: Mapping[str, Any], noun: str = "argument"
) -> list[str]:
    found = []
    for arg_name, arg in ours.items():
        other = theirs.get(arg_name)
        if other is None:
            found.append(f"{where}({arg_name}:): no such {noun} in the official schema")
            continue
        if str(arg.type) != str(other.type):
            found.append(f"{where}({arg_name}:): type {arg.type} here, {other.type} officially")
        if _default(arg) != _default(other):
            found.append(
                f"{where}({arg_name}:): default {_default(arg)} here, {_default(other)} officially"
            )
    for arg_name, other in theirs.items():
        required = isinstance(other.type, GraphQLNonNull) and _default(other) == "none"
        if required and arg_name not in ours:
            found.append(f"{where}({arg_name}:): required officially, missing from the copy")
    return found


def _default(argument: Any) -> str:
    """An argument's or input field's default as written in the SDL ("none" if it has none)."""
    node = getattr(argument, "ast_node", None)
    if node is not None and node.default_value is not None:
        return print_ast(node.default_value)
    if argument.default_value is not Undefined:
        return repr(argument.default_value)
    return "none"
