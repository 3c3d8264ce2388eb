"""GraphQL documents and variables checked against a schema, refused the way Shopify refuses.

:class:`GraphQLContract` wraps a schema built from SDL (``shopify_2026-01.graphql``):

* :meth:`GraphQLContract.check` parses and validates a document and its
  variables. Errors come back in the shape Shopify's GraphQL server
  (graphql-ruby) answers with HTTP 200: ``{message, locations, path,
  extensions: {code, ...}}`` with the codes ``undefinedField``,
  ``argumentNotAccepted``, ``missingRequiredArguments``, ``variableNotUsed``,
  ``variableNotDefined``, ``variableMismatch``, ``undefinedType`` … for the
  document, and ``INVALID_VARIABLE`` with ``value`` and ``problems[{path,
  explanation}]`` for variables.
* :meth:`GraphQLContract.project` executes the checked document over the data a
  handler produced (plain dicts, ``__typename`` on abstract types), so the
  answer holds exactly the fields the document selected, typed as the schema
  says; a field the handler's data cannot fill is reported, not invented.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from graphql import (
    DocumentNode,
    GraphQLEnumType,
    GraphQLError,
    GraphQLInputObjectType,
    GraphQLInputType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLScalarType,
    GraphQLSchema,
    OperationDefinitionNode,
    build_schema,
    execute_sync,
    parse,
    specified_rules,
    type_from_ast,
    validate,
)
from graphql.language import Visitor, visit
from graphql.type import assert_valid_schema
from graphql.utilities import value_from_ast

JsonDict = dict[str, Any]

# graphql-core's validation rules -> graphql-ruby's error codes (what Shopify answers).
RULE_CODES = {
    "FieldsOnCorrectTypeRule": "undefinedField",
    "KnownArgumentNamesRule": "argumentNotAccepted",
    "ProvidedRequiredArgumentsRule": "missingRequiredArguments",
    "NoUnusedVariablesRule": "variableNotUsed",
    "NoUndefinedVariablesRule": "variableNotDefined",
    "VariablesInAllowedPositionRule": "variableMismatch",
    "KnownTypeNamesRule": "undefinedType",
    "ScalarLeafsRule": "selectionMismatch",
    "KnownDirectivesRule": "undefinedDirective",
    "ValuesOfCorrectTypeRule": "argumentLiteralsIncompatible",
}
MAX_ERRORS = 20  # one document can break many rules; enough to see what is wrong


@dataclass
class Checked:
    """A document that passed (``errors`` empty) or the errors that refuse it."""

    document: DocumentNode | None = None
    operation: OperationDefinitionNode | None = None
    variables: JsonDict = field(default_factory=dict)
    errors: list[JsonDict] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


class GraphQLContract:
    def __init__(self, sdl: str) -> None:
        self.schema: GraphQLSchema = build_schema(sdl)
        assert_valid_schema(self.schema)

    # ------------------------------------------------------------------ check

    def check(
        self, query: str, variables: Mapping[str, Any] | None, operation_name: str | None = None
    ) -> Checked:
        try:
            document = _parse(query)
        except GraphQLError as exc:
            return Checked(errors=[_parse_error(exc)])
        errors = self._validate(document)
        if errors:
            return Checked(document=document, errors=errors)
        operation = _operation(document, operation_name)
        if operation is None:
            message = (
                f'No operation named "{operation_name}"'
                if operation_name
                else "An operation name is required when the document holds several"
            )
            return Checked(document=document, errors=[{"message": message}])
        problems = self._variable_errors(operation, variables or {})
        return Checked(document, operation, dict(variables or {}), problems)

    def _validate(self, document: DocumentNode) -> list[JsonDict]:
        if not validate(self.schema, document):
            return []
        # Which rule said what decides the code: re-run the rules one by one.
        paths = _node_paths(document)
        errors = [
            _ruby_error(rule.__name__, error, paths)
            for rule in specified_rules
            for error in validate(self.schema, document, [rule])
        ]
        errors.sort(key=lambda e: [(loc["line"], loc["column"]) for loc in e.get("locations", [])])
        return _merge_missing_arguments(errors)[:MAX_ERRORS]

    def _variable_errors(
        self, operation: OperationDefinitionNode, values: Mapping[str, Any]
    ) -> list[JsonDict]:
        errors = []
        for definition in operation.variable_definitions or ():
            name = definition.variable.name.value
            var_type = type_from_ast(self.schema, definition.type)
            if var_type is None:
                continue  # an unknown type is a validation error, reported above
            if name in values:
                value = values[name]
            elif definition.default_value is not None:
                value = value_from_ast(definition.default_value, var_type)
            else:
                value = None
            problems = _problems(var_type, value, [])
            if not problems:
                continue
            for_paths = ", ".join(
                f"{'.'.join(str(p) for p in problem['path'])} ({problem['explanation']})"
                for problem in problems
                if problem["path"]
            )
            message = (
                f"Variable ${name} of type {_type_text(definition.type)} was provided invalid value"
                + (f" for {for_paths}" if for_paths else "")
            )
            loc = definition.loc
            errors.append(
                {
                    "message": message,
                    "locations": [_location(loc)] if loc else [],
                    "extensions": {
                        "code": "INVALID_VARIABLE",
                        "value": value,
                        "problems": problems,
                    },
                }
            )
        return errors

    # ------------------------------------------------------------------ answer

    def project(self, checked: Checked, data: Mapping[str, Any]) -> tuple[Any, list[JsonDict]]:
        """The selected fields of ``data`` as the schema types them, plus what did not fit."""
        if checked.document is None:
            raise ValueError("project() needs a checked document")
        operation_name = (
            checked.operation.name.value if checked.operation and checked.operation.name else None
        )
        result = execute_sync(
            self.schema,
            checked.document,
            root_value=data,
            variable_values=checked.variables,
            operation_name=operation_name,
        )
        return result.data, [error.formatted for error in result.errors or []]


# ---------------------------------------------------------------------- loading


@lru_cache(maxsize=8)
def load_contract(path: str) -> GraphQLContract:
    with open(path, encoding="utf-8") as handle:
        return GraphQLContract(handle.read())


@lru_cache(maxsize=512)
def _parse(query: str) -> DocumentNode:
    return parse(query)


def _operation(document: DocumentNode, name: str | None) -> OperationDefinitionNode | None:
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if name:
        return next((o for o in operations if o.name and o.name.value == name), None)
    return operations[0] if len(operations) == 1 else None


# ---------------------------------------------------------------------- errors


def _location(loc: Any) -> JsonDict:
    start = loc.source.get_location(loc.start)
    return {"line": start.line, "column": start.column}


def _parse_error(error: GraphQLError) -> JsonDict:
    locations = [{"line": loc.line, "column": loc.column} for loc in error.locations or []]
    where = f" at [{locations[0]['line']}, {locations[0]['column']}]" if locations else ""
    detail = error.message.removeprefix("Syntax Error: ")
    return {"message": f"Parse error: {detail}{where}", "locations": locations}


class _PathRecorder(Visitor):
    """graphql-ruby's error path for every node: operation, fields, arguments."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.paths: dict[int, list[str]] = {}

    def enter(self, node: Any, *_args: Any) -> None:
        kind = node.kind
        if kind == "operation_definition":
            name = f" {node.name.value}" if node.name else ""
            self.stack.append(f"{node.operation.value}{name}")
        elif kind == "fragment_definition":
            self.stack.append(f"fragment {node.name.value}")
        elif kind == "field":
            self.stack.append((node.alias or node.name).value)
        elif kind in ("argument", "object_field"):
            self.stack.append(node.name.value)
        self.paths[id(node)] = list(self.stack)

    def leave(self, node: Any, *_args: Any) -> None:
        if node.kind in (
            "operation_definition",
            "fragment_definition",
            "field",
            "argument",
            "object_field",
        ):
            self.stack.pop()


