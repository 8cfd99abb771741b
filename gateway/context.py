"""Per-request context: the verified caller, service clients, and the request's DataLoaders."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket

from gateway import clients
from gateway.errors import ApiError, unauthenticated
from gateway.loaders import Loaders
from gateway.settings import GatewaySettings
from servicekit.context import ADMIN, Caller

T = TypeVar("T")


@dataclass
class Context:
    request: Request | WebSocket
    response: Response | WebSocket | None
    settings: GatewaySettings
    services: clients.ServiceClients
    request_id: str
    caller: Caller | None = None
    token: str | None = None
    token_error: str | None = None
    extras: dict[str, Any] = field(default_factory=dict)
    # A WebSocket's `connection_init` payload (graphql-transport-ws), set by Strawberry.
    connection_params: dict[str, Any] | None = None
    loaders: Loaders = field(init=False)

    def __post_init__(self) -> None:
        self.loaders = Loaders(self)

    def metadata(self) -> list[tuple[str, str]]:
        items = [("x-request-id", self.request_id)]
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
            if self.token_error:
                raise unauthenticated(self.token_error)
            raise unauthenticated()
        return self.caller

    def require_admin(self) -> Caller:
        caller = self.require_caller()
        if caller.role != ADMIN:
            raise ApiError("this operation is for administrators", "FORBIDDEN")
        return caller
