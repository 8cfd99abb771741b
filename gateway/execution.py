"""Executes the fields that only read an attribute of their parent, the bulk of every answer (a
page of 20 products is about 140 scalars and 40 objects read so), without the machinery a resolver
needs.

For each such field graphql-core builds a resolve info, calls Strawberry's resolver (which reads
the attribute through three more calls), checks for an awaitable twice and completes the value
in two or three steps. Here the attribute is read and a scalar or an enum coerced to its output
value, an object's selection executed, directly. Any other field, and any value that would not
complete plainly (null, an exception, an awaitable, a value the scalar refuses), takes
graphql-core's own path, which gives the same answer and the same errors: reading an attribute
has no side effect, so reading it again there changes nothing. An error raised below an object
is handled as graphql-core handles it.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any, NamedTuple

from graphql import (
    GraphQLLeafType,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLSchema,
    get_nullable_type,
    is_leaf_type,
    is_object_type,
)
from graphql.pyutils import Path, Undefined
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from strawberry.schema.schema_converter import GraphQLCoreConverter
from strawberry.types.field import StrawberryField


class PlainField(NamedTuple):
    """How to read one plain field and complete its value."""

    read: Callable[[Any, str], Any]  # Strawberry's default resolver
    attribute: str
    type: GraphQLOutputType  # as declared, non-null or not
    leaf: GraphQLLeafType | None  # its scalar or enum; None for an object
    object: GraphQLObjectType | None


@functools.lru_cache(maxsize=8)
def plain_fields(schema: GraphQLSchema) -> dict[tuple[str, str], PlainField]:
    """{(type name, field name): how to read it} for every field of an object type that has no
    resolver, no arguments and no field extension (Strawberry reads the attribute: a "basic"
    field), and whose type is a scalar, an enum or an object type that needs no check of the
    value's type (not a list, an interface or a union)."""
    plain: dict[tuple[str, str], PlainField] = {}
    for type_ in schema.type_map.values():
        if not is_object_type(type_) or type_.name.startswith("__"):
            continue
        assert isinstance(type_, GraphQLObjectType)
        for name, field in type_.fields.items():
            definition = (field.extensions or {}).get(GraphQLCoreConverter.DEFINITION_BACKREF)
            if not (
                isinstance(definition, StrawberryField)
                and definition.is_basic_field
                and getattr(field.resolve, "_is_default", False)  # Strawberry's plain reader
                and not field.args
            ):
                continue
            output = get_nullable_type(field.type)
            read = (definition.default_resolver, definition.python_name, field.type)
            if is_leaf_type(output):
                plain[type_.name, name] = PlainField(*read, leaf=output, object=None)
            elif isinstance(output, GraphQLObjectType) and output.is_type_of is None:
                plain[type_.name, name] = PlainField(*read, leaf=None, object=output)
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
            try:
                value = plain.read(source, plain.attribute)
            except Exception:  # graphql-core's path below reports it as it should
                value = None
            if value is not None and not isinstance(value, Exception) and not self.is_awaitable(value):
                if plain.object is not None:
                    return self._complete_object(plain, field_details_list, path, value, position_context)
                assert plain.leaf is not None
                try:
                    coerced = plain.leaf.coerce_output_value(value)
                except Exception:  # noqa: S110 - as above
                    pass
                else:
                    if coerced is not None and coerced is not Undefined:
                        return coerced
        return super().execute_field(parent_type, source, field_details_list, path, position_context)

    def _complete_object(
        self, plain: PlainField, field_details_list: Any, path: Path, value: Any, position_context: Any
    ) -> Any:
        """The object's selection, its errors handled as `execute_field` handles them."""
        assert plain.object is not None
        try:
            completed = self.collect_and_execute_subfields(
                plain.object, field_details_list, path, value, position_context
            )
        except Exception as error:
            self.handle_field_error(error, plain.type, field_details_list, path)
            return None
        if self.is_awaitable(completed):
            return self._await_object(completed, plain.type, field_details_list, path)
        return completed

    async def _await_object(
        self, completed: Awaitable[Any], type_: GraphQLOutputType, field_details_list: Any, path: Path
    ) -> Any:
        try:
            return await completed
        except Exception as error:
            self.handle_field_error(error, type_, field_details_list, path)
            return None
