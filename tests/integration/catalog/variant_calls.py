"""Requests and checks the variant tests share: a shirt in sizes and colours, and error helpers."""

from __future__ import annotations

import uuid

import grpc
import pytest

from ecommerce.catalog.v1 import catalog_pb2
from ecommerce.common.v1 import money_pb2
from servicekit.rpc_status import parse_rpc_error

GROUPS = [
    catalog_pb2.OptionGroup(name="Size", values=["S", "M", "XL"]),
    catalog_pb2.OptionGroup(name="Colour", values=["Red", "Blue"]),
]


async def rpc_error(awaitable) -> grpc.aio.AioRpcError:  # type: ignore[no-untyped-def]
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await awaitable
    return caught.value


def violated(error: grpc.aio.AioRpcError) -> list[str]:
    return [v.field for v in parse_rpc_error(error).violations]


def option(group: str, value: str) -> catalog_pb2.VariantOption:
    return catalog_pb2.VariantOption(group=group, value=value)


def variant(
    sku: str, size: str, colour: str, *, stock: int = 5, price_minor: int | None = None
) -> catalog_pb2.VariantInput:
    given = catalog_pb2.VariantInput(
        sku=sku, options=[option("Size", size), option("Colour", colour)], stock=stock
    )
    if price_minor is not None:
        given.price.CopyFrom(money_pb2.Money(amount_minor=price_minor, currency="USD"))
    return given


def shirt_request(slug: str, **overrides) -> catalog_pb2.CreateProductRequest:  # type: ignore[no-untyped-def]
    tag = uuid.uuid4().hex[:6].upper()
    values = {
        "sku": f"TEE-{tag}",
        "name": "Organic Cotton Tee",
        "description": "A soft everyday T-shirt.",
        "price": money_pb2.Money(amount_minor=2000, currency="USD"),
        "category_slug": slug,
        "option_groups": GROUPS,
        "variants": [
            variant(f"TEE-{tag}-S-RED", "S", "Red", stock=4),
            variant(f"TEE-{tag}-XL-BLUE", "xl", "blue", stock=9, price_minor=2400),
        ],
        "images": [
            catalog_pb2.ImageInput(url="https://img.example.com/tee-front.jpg", alt="Front"),
            catalog_pb2.ImageInput(url="https://img.example.com/tee-back.jpg", alt="Back"),
        ],
    }
    values.update(overrides)
    return catalog_pb2.CreateProductRequest(**values)
