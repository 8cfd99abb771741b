"""gRPC calls per operation, counted by a client interceptor on the gateway's channels.

With `GATEWAY_REPORT_RPC_CALLS=true` every answer carries `extensions.rpcCalls`, the calls the
operation made per method (`{"/ecommerce.catalog.v1.CatalogService/BatchGetProducts": 1}`): the
end-to-end tests use it to fail on N+1 query patterns. Off by default; nothing is counted then.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import grpc
from strawberry.extensions import SchemaExtension

_calls: contextvars.ContextVar[Counter[str] | None] = contextvars.ContextVar(
    "gateway_rpc_calls", default=None
)


def _count(method: str | bytes) -> None:
    calls = _calls.get()
    if calls is not None:
        calls[method.decode() if isinstance(method, bytes) else method] += 1


class CallCounter(grpc.aio.UnaryUnaryClientInterceptor, grpc.aio.UnaryStreamClientInterceptor):
    """Counts each call into the current operation's counter (DataLoader tasks inherit it)."""

    async def intercept_unary_unary(
        self, continuation: Callable[..., Any], client_call_details: grpc.aio.ClientCallDetails, request: Any
    ) -> Any:
        _count(client_call_details.method)
        return await continuation(client_call_details, request)

    async def intercept_unary_stream(
        self, continuation: Callable[..., Any], client_call_details: grpc.aio.ClientCallDetails, request: Any
    ) -> Any:
        _count(client_call_details.method)
        return await continuation(client_call_details, request)


class RpcCallReport(SchemaExtension):
    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()

    def on_operation(self) -> Iterator[None]:
        token = _calls.set(self.calls)
        try:
            yield
        finally:
            with contextlib.suppress(ValueError):  # finalised outside the request's context
                _calls.reset(token)

    def get_results(self) -> dict[str, Any]:
        return {"rpcCalls": dict(sorted(self.calls.items()))}
