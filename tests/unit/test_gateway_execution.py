"""Plain fields read directly answer exactly what graphql-core's own path answers."""

from __future__ import annotations

from enum import Enum

import strawberry

from gateway.execution import PlainFieldsExecutionContext, plain_fields
from gateway.schema import schema as gateway_schema


@strawberry.enum
class Colour(Enum):
    RED = "RED"


@strawberry.type
class Item:
    name: str
    price: float
    colour: Colour
    note: str | None
    tags: list[str]

    @strawberry.field
    def shout(self) -> str:
        return self.name.upper()


@strawberry.type
class Query:
    @strawberry.field
    def items(self) -> list[Item | None]:  # a failed item is null, not the whole list
        return [
            Item(name="a", price=1.5, colour=Colour.RED, note=None, tags=["x"]),
            Item(name=None, price=2.0, colour=Colour.RED, note="n", tags=[]),  # type: ignore[arg-type]
            Item(name="c", price="not a number", colour=Colour.RED, note=None, tags=[]),  # type: ignore[arg-type]
        ]


QUERY = "{ items { name price colour note tags shout } }"


def test_only_attribute_reads_of_scalars_and_enums_are_plain():
    plain = plain_fields(strawberry.Schema(query=Query)._schema)

    assert set(plain) == {("Item", "name"), ("Item", "price"), ("Item", "colour"), ("Item", "note")}


def test_the_gateways_product_listing_fields_are_plain():
    plain = plain_fields(gateway_schema._schema)

    assert {
        ("Product", "name"),
        ("Product", "inStock"),
        ("Money", "amount"),
        ("ProductEdge", "cursor"),
    } <= set(plain)
    assert ("Product", "createdAt") not in plain  # a resolver


async def test_answers_and_errors_are_those_of_graphql_core():
    plain = await strawberry.Schema(query=Query, execution_context_class=PlainFieldsExecutionContext).execute(
        QUERY
    )
    default = await strawberry.Schema(query=Query).execute(QUERY)

    assert plain.data == default.data
    assert [(e.message, e.path) for e in plain.errors or ()] == [
        (e.message, e.path) for e in default.errors or ()
    ]
    assert plain.data is not None
    assert len(plain.errors or ()) == 2  # a null name, a price that is not a number
