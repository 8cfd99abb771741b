"""The order service's gRPC clients of its peers: catalog (prices, names) and payment (tokens).

CreateOrder, carts and Checkout call them, synchronously and with a deadline, forwarding the
caller's token (a guest's checkout checks its payment token as the order service itself).
The use cases see plain data (`ProductInfo`) and domain errors, never gRPC types.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import grpc

from ecommerce.catalog.v1 import catalog_pb2, catalog_pb2_grpc
from ecommerce.payment.v1 import payment_pb2, payment_pb2_grpc
from servicekit.context import Caller
from servicekit.errors import Unavailable

log = logging.getLogger(__name__)

_UNREACHABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED)


@dataclass(frozen=True)
class VariantInfo:
    id: str
    sku: str
    name: str
    price_minor: int


@dataclass(frozen=True)
class ProductInfo:
    id: str
    sku: str
    name: str
    price_minor: int
    currency: str
    archived: bool
    # Units that can still be bought.
    stock: int = 0
    # Its variants that can be ordered, by id.
    variants: dict[str, VariantInfo] = field(default_factory=dict)


def _metadata(caller: Caller | None, service_token: str = "") -> list[tuple[str, str]]:
    """The caller's token; a guest has none, and the service then calls as itself (if it may)."""
    if caller is not None and caller.token:
        return [("authorization", f"Bearer {caller.token}")]
    if service_token:
        return [("x-service-token", service_token), ("x-service-name", "order")]
    return []


def _unavailable(peer: str, error: grpc.aio.AioRpcError) -> Unavailable:
    if error.code() not in _UNREACHABLE:
        log.error("%s answered %s: %s", peer, error.code().name, error.details())
    return Unavailable(f"the {peer} service is unavailable; try again shortly")


class CatalogClient:
    def __init__(self, channel: grpc.aio.Channel, *, timeout: float) -> None:
        self.stub = catalog_pb2_grpc.CatalogServiceStub(channel)
        self.timeout = timeout

    async def products(self, caller: Caller | None, ids: list[str]) -> dict[str, ProductInfo]:
        """The products of these ids that exist (archived ones included), by id."""
        try:
            response = await self.stub.BatchGetProducts(
                catalog_pb2.BatchGetProductsRequest(product_ids=ids),
                timeout=self.timeout,
                metadata=_metadata(caller),
                # A peer that just restarted is waited for (within the deadline), not failed fast.
                wait_for_ready=True,
            )
        except grpc.aio.AioRpcError as error:
            raise _unavailable("catalog", error) from None
        return {
            p.id: ProductInfo(
                id=p.id,
                sku=p.sku,
                name=p.name,
                price_minor=p.price.amount_minor,
                currency=p.price.currency,
                archived=p.archived,
                stock=p.stock,
                variants={
                    v.id: VariantInfo(id=v.id, sku=v.sku, name=v.name, price_minor=v.price.amount_minor)
                    for v in p.variants
                },
            )
            for p in response.products
        }


class PaymentClient:
    def __init__(self, channel: grpc.aio.Channel, *, timeout: float, service_token: str = "") -> None:
        self.stub = payment_pb2_grpc.PaymentServiceStub(channel)
        self.timeout = timeout
        # A guest's checkout checks the payment token as the order service itself.
        self.service_token = service_token

    async def validate_token(self, caller: Caller | None, token: str) -> tuple[bool, str]:
        """Whether the provider accepts the token, and why not."""
        try:
            response = await self.stub.ValidatePaymentToken(
                payment_pb2.ValidatePaymentTokenRequest(payment_token=token),
                timeout=self.timeout,
                metadata=_metadata(caller, self.service_token),
                wait_for_ready=True,
            )
        except grpc.aio.AioRpcError as error:
            if error.code() is grpc.StatusCode.INVALID_ARGUMENT:
                return False, error.details() or "is not a valid payment token"
            raise _unavailable("payment", error) from None
        return response.valid, response.message
