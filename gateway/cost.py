"""Query cost: what an operation may cost, computed from its document before it runs, and what it
did cost, computed from the data it returned.

The rules (README, "Gateway limits"):

- a scalar or enum field costs 0; an object field 1 plus its selection;
- a connection (a field whose type's name ends in `Connection`, or that takes `first`) costs
  `(2 + first) * max(1, cost of its selection)`: its selection is paid once per item of the page,
  so nested connections multiply. A `first` that is not given counts as the argument's default
  (or as 100 when it has none); a variable counts as the value the request sends;
- a mutation field costs 10 plus its selection;
- introspection is cheap but not free: `__schema`, `__type` and every object below them cost 1,
  `__typename` 0;
- named and inline fragments are expanded where they are spread and every alias is paid for, so
  a field hidden behind an aliased spread counts once per spread;
- `@skip` and `@include` are honoured;
- `FIELD_COSTS` replaces the base weight (1, 2 or 10 above) of a field: `"Type.field": weight`;
- every operation costs at least 1.

The actual cost applies the same rules to the result data: a connection's `first` becomes the
number of items it returned, a list is paid for its costliest item (never more than its
selection's requested cost), a null object for its base weight only, a field that did not run
for nothing. It never exceeds the requested cost.
"""

from __future__ import annotations

import functools
import weakref
from collections.abc import Iterator, Mapping
from typing import Any

from graphql import (
    BooleanValueNode,
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLArgument,
    GraphQLField,
    GraphQLNamedType,
    GraphQLSchema,
    InlineFragmentNode,
    IntValueNode,
    NullValueNode,
    OperationDefinitionNode,
    OperationType,
    SelectionNode,
    SelectionSetNode,
    ValueNode,
    VariableNode,
    get_named_type,
    is_leaf_type,
    value_from_ast_untyped,
)
from graphql.pyutils import Undefined
from graphql.type.introspection import SchemaMetaFieldDef, TypeMetaFieldDef

# Per-field weights that differ from the defaults below ("Type.field" -> weight). A connection's
# weight is added to `first` before the multiplication, a mutation's or object's to its selection.
FIELD_COSTS: dict[str, int] = {
    # Full-text ranking plus trigram similarity: the heaviest read the catalog serves.
    "Query.searchProducts": 5,
}

_Field = tuple[GraphQLField, GraphQLNamedType, bool, int]
OBJECT_WEIGHT = 1
CONNECTION_WEIGHT = 2
MUTATION_WEIGHT = 10
DEFAULT_PAGE_SIZE = 100  # when `first` has neither a value nor a default
MINIMUM_COST = 1
# Costs are exact integers while computed; what is reported stays within JSON's safe integers.
MAXIMUM_REPORTED_COST = 2**53 - 1


