"""Per-request context: the verified caller, service clients, the process's shared state, and the
request's DataLoaders."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import strawberry
from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket

from gateway import clients
from gateway.errors import ApiError, unauthenticated
from gateway.live import OrderEventHub
from gateway.loaders import Loaders
from gateway.protection import Protection
from gateway.responsecache import ResponseCache
from gateway.settings import GatewaySettings
from servicekit.auth import VerifiedToken
from servicekit.context import ADMIN, Caller

T = TypeVar("T")


@dataclass
class Context:
    request: Request | WebSocket
    response: Response | WebSocket | None
    settings: GatewaySettings
    services: clients.ServiceClients
    request_id: str
    # The client's address, through the trusted proxies (gateway.forwarded).
    client_address: str = "unknown"
    caller: Caller | None = None
    token: str | None = None
    # Why the request's token did not give a caller: a bad token, or keys that cannot be had now.
    token_error: ApiError | None = None
    # A token that verified, not yet checked against the denylist: the request's first cost
    # budget call checks it in its own Redis round trip and sets `caller` (or `token_error`),
    # before anything executes (gateway.extensions.take).
    unconfirmed: VerifiedToken | None = None
    # The process's cost budgets and persisted queries; None where no Redis backs the schema.
    protection: Protection | None = None
    # Order events for `orderStatusChanged`; None where no broker feeds the schema.
    order_events: OrderEventHub | None = None
    # A WebSocket's `connection_init` payload (graphql-transport-ws), set by Strawberry.
    connection_params: dict[str, Any] | None = None
    # -- the response cache (docs/caching.md) --
    # The process's cached answers; None where the schema runs without them.
    responses: ResponseCache | None = None
    # Set by the cost limiter once the operation ran: its requested and actual cost.
    operation_cost: tuple[int, int] | None = None
    # The ETag of an answer of public catalog data (gateway.httpcache), once it is known.
    answer_etag: str | None = None
    loaders: Loaders = field(init=False)

    def __post_init__(self) -> None:
        self.loaders = Loaders.for_request(self)

    def metadata(self) -> list[tuple[str, str]]:
        items = [("x-request-id", self.request_id), ("x-client-address", self.client_address)]
        if self.caller is not None and self.token:
            items.append(("authorization", f"Bearer {self.token}"))
        return items

    async def call(
        self, method: Callable[..., Awaitable[T]], request: Any, *, timeout: float | None = None
    ) -> T:
        return await clients.call(
            method, request, metadata=self.metadata(), timeout=timeout or self.settings.grpc_timeout
        )

    def require_caller(self) -> Caller:
        if self.caller is None:
            if self.token_error is not None:
                raise self.token_error
            raise unauthenticated()
        return self.caller

    def require_admin(self) -> Caller:
        caller = self.require_caller()
        if caller.role != ADMIN:
            raise ApiError("this operation is for administrators", "FORBIDDEN")
        return caller


# What every resolver that reads the request takes as `info`.
Info = strawberry.Info[Context, None]


def request_context(value: object) -> Context | None:
    """The context of an operation run by the gateway; None when a schema is executed without one."""
    return value if isinstance(value, Context) else None