def _node_paths(document: DocumentNode) -> dict[int, list[str]]:
    recorder = _PathRecorder()
    visit(document, recorder)
    return recorder.paths


_QUOTED = re.compile(r"'([^']*)'")
# "Argument 'Mutation.orderCancel(restock:)' of type 'Boolean!' is required, ..."
_REQUIRED_ARG = re.compile(r"'(?P<directive>@)?(?:\w+\.)?(?P<owner>\w+)\((?P<argument>\w+):\)'")


def _ruby_error(rule: str, error: GraphQLError, paths: Mapping[int, list[str]]) -> JsonDict:
    """graphql-core's finding in graphql-ruby's words, code and extensions."""
    code = RULE_CODES.get(
        rule, rule.removesuffix("Rule")[:1].lower() + rule.removesuffix("Rule")[1:]
    )
    quoted = _QUOTED.findall(error.message)
    message, extensions = error.message, {"code": code}
    if code == "undefinedField" and len(quoted) >= 2:
        field_name, type_name = quoted[0], quoted[1]
        message = f"Field '{field_name}' doesn't exist on type '{type_name}'"
        extensions.update(typeName=type_name, fieldName=field_name)
    elif code == "argumentNotAccepted" and len(quoted) >= 2:
        argument, owner = quoted[0], quoted[1]
        if owner.startswith("@"):
            message = f"Directive '{owner[1:]}' doesn't accept argument '{argument}'"
            extensions.update(name=owner[1:], typeName="Directive", argumentName=argument)
        else:
            field_name = owner.rsplit(".", 1)[-1]
            message = f"Field '{field_name}' doesn't accept argument '{argument}'"
            extensions.update(name=field_name, typeName="Field", argumentName=argument)
    elif code == "missingRequiredArguments" and (found := _REQUIRED_ARG.search(error.message)):
        kind = "Directive" if found["directive"] else "Field"
        owner, argument = found["owner"], found["argument"]
        message = f"{kind} '{owner}' is missing required arguments: {argument}"
        extensions.update(className=kind, name=owner, arguments=argument)
    elif code == "variableNotUsed" and quoted:
        message = f"Variable {quoted[0]} is declared by {_operation_label(quoted)} but not used"
        extensions.update(variableName=quoted[0].lstrip("$"))
    elif code == "variableNotDefined" and quoted:
        message = f"Variable {quoted[0]} is used by {_operation_label(quoted)} but not declared"
        extensions.update(variableName=quoted[0].lstrip("$"))
    elif code == "variableMismatch" and len(quoted) >= 3:
        variable, given, expected = quoted[0], quoted[1], quoted[2]
        kind = "Nullability" if given.rstrip("!") == expected.rstrip("!") else "Type"
        message = f"{kind} mismatch on variable {variable} ({given} / {expected})"
        extensions.update(variableName=variable.lstrip("$"), typeName=given)
    nodes = error.nodes or []
    formatted: JsonDict = {
        "message": message,
        "locations": [{"line": loc.line, "column": loc.column} for loc in error.locations or []],
    }
    if nodes and id(nodes[0]) in paths:
        formatted["path"] = paths[id(nodes[0])]
    formatted["extensions"] = extensions
    return formatted