class CostCalculator:
    """Costs of documents against one schema. Cheap to call: linear in the document's size."""

    def __init__(self, schema: GraphQLSchema, field_costs: Mapping[str, int] | None = None) -> None:
        self.schema = schema
        self.field_costs = dict(FIELD_COSTS if field_costs is None else field_costs)
        self._memos: dict[int, tuple[weakref.ref[DocumentNode], dict[Any, Any]]] = {}
        self._fields: dict[tuple[str, str, bool], _Field] = {}
        unknown = [name for name in self.field_costs if not self._exists(name)]
        if unknown:
            raise ValueError(f"field costs name fields the schema does not have: {', '.join(unknown)}")

    def requested(
        self,
        document: DocumentNode,
        operation_name: str | None = None,
        variables: Mapping[str, Any] | None = None,
    ) -> int:
        """The most the operation can cost, from the document and the request's variables.

        Remembered per document object (the parser cache hands out one per query text) and per
        value of the variables the walk read (`first`, `@skip`/`@include` conditions): a walk reads
        variables in a fixed order and each decision depends only on values read before it, so the
        same values always give the same cost.
        """
        memo = self._memo_of(document)
        shape = memo.get(operation_name)
        if shape is not None:
            key = _values_key(shape, variables)
            if key is not None and (cost := memo.get((operation_name, shape, key))) is not None:
                return cost
        reading = _Reading(variables or {})
        cost = self._cost(document, operation_name, reading, _STATIC)
        shape = tuple(reading.names)
        key = _values_key(shape, variables)
        if key is not None and len(memo) < MEMO_PER_DOCUMENT:
            memo[operation_name] = shape
            memo[(operation_name, shape, key)] = cost
        return cost

    def _memo_of(self, document: DocumentNode) -> dict[Any, Any]:
        # By identity: hashing a document walks all of it.
        entry = self._memos.get(id(document))
        if entry is not None and entry[0]() is document:
            return entry[1]
        key = id(document)
        memos = self._memos
        memo: dict[Any, Any] = {}
        memos[key] = (weakref.ref(document, lambda _ref: memos.pop(key, None)), memo)
        return memo

    def actual(
        self,
        document: DocumentNode,
        data: Mapping[str, Any] | None,
        operation_name: str | None = None,
        variables: Mapping[str, Any] | None = None,
    ) -> int:
        """What the operation did cost, from the data it returned (`None` when nothing came back)."""
        return self._cost(document, operation_name, variables, _AllNull() if data is None else data)

    def _cost(
        self,
        document: DocumentNode,
        operation_name: str | None,
        variables: Mapping[str, Any] | None,
        data: Any,
    ) -> int:
        operation = select_operation(document, operation_name)
        if operation is None:
            return MINIMUM_COST
        root = self.schema.get_root_type(operation.operation)
        if root is None:
            return MINIMUM_COST
        walk = _Walk(self, document, operation, {} if variables is None else variables)
        return min(
            MAXIMUM_REPORTED_COST, max(MINIMUM_COST, walk.selection_set(operation.selection_set, root, data))
        )

    def field_of(self, parent: GraphQLNamedType, name: str, *, mutation_root: bool) -> _Field | None:
        """A field's definition, named type, whether it is a connection, and its weight; None for a
        field the type does not have. Worked out once per field of the schema."""
        key = (parent.name, name, mutation_root)
        known = self._fields.get(key)
        if known is not None:
            return known
        if name == "__schema" and parent is self.schema.query_type:
            definition: GraphQLField | None = SchemaMetaFieldDef
        elif name == "__type" and parent is self.schema.query_type:
            definition = TypeMetaFieldDef
        else:
            definition = (getattr(parent, "fields", None) or {}).get(name)
        if definition is None:
            return None  # not remembered: the names come from documents
        type_ = get_named_type(definition.type)
        connection = not is_leaf_type(type_) and (
            type_.name.endswith("Connection") or "first" in definition.args
        )
        override = self.field_costs.get(f"{parent.name}.{name}")
        if override is not None:
            weight = override
        elif mutation_root:
            weight = MUTATION_WEIGHT
        elif is_leaf_type(type_):
            weight = 0
        else:
            weight = CONNECTION_WEIGHT if connection else OBJECT_WEIGHT
        known = self._fields[key] = (definition, type_, connection, weight)
        return known

    def _exists(self, name: str) -> bool:
        type_name, _, field_name = name.partition(".")
        type_ = self.schema.get_type(type_name)
        return field_name in (getattr(type_, "fields", None) or {})


def select_operation(document: DocumentNode, operation_name: str | None) -> OperationDefinitionNode | None:
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if operation_name:
        return next((o for o in operations if o.name and o.name.value == operation_name), None)
    return operations[0] if len(operations) == 1 else None


@functools.lru_cache(maxsize=8)
def calculator_for(schema: GraphQLSchema) -> CostCalculator:
    return CostCalculator(schema)


def _default(argument: GraphQLArgument | None) -> Any:
    """An argument's default, whether the schema holds it as a value (Strawberry) or a literal (SDL)."""
    if argument is None:
        return None
    if argument.default_value is not Undefined:
        return argument.default_value
    default = getattr(argument, "default", None)
    if default is not None and default.literal is not None:
        return value_from_ast_untyped(default.literal)
    if default is not None and default.value is not Undefined:
        return default.value
    return None


# Requested costs remembered per document: operations times the variable values seen.
MEMO_PER_DOCUMENT = 256
_MISSING = ("missing",)


class _Reading(Mapping[str, Any]):
    """The request's variables, noting which ones the walk reads, in order."""

    def __init__(self, variables: Mapping[str, Any]) -> None:
        self.variables = variables
        self.names: dict[str, None] = {}

    def __contains__(self, name: object) -> bool:
        if isinstance(name, str):
            self.names[name] = None
        return name in self.variables

    def __getitem__(self, name: str) -> Any:
        self.names[name] = None
        return self.variables[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.variables)

    def __len__(self) -> int:
        return len(self.variables)


def _values_key(names: tuple[str, ...], variables: Mapping[str, Any] | None) -> tuple[Any, ...] | None:
    """The values of `names` as a key (with their types: True is not 1); None when one is not a
    small scalar, so that no client can make the memo hold large values."""
    variables = variables or {}
    key: list[tuple[Any, ...]] = []
    for name in names:
        if name not in variables:
            key.append(_MISSING)
            continue
        value = variables[name]
        if value is not None and not isinstance(value, int | float | bool):
            return None
        key.append((type(value), value))
    return tuple(key)


class _Static:
    """Marks a walk over the document alone, with no result data."""


_STATIC: Any = _Static()
_ABSENT = object()


class _AllNull(dict[str, Any]):
    """The root of a result whose data is null: every root field ran and came back null."""

    def get(self, key: Any, default: Any = None) -> Any:
        return None


