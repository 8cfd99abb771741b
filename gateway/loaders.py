"""Per-request DataLoaders, named `<entity>_by_<key>`: every lookup of one request batches into one RPC.

`Loaders.for_request` creates them for one request (or one message of a subscription), so
nothing is cached across callers. A malformed id finds nothing. Products and categories come
back as the catalog's messages, for the schema to show; payments as the `Payment` type.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, Protocol, TypeVar

from strawberry.dataloader import DataLoader

from ecommerce.catalog.v1 import catalog_pb2
from ecommerce.payment.v1 import payment_pb2
from gateway.clients import ServiceClients
from gateway.ids import canonical_uuid
from gateway.read_models import Payment

T = TypeVar("T")

MAX_BATCH_SIZE = 100


class Calls(Protocol):
    """What a loader needs of its request: the service clients and the request's way to call them."""

    @property
    def services(self) -> ServiceClients: ...

    async def call(
        self, method: Callable[..., Awaitable[T]], request: Any, *, timeout: float | None = None
    ) -> T: ...


async def products_by_id(calls: Calls, ids: list[str]) -> list[catalog_pb2.Product | None]:
    """Every product lookup of one request, in one BatchGetProducts call."""
    canonical = [canonical_uuid(str(i)) for i in ids]
    wanted = list(dict.fromkeys(c for c in canonical if c is not None))
    found: dict[str, catalog_pb2.Product] = {}
    if wanted:
        response = await calls.call(
            calls.services.catalog.BatchGetProducts, catalog_pb2.BatchGetProductsRequest(product_ids=wanted)
        )
        found = {p.id: p for p in response.products}
    return [found.get(c) if c is not None else None for c in canonical]


async def categories_by_id(calls: Calls, ids: list[str]) -> list[catalog_pb2.Category | None]:
    """Categories with their product counts: one ListCategories per request."""
    response = await calls.call(calls.services.catalog.ListCategories, catalog_pb2.ListCategoriesRequest())
    found = {c.id: c for c in response.categories}
    return [found.get(i) for i in ids]


async def payments_by_order_id(calls: Calls, order_ids: list[str]) -> list[Payment | None]:
    """The payments of every order of one request in one BatchGetPaymentsByOrder call; None for an
    order without a payment (or one the caller may not see)."""
    keys = [str(order_id) for order_id in order_ids]
    wanted = sorted({key for key in keys if canonical_uuid(key) == key.lower()})
    if not wanted:
        return [None] * len(keys)
    response = await calls.call(
        calls.services.payment.BatchGetPaymentsByOrder,
        payment_pb2.BatchGetPaymentsByOrderRequest(order_ids=wanted),
    )
    by_order = {p.order_id: Payment.from_proto(p) for p in response.payments}
    return [by_order.get(key.lower()) for key in keys]


@dataclass(frozen=True)
class Loaders:
    product_by_id: DataLoader[str, catalog_pb2.Product | None]
    category_by_id: DataLoader[str, catalog_pb2.Category | None]
    payment_by_order_id: DataLoader[str, Payment | None]

    @classmethod
    def for_request(cls, calls: Calls) -> Loaders:
        return cls(
            product_by_id=DataLoader(partial(products_by_id, calls), max_batch_size=MAX_BATCH_SIZE),
            category_by_id=DataLoader(partial(categories_by_id, calls), max_batch_size=MAX_BATCH_SIZE),
            payment_by_order_id=DataLoader(
                partial(payments_by_order_id, calls), max_batch_size=MAX_BATCH_SIZE
            ),
        )
