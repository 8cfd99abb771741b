"""Limits on the shape of a document, checked during validation, before anything executes, and the
`extensions.code` of every error a client can get.

Strawberry's own QueryDepthLimiter and MaxAliasesLimiter walk a fragment again at every spread,
so a document of fragments that each spread the next one twice takes time exponential in its
length (18 such fragments already take seconds). These rules walk each fragment once.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from graphql import (
    ASTValidationRule,
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLSyntaxError,
    InlineFragmentNode,
    Node,
    OperationDefinitionNode,
    SelectionSetNode,
    ValidationContext,
    ValidationRule,
)
from strawberry.extensions import SchemaExtension

if TYPE_CHECKING:
    from gateway.settings import GatewaySettings

QUERY_TOO_DEEP = "QUERY_TOO_DEEP"
TOO_MANY_ALIASES = "TOO_MANY_ALIASES"
TOO_MANY_DIRECTIVES = "TOO_MANY_DIRECTIVES"
TOO_MANY_TOKENS = "TOO_MANY_TOKENS"
INTROSPECTION_DISABLED = "INTROSPECTION_DISABLED"
GRAPHQL_PARSE_FAILED = "GRAPHQL_PARSE_FAILED"
GRAPHQL_VALIDATION_FAILED = "GRAPHQL_VALIDATION_FAILED"
BAD_USER_INPUT = "BAD_USER_INPUT"
INTERNAL = "INTERNAL"
_JSON_SAFE = 2**53 - 1  # counts in `extensions` stay JSON-safe integers


def _operations(document: DocumentNode) -> Iterator[OperationDefinitionNode]:
    return (d for d in document.definitions if isinstance(d, OperationDefinitionNode))


def _fragments(document: DocumentNode) -> dict[str, FragmentDefinitionNode]:
    return {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}


class _FragmentMeasure:
    """A measure of selection sets where each named fragment is measured once (cycles count 0)."""

    def __init__(
        self,
        document: DocumentNode,
        combine: Callable[[list[int]], int],
        of_field: Callable[[FieldNode, int], int],
    ) -> None:
        self.fragments = _fragments(document)
        self.combine = combine
        self.of_field = of_field
        self.memo: dict[str, int] = {}
        self.active: set[str] = set()

    def selection_set(self, node: SelectionSetNode | None) -> int:
        if node is None:
            return 0
        parts = []
        for selection in node.selections:
            if isinstance(selection, FieldNode):
                parts.append(self.of_field(selection, self.selection_set(selection.selection_set)))
            elif isinstance(selection, InlineFragmentNode):
                parts.append(self.selection_set(selection.selection_set))
            elif isinstance(selection, FragmentSpreadNode):
                parts.append(self.fragment(selection.name.value))
        return self.combine(parts)

    def fragment(self, name: str) -> int:
        if name in self.memo:
            return self.memo[name]
        fragment = self.fragments.get(name)
        if fragment is None or name in self.active:
            return 0
        self.active.add(name)
        try:
            value = self.selection_set(fragment.selection_set)
        finally:
            self.active.discard(name)
        self.memo[name] = value
        return value


def _depth_of_field(field: FieldNode, below: int) -> int:
    # Introspection is not counted (GraphiQL's own query is deep); it is disabled in production.
    return 0 if field.name.value.startswith("__") else 1 + below


def _aliases_of_field(field: FieldNode, below: int) -> int:
    return (1 if field.alias else 0) + below


def operation_depth(document: DocumentNode, operation: OperationDefinitionNode) -> int:
    """Levels of nested fields: `{ me { id } }` is 2 deep. Fragments add no level of their own."""
    measure = _FragmentMeasure(document, lambda parts: max(parts, default=0), _depth_of_field)
    return measure.selection_set(operation.selection_set)


def operation_aliases(document: DocumentNode, operation: OperationDefinitionNode) -> int:
    """Aliases the operation executes, an alias inside a fragment once for every spread of it."""
    measure = _FragmentMeasure(document, sum, _aliases_of_field)
    return measure.selection_set(operation.selection_set)


def _limit_error(message: str, code: str, node: Node | None = None, **extensions: Any) -> GraphQLError:
    return GraphQLError(message, node, extensions={"code": code, **extensions})


def _operation_rule(
    measure: Callable[[DocumentNode, OperationDefinitionNode], int],
    maximum: int,
    refusal: Callable[[OperationDefinitionNode, int], GraphQLError],
) -> type[ValidationRule]:
    """A rule that reports `refusal` for every operation whose `measure` exceeds `maximum`."""

    class OperationLimit(ValidationRule):
        def __init__(self, context: ValidationContext) -> None:
            super().__init__(context)
            for operation in _operations(context.document):
                value = measure(context.document, operation)
                if value > maximum:
                    context.report_error(refusal(operation, value))

    return OperationLimit


def depth_rule(max_depth: int) -> type[ValidationRule]:
    def refusal(operation: OperationDefinitionNode, depth: int) -> GraphQLError:
        name = operation.name.value if operation.name else "anonymous"
        return _limit_error(
            f"operation {name!r} is {depth} levels deep and exceeds maximum operation depth of {max_depth}",
            QUERY_TOO_DEEP,
            operation,
            depth=min(depth, _JSON_SAFE),
            maximumDepth=max_depth,
        )

    return _operation_rule(operation_depth, max_depth, refusal)


def alias_rule(max_aliases: int) -> type[ValidationRule]:
    def refusal(operation: OperationDefinitionNode, aliases: int) -> GraphQLError:
        return _limit_error(
            f"{aliases} aliases found (fragments counted at every spread); allowed: {max_aliases}",
            TOO_MANY_ALIASES,
            operation,
            aliases=min(aliases, _JSON_SAFE),
            maximumAliases=max_aliases,
        )

    return _operation_rule(operation_aliases, max_aliases, refusal)


def directives_rule(max_per_location: int) -> type[ValidationRule]:
    """At most `max_per_location` directives on one field, fragment spread or inline fragment: a
    wall of directives makes every validation rule report an error per directive."""

    class MaxDirectives(ValidationRule):
        def _check(self, node: FieldNode | FragmentSpreadNode | InlineFragmentNode) -> None:
            count = len(node.directives or ())
            if count > max_per_location:
                self.report_error(
                    _limit_error(
                        f"{count} directives on one selection; allowed: {max_per_location}",
                        TOO_MANY_DIRECTIVES,
                        node,
                        directives=count,
                        maximumDirectives=max_per_location,
                    )
                )

        def enter_field(self, node: FieldNode, *_: Any) -> None:
            self._check(node)

        def enter_fragment_spread(self, node: FragmentSpreadNode, *_: Any) -> None:
            self._check(node)

        def enter_inline_fragment(self, node: InlineFragmentNode, *_: Any) -> None:
            self._check(node)

    return MaxDirectives


# Foreign rules whose errors carry no code: recognised by their (pinned) wording.
_CODES_BY_MESSAGE = (
    ("introspection has been disabled", INTROSPECTION_DISABLED),
    ("tokens. Parsing aborted", TOO_MANY_TOKENS),
)
_SUGGESTION = re.compile(r"\s*Did you mean [^?]*\?", re.DOTALL)


def document_rules(settings: GatewaySettings) -> list[type[ASTValidationRule]]:
    """The limits on a document's shape: depth, aliases, directives per field."""
    return [
        depth_rule(settings.max_depth),
        alias_rule(settings.max_aliases),
        directives_rule(settings.max_directives_per_field),
    ]