def _merge_missing_arguments(errors: list[JsonDict]) -> list[JsonDict]:
    """graphql-ruby names all missing arguments of one field in one error."""
    merged: list[JsonDict] = []
    by_field: dict[tuple[str, ...], JsonDict] = {}
    for error in errors:
        extensions = error["extensions"]
        if extensions.get("code") != "missingRequiredArguments" or "arguments" not in extensions:
            merged.append(error)
            continue
        key = (*error.get("path", ()), extensions["name"])
        first = by_field.get(key)
        if first is None:
            by_field[key] = error
            merged.append(error)
            continue
        names = f"{first['extensions']['arguments']}, {extensions['arguments']}"
        first["extensions"]["arguments"] = names
        kind = first["extensions"]["className"]
        first["message"] = f"{kind} '{extensions['name']}' is missing required arguments: {names}"
    return merged


def _operation_label(quoted: list[str]) -> str:
    return quoted[1] if len(quoted) > 1 else "anonymous query"


def _type_text(node: Any) -> str:
    kind = node.kind
    if kind == "non_null_type":
        return _type_text(node.type) + "!"
    if kind == "list_type":
        return f"[{_type_text(node.type)}]"
    return str(node.name.value)


# ---------------------------------------------------------------------- variables


def _problems(type_: GraphQLInputType, value: Any, path: list[Any]) -> list[JsonDict]:
    """graphql-ruby's ``problems`` for a variable value against its type."""
    if isinstance(type_, GraphQLNonNull):
        if value is None:
            return [{"path": path, "explanation": "Expected value to not be null"}]
        return _problems(type_.of_type, value, path)
    if value is None:
        return []
    if isinstance(type_, GraphQLList):
        if not isinstance(value, list):  # input coercion wraps a single value
            return _problems(type_.of_type, value, path)
        found: list[JsonDict] = []
        for index, item in enumerate(value):
            found.extend(_problems(type_.of_type, item, [*path, index]))
        return found
    if isinstance(type_, GraphQLInputObjectType):
        if not isinstance(value, Mapping):
            return [
                {
                    "path": path,
                    "explanation": f"Expected {json.dumps(value)} to be a key-value object.",
                }
            ]
        found = [
            {"path": [*path, key], "explanation": f"Field is not defined on {type_.name}"}
            for key in value
            if key not in type_.fields
        ]
        for name, input_field in type_.fields.items():
            if name in value:
                found.extend(_problems(input_field.type, value[name], [*path, name]))
            elif isinstance(input_field.type, GraphQLNonNull) and input_field.default_value is None:
                found.append(
                    {"path": [*path, name], "explanation": "Expected value to not be null"}
                )
        return found
    if isinstance(type_, GraphQLEnumType):
        if not isinstance(value, str) or value not in type_.values:
            options = ", ".join(type_.values)
            return [
                {
                    "path": path,
                    "explanation": f"Expected {json.dumps(value)} to be one of: {options}",
                }
            ]
        return []
    if isinstance(type_, GraphQLScalarType) and not _scalar_accepts(type_.name, value):
        return [
            {
                "path": path,
                "explanation": f"Could not coerce value {json.dumps(value)} to {type_.name}",
            }
        ]
    return []


def _scalar_accepts(name: str, value: Any) -> bool:
    if name == "Int":
        return isinstance(value, int) and not isinstance(value, bool) and -(2**31) <= value < 2**31
    if name == "Float":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if name == "Boolean":
        return isinstance(value, bool)
    if name in ("String", "ID"):
        return isinstance(value, str) or (
            name == "ID" and isinstance(value, int) and not isinstance(value, bool)
        )
    # Shopify's custom scalars (Money, Decimal, DateTime, URL, ...) are strings on the wire.
    return isinstance(value, str)
