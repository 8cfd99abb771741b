"""The gRPC server every service runs: health, reflection and the interceptor chain.

Interceptors, outermost first: request context (request id), tracing, metrics, logging, error
mapping, token verification. Each wraps the unary handler; the servicer stays a thin translator.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from servicekit.auth import Authenticator, bearer_token
from servicekit.context import caller_var, new_request_id, request_id_var
from servicekit.errors import DomainError, Unavailable
from servicekit.metrics import RpcMetricsInterceptor
from servicekit.rpc_status import internal_status, to_grpc_status
from servicekit.tracing import TracingInterceptor
from servicekit.transient import is_transient

log = logging.getLogger(__name__)

UnaryBehavior = Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]]
MAX_MESSAGE_BYTES = 4 * 1024 * 1024


def _metadata(context: grpc.aio.ServicerContext, key: str) -> str | None:
    for item in context.invocation_metadata() or ():
        if item.key == key:
            return item.value if isinstance(item.value, str) else item.value.decode()
    return None


class _UnaryInterceptor(grpc.aio.ServerInterceptor):
    """Base: wraps unary-unary behaviours with `around`; other kinds pass through."""

    async def intercept_service(self, continuation, handler_call_details):  # type: ignore[no-untyped-def]
        handler = await continuation(handler_call_details)
        if handler is None or handler.unary_unary is None:
            return handler
        inner: UnaryBehavior = handler.unary_unary
        method = handler_call_details.method

        async def behavior(request: Any, context: grpc.aio.ServicerContext) -> Any:
            return await self.around(inner, request, context, method)

        return grpc.unary_unary_rpc_method_handler(
            behavior,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )

    async def around(
        self, inner: UnaryBehavior, request: Any, context: grpc.aio.ServicerContext, method: str
    ) -> Any:
        raise NotImplementedError


class RequestContextInterceptor(_UnaryInterceptor):
    """Carries the caller's `x-request-id` (or a new one) in a context variable for logs."""

    async def around(self, inner, request, context, method):  # type: ignore[no-untyped-def]
        request_id_var.set(_metadata(context, "x-request-id") or new_request_id())
        caller_var.set(None)
        return await inner(request, context)


class LoggingInterceptor(_UnaryInterceptor):
    async def around(self, inner, request, context, method):  # type: ignore[no-untyped-def]
        started = time.perf_counter()
        code = grpc.StatusCode.OK
        try:
            return await inner(request, context)
        except grpc.aio.AbortError:
            code = context.code() or grpc.StatusCode.UNKNOWN
            raise
        finally:
            caller = caller_var.get()
            log.info(
                "rpc",
                extra={
                    "rpc_method": method,
                    "grpc_code": code.name if isinstance(code, grpc.StatusCode) else str(code),
                    "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                    "account_id": caller.account_id if caller else None,
                },
            )


class ErrorInterceptor(_UnaryInterceptor):
    """Domain errors become rich statuses; anything else is logged and answered INTERNAL, unexplained."""

    async def around(self, inner, request, context, method):  # type: ignore[no-untyped-def]
        try:
            return await inner(request, context)
        except grpc.aio.AbortError:
            raise
        except DomainError as error:
            status = to_grpc_status(error)
        except Exception as exc:
            if is_transient(exc):
                # PostgreSQL or Redis is down or restarting: the caller may try again.
                log.warning("%s: a dependency is unavailable: %s: %s", method, type(exc).__name__, exc)
                status = to_grpc_status(Unavailable("a dependency is unavailable; try again shortly"))
            else:
                log.exception("unhandled error in %s", method)
                status = internal_status()
        await context.abort(status.code, status.details, status.trailing_metadata)


class AuthInterceptor(_UnaryInterceptor):
    """Verifies the bearer token when one is sent; the use case decides whether one is required."""

    def __init__(self, authenticator: Authenticator) -> None:
        self.authenticator = authenticator

    async def around(self, inner, request, context, method):  # type: ignore[no-untyped-def]
        token = bearer_token(_metadata(context, "authorization"))
        if token is not None:
            caller_var.set(await self.authenticator.authenticate(token))
        elif (service_token := _metadata(context, "x-service-token")) is not None:
            caller_var.set(
                self.authenticator.authenticate_service(service_token, _metadata(context, "x-service-name"))
            )
        return await inner(request, context)


Registration = tuple[Callable[[Any, grpc.aio.Server], None], Any]


def create_server(
    registrations: Sequence[Registration],
    service_names: Iterable[str],
    *,
    authenticator: Authenticator | None,
    extra_interceptors: Sequence[grpc.aio.ServerInterceptor] = (),
) -> tuple[grpc.aio.Server, health.aio.HealthServicer]:
    """A configured server with our servicers, health checking and reflection; not yet bound or started."""
    interceptors: list[grpc.aio.ServerInterceptor] = [
        RequestContextInterceptor(),
        TracingInterceptor(),  # before logging, so that the log line carries the trace id
        RpcMetricsInterceptor(),
        LoggingInterceptor(),
        ErrorInterceptor(),
        *extra_interceptors,
    ]
    if authenticator is not None:
        interceptors.append(AuthInterceptor(authenticator))
    server = grpc.aio.server(
        interceptors=interceptors,
        options=[
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            ("grpc.so_reuseport", 0),
            # Our clients ping idle connections every 30 s (CHANNEL_OPTIONS) to notice dead
            # peers; by default the server counts those as abuse and closes the connection with
            # GOAWAY "too_many_pings", failing calls that were about to use it.
            ("grpc.keepalive_permit_without_calls", 1),
            ("grpc.http2.min_recv_ping_interval_without_data_ms", 10_000),
        ],
    )
    for add, servicer in registrations:
        add(servicer, server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    names = list(service_names)
    reflection.enable_server_reflection(
        [*names, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME],
        server,
    )
    return server, health_servicer


async def set_serving(
    health_servicer: health.aio.HealthServicer, names: Iterable[str], serving: bool
) -> None:
    status = health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
    for name in ["", *names]:
        await health_servicer.set(name, status)