class ErrorCodes(SchemaExtension):
    """Gives every error an `extensions.code` and, in production, removes "Did you mean" hints
    (Strawberry's `disable_field_suggestions` only covers unknown fields, not arguments, types,
    input fields or enum values).

    Parse errors are GRAPHQL_PARSE_FAILED, validation errors GRAPHQL_VALIDATION_FAILED unless a
    limit names them, variables that do not fit their type BAD_USER_INPUT, and a masked error
    INTERNAL. Done in `get_results`, which runs for every result, after MaskErrors.
    """

    def __init__(self, *, hide_suggestions: bool) -> None:
        self.hide_suggestions = hide_suggestions
        self.validation_errors: set[int] = set()

    def on_validate(self) -> Iterator[None]:
        yield
        self.validation_errors = {id(e) for e in self.execution_context.pre_execution_errors or ()}

    def get_results(self) -> dict[str, Any]:
        for error in self.execution_context.pre_execution_errors or ():
            self._tag(error)
        return {}

    def _tag(self, error: GraphQLError) -> None:
        if self.hide_suggestions and "Did you mean" in error.message:
            error.message = _SUGGESTION.sub("", error.message)
        extensions = error.extensions if error.extensions is not None else {}
        if "code" not in extensions:
            extensions["code"] = self._code(error)
            error.extensions = extensions

    def _code(self, error: GraphQLError) -> str:
        for fragment, code in _CODES_BY_MESSAGE:
            if fragment in error.message:
                return code
        if isinstance(error, GraphQLSyntaxError):
            return GRAPHQL_PARSE_FAILED
        if error.path is not None:
            return INTERNAL
        if id(error) in self.validation_errors:
            return GRAPHQL_VALIDATION_FAILED
        return BAD_USER_INPUT
