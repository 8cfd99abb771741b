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
class Maker:
    name: str

    @strawberry.field
    async def later(self) -> str:
        if self.name == "fails later":
            raise ValueError("no answer")
        return self.name


@strawberry.type
class Item:
    name: str
    price: float
    colour: Colour
    note: str | None
    tags: list[str]
    maker: Maker
    spare: Maker | None

    @strawberry.field
    def shout(self) -> str:
        return self.name.upper()


def item(name: str, price: object = 1.5, maker: str = "m", spare: str | None = None) -> Item:
    return Item(
        name=name,
        price=price,  # type: ignore[arg-type]
        colour=Colour.RED,
        note=None,
        tags=["x"],
        maker=Maker(name=maker),
        spare=Maker(name=spare) if spare is not None else None,  # type: ignore[arg-type]
    )


@strawberry.type
class Query:
    @strawberry.field
    def items(self) -> list[Item | None]:  # a failed item is null, not the whole list
        return [
            item("a", spare="s"),
            item(None),  # type: ignore[arg-type]
            item("c", price="not a number"),
            item("d", maker=None),  # type: ignore[arg-type]
            item("e", maker="fails later"),
            item("f", spare="fails later"),
            item("g", spare=None),  # type: ignore[arg-type]
        ]


QUERY = "{ items { name price colour note tags shout maker { name later } spare { name later } } }"


def test_attribute_reads_of_scalars_enums_and_objects_are_plain():
    plain = plain_fields(strawberry.Schema(query=Query)._schema)

    assert set(plain) == {
        ("Item", "name"),
        ("Item", "price"),
        ("Item", "colour"),
        ("Item", "note"),
        ("Item", "maker"),
        ("Item", "spare"),
        ("Maker", "name"),
    }


def test_the_gateways_product_listing_fields_are_plain():
    plain = plain_fields(gateway_schema._schema)

    assert {
        ("Product", "name"),
        ("Product", "inStock"),
        ("Product", "price"),
        ("Money", "amount"),
        ("ProductEdge", "cursor"),
        ("ProductEdge", "node"),
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
    # A null name, a price that is not a number, a null maker, a maker's failing resolver.
    assert len(plain.errors or ()) == 5