class _Walk:
    def __init__(
        self,
        calculator: CostCalculator,
        document: DocumentNode,
        operation: OperationDefinitionNode,
        variables: Mapping[str, Any],
    ) -> None:
        self.calculator = calculator
        self.schema = calculator.schema
        self.mutation_type = (
            self.schema.mutation_type if operation.operation == OperationType.MUTATION else None
        )
        self.fragments = {
            d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
        }
        self.variables = variables
        self.variable_defaults = {
            v.variable.name.value: v.default_value for v in operation.variable_definitions or ()
        }
        # A fragment costs the same wherever it is spread over the same data, so each is walked
        # once per data object: a document of fragments that spread each other twice is linear,
        # not exponential.
        self.memo: dict[tuple[str, int], int] = {}
        self.active: set[str] = set()
        # The requested cost of each selection set below a list, walked once per document node.
        self.bounds: dict[tuple[int, str], int] = {}

    def selection_set(self, node: SelectionSetNode | None, parent: GraphQLNamedType, data: Any) -> int:
        if node is None:
            return 0
        total = 0
        for selection in node.selections:
            if not self.included(selection):
                continue
            if isinstance(selection, FieldNode):
                total += self.field(selection, parent, data)
            elif isinstance(selection, InlineFragmentNode):
                condition = selection.type_condition
                type_ = self.schema.get_type(condition.name.value) if condition else parent
                total += self.selection_set(selection.selection_set, type_ or parent, data)
            elif isinstance(selection, FragmentSpreadNode):
                total += self.fragment(selection.name.value, data)
        return total

    def fragment(self, name: str, data: Any) -> int:
        key = (name, id(data))
        if key in self.memo:
            return self.memo[key]
        fragment = self.fragments.get(name)
        if fragment is None or name in self.active:  # unknown or cyclic: validation refuses both
            return 0
        type_ = self.schema.get_type(fragment.type_condition.name.value)
        if type_ is None:
            return 0
        self.active.add(name)
        try:
            cost = self.selection_set(fragment.selection_set, type_, data)
        finally:
            self.active.discard(name)
        self.memo[key] = cost
        return cost

    def field(self, node: FieldNode, parent: GraphQLNamedType, data: Any) -> int:
        name = node.name.value
        if name == "__typename":
            return 0
        known = self.calculator.field_of(parent, name, mutation_root=parent is self.mutation_type)
        if known is None:
            return 0
        definition, type_, connection, weight = known
        if data is _STATIC:
            if node.selection_set is None:
                return weight
            selection = self.selection_set(node.selection_set, type_, _STATIC)
            if connection:
                return (weight + self.first(node, definition)) * max(1, selection)
            return weight + selection

        value = (
            data.get(node.alias.value if node.alias else name, _ABSENT) if isinstance(data, dict) else _ABSENT
        )
        if value is _ABSENT:  # skipped, or never reached
            return 0
        if value is None or node.selection_set is None:
            return weight
        if connection and isinstance(value, dict):
            items = [len(v) for v in value.values() if isinstance(v, list)]
            size = max(items) if items else self.first(node, definition)
            return (weight + size) * max(1, self.selection_set(node.selection_set, type_, value))
        return weight + self.costliest(node.selection_set, type_, value)

    def costliest(self, node: SelectionSetNode, type_: GraphQLNamedType, value: Any) -> int:
        if isinstance(value, list):
            # No item is charged more than the selection's requested cost, so the first item that
            # reaches it ends the walk: a page of 20 products is walked once, not 20 times.
            bound = self.requested_cost(node, type_)
            most = 0
            for item in value:
                most = max(most, min(bound, self.costliest(node, type_, item)))
                if most >= bound:
                    break
            return most
        if isinstance(value, dict):
            return self.selection_set(node, type_, value)
        return 0

    def requested_cost(self, node: SelectionSetNode, type_: GraphQLNamedType) -> int:
        key = (id(node), type_.name)
        cost = self.bounds.get(key)
        if cost is None:
            cost = self.bounds[key] = self.selection_set(node, type_, _STATIC)
        return cost

    def first(self, node: FieldNode, definition: GraphQLField) -> int:
        value: Any = _ABSENT
        for argument in node.arguments or ():
            if argument.name.value == "first":
                value = self.value(argument.value)
        if value is _ABSENT or value is None:
            value = _default(definition.args.get("first"))
        if not isinstance(value, int) or isinstance(value, bool):
            return DEFAULT_PAGE_SIZE
        return max(0, value)

    def value(self, node: ValueNode) -> Any:
        if isinstance(node, IntValueNode):
            return int(node.value)
        if isinstance(node, NullValueNode):
            return None
        if isinstance(node, VariableNode):
            name = node.name.value
            if name in self.variables:
                return self.variables[name]
            default = self.variable_defaults.get(name)
            return _ABSENT if default is None else value_from_ast_untyped(default)
        if isinstance(node, BooleanValueNode):
            return node.value
        return _ABSENT

    def included(self, node: SelectionNode) -> bool:
        for directive in node.directives or ():
            name = directive.name.value
            if name not in ("skip", "include"):
                continue
            condition = next((a.value for a in directive.arguments or () if a.name.value == "if"), None)
            value = self.value(condition) if condition is not None else _ABSENT
            if name == "skip" and value is True:
                return False
            if name == "include" and value is False:
                return False
        return True
