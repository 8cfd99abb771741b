"""Executes the fields that only read an attribute of their parent and return a scalar or an enum,
the bulk of every answer (a page of 20 products is about 140 of them), without the machinery a
resolver needs.

graphql-core builds a resolve info, calls Strawberry's resolver (which reads the attribute through
three more calls), checks for an awaitable twice and completes the value in two steps for each
such field. Here the attribute is read and coerced to its output value directly. Anything else, and
any value that would not complete plainly (null, an exception, a value the scalar refuses), takes
graphql-core's own path, which gives the same answer and the same errors: reading an attribute
has no side effect, so reading it again there changes nothing.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from graphql import (
    GraphQLLeafType,
    GraphQLObjectType,
    GraphQLSchema,
    get_nullable_type,
    is_leaf_type,
    is_object_type,
)
from graphql.pyutils import Path, Undefined
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from strawberry.schema.schema_converter import GraphQLCoreConverter
from strawberry.types.field import StrawberryField

# How to read one plain field: Strawberry's default resolver, the attribute's name, the field's
# scalar or enum type.
PlainField = tuple[Callable[[Any, str], Any], str, GraphQLLeafType]


@functools.lru_cache(maxsize=8)
def plain_fields(schema: GraphQLSchema) -> dict[tuple[str, str], PlainField]:
    """{(type name, field name): how to read it} for every field of an object type that has no
    resolver, no arguments and no field extension, and whose type is a scalar or an enum (not a
    list): those Strawberry resolves by reading the attribute (its "basic" fields)."""
    plain: dict[tuple[str, str], PlainField] = {}
    for type_ in schema.type_map.values():
        if not is_object_type(type_) or type_.name.startswith("__"):
            continue
        assert isinstance(type_, GraphQLObjectType)
        for name, field in type_.fields.items():
            definition = (field.extensions or {}).get(GraphQLCoreConverter.DEFINITION_BACKREF)
            output = get_nullable_type(field.type)
            if (
                isinstance(definition, StrawberryField)
                and definition.is_basic_field
                and getattr(field.resolve, "_is_default", False)  # Strawberry's plain reader
                and not field.args
                and is_leaf_type(output)
            ):
                plain[type_.name, name] = (definition.default_resolver, definition.python_name, output)
    return plain


class PlainFieldsExecutionContext(StrawberryGraphQLCoreExecutionContext):
    """Strawberry's execution context, with the plain fields above read directly."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        middleware = self.middleware_manager
        # A schema extension that hooks every resolver must see every field.
        self._plain = {} if middleware is not None and middleware.middlewares else plain_fields(self.schema)

    def execute_field(
        self,
        parent_type: GraphQLObjectType,
        source: Any,
        field_details_list: Any,
        path: Path,
        position_context: Any,
    ) -> Any:
        node = field_details_list[0].node
        plain = self._plain.get((parent_type.name, node.name.value))
        if plain is not None and not node.arguments:
            read, attribute, output = plain
            try:
                value = read(source, attribute)
                if value is not None and not isinstance(value, Exception):
                    coerced = output.coerce_output_value(value)
                    if coerced is not None and coerced is not Undefined:
                        return coerced
            except Exception:  # noqa: S110 - graphql-core's path below reports it as it should
                pass
        return super().execute_field(parent_type, source, field_details_list, path, position_context)
