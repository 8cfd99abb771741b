"""gRPC stubs of every service, and the one way the gateway calls them: a deadline, the caller's
token and request id in metadata, and errors mapped to GraphQL errors."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import grpc

from ecommerce.account.v1 import account_pb2_grpc
from ecommerce.catalog.v1 import catalog_pb2_grpc
from ecommerce.notification.v1 import notification_pb2_grpc
from ecommerce.order.v1 import order_pb2_grpc
from ecommerce.payment.v1 import payment_pb2_grpc
from gateway.calls import CallCounter
from gateway.errors import from_rpc_error
from gateway.settings import GatewaySettings
from servicekit.grpc_tls import GrpcTls
from servicekit.runtime import grpc_channel
from servicekit.tracing import client_span, set_rpc_status

Response = TypeVar("Response")


class ServiceClients:
    """Long-lived channels, one per service, shared by every request; over mutual TLS with `tls`."""

    def __init__(self, settings: GatewaySettings, tls: GrpcTls | None = None) -> None:
        self.timeout = settings.grpc_timeout
        self._tls = tls
        self._channels: list[grpc.aio.Channel] = []
        self._interceptors = [CallCounter()] if settings.report_rpc_calls else None
        self.account = account_pb2_grpc.AccountServiceStub(self._channel(settings.account_addr))
        self.catalog = catalog_pb2_grpc.CatalogServiceStub(self._channel(settings.catalog_addr))
        self.order = order_pb2_grpc.OrderServiceStub(self._channel(settings.order_addr))
        self.payment = payment_pb2_grpc.PaymentServiceStub(self._channel(settings.payment_addr))
        self.notification = notification_pb2_grpc.NotificationServiceStub(
            self._channel(settings.notification_addr)
        )

    def _channel(self, address: str) -> grpc.aio.Channel:
        channel = grpc_channel(address, tls=self._tls, interceptors=self._interceptors)
        self._channels.append(channel)
        return channel

    async def close(self) -> None:
        for channel in self._channels:
            await channel.close()


async def call(
    method: Callable[..., Awaitable[Response]],
    request: Any,
    *,
    metadata: list[tuple[str, str]],
    timeout: float,
) -> Response:
    metadata = list(metadata)
    # The call continues the GraphQL request's trace (`traceparent` in the metadata).
    with client_span(_method_name(method), metadata) as span:
        try:
            return await method(request, timeout=timeout, metadata=metadata)
        except grpc.aio.AioRpcError as error:
            set_rpc_status(span, error.code())
            raise from_rpc_error(error) from None


def _method_name(method: object) -> str:
    """`ecommerce.catalog.v1.CatalogService/GetProduct` from a stub's multi-callable."""
    name = getattr(method, "_method", b"")
    return (name.decode() if isinstance(name, bytes) else str(name)).lstrip("/") or "rpc"
