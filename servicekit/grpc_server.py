"""The gRPC server every service runs: health, reflection and the interceptor.

`RpcInterceptor` does, outermost first: request context (request id), tracing, metrics, logging,
error mapping, token verification. It wraps the unary handler; the servicer stays a thin translator.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from servicekit.auth import Authenticator, bearer_token
from servicekit.context import caller_var, client_address, client_address_var, new_request_id, request_id_var
from servicekit.errors import DomainError, Unavailable
from servicekit.grpc_tls import GrpcTls
from servicekit.logging import access_logged
from servicekit.metrics import RPC_DURATION, RPC_HANDLED
from servicekit.rpc_status import internal_status, to_grpc_status
from servicekit.tracing import TRACE_METADATA, rpc_server_span, set_rpc_status
from servicekit.transient import is_transient

log = logging.getLogger(__name__)

UnaryBehavior = Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]]
MAX_MESSAGE_BYTES = 4 * 1024 * 1024


# The metadata the server reads, looked up in one pass over what the caller sent.
_READ_METADATA = frozenset(
    {
        "x-request-id",
        "authorization",
        "x-service-token",
        "x-service-name",
        "x-client-address",
        *TRACE_METADATA,
    }
)


# Probes (Kubernetes, the gateway's /status, `ecommerce dev` waiting for a start) call it every few
# seconds: they are neither access-logged nor traced, so that the log shows what people did.
_HEALTH_PREFIX = "/" + health_pb2.DESCRIPTOR.services_by_name["Health"].full_name + "/"


def _read_metadata(context: grpc.aio.ServicerContext) -> dict[str, str]:
    found: dict[str, str] = {}
    for item in context.invocation_metadata() or ():
        key = item.key
        if key in _READ_METADATA and key not in found:
            value = item.value
            found[key] = value if isinstance(value, str) else value.decode("latin-1")
    return found


class RpcInterceptor(grpc.aio.ServerInterceptor):
    """Everything a unary RPC goes through, outermost first: request context (request id),
    trace, RED metrics, the access log line, error mapping, token verification.

    One interceptor rather than six: the wrapper of each method is built on its first call and
    reused, and the metadata is read once, so the fixed cost per RPC stays small. Streams and
    health checks pass through untouched.
    """

    def __init__(self, authenticator: Authenticator | None) -> None:
        self.authenticator = authenticator
        self._wrapped: dict[str, tuple[grpc.RpcMethodHandler, grpc.RpcMethodHandler]] = {}

    async def intercept_service(self, continuation, handler_call_details):
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or handler.unary_unary is None or method.startswith(_HEALTH_PREFIX):
            return handler
        cached = self._wrapped.get(method)
        if cached is not None and cached[0] is handler:
            return cached[1]
        wrapped = grpc.unary_unary_rpc_method_handler(
            self._behavior(handler.unary_unary, method),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
        self._wrapped[method] = (handler, wrapped)
        return wrapped

    def _behavior(self, inner: UnaryBehavior, method: str) -> UnaryBehavior:
        service, _, name = method.lstrip("/").rpartition("/")
        span_name = method.lstrip("/")
        attributes = {"rpc.system": "grpc", "rpc.service": service, "rpc.method": name}
        duration = RPC_DURATION.labels(service, name)
        handled: dict[grpc.StatusCode, Any] = {}
        serve = self._serve

        async def behavior(request: Any, context: grpc.aio.ServicerContext) -> Any:
            metadata = _read_metadata(context)
            request_id_var.set(metadata.get("x-request-id") or new_request_id())
            caller_var.set(None)
            client_address_var.set(client_address(metadata.get("x-client-address"), context.peer()))
            started = time.perf_counter()
            code = grpc.StatusCode.OK
            with rpc_server_span(metadata, span_name, attributes) as span:
                try:
                    return await serve(inner, request, context, metadata, method)
                except grpc.aio.AbortError:
                    code = context.code() or grpc.StatusCode.UNKNOWN
                    raise
                except asyncio.CancelledError:  # the caller went away or its deadline passed
                    code = grpc.StatusCode.CANCELLED
                    raise
                except Exception:
                    code = grpc.StatusCode.UNKNOWN
                    raise
                finally:
                    elapsed = time.perf_counter() - started
                    if span is not None and code is not grpc.StatusCode.CANCELLED:
                        set_rpc_status(span, code)
                    duration.observe(elapsed)
                    counter = handled.get(code)
                    if counter is None:
                        counter = handled[code] = RPC_HANDLED.labels(service, name, code.name)
                    counter.inc()
                    if access_logged(code is grpc.StatusCode.OK):
                        caller = caller_var.get()
                        log.info(
                            "rpc",
                            extra={
                                "rpc_method": method,
                                "grpc_code": code.name,
                                "duration_ms": round(elapsed * 1000, 2),
                                "account_id": caller.account_id if caller else None,
                            },
                        )

        return behavior

    async def _serve(
        self,
        inner: UnaryBehavior,
        request: Any,
        context: grpc.aio.ServicerContext,
        metadata: dict[str, str],
        method: str,
    ) -> Any:
        """Verify the caller, run the servicer; domain errors become rich statuses, anything else
        is logged and answered INTERNAL (UNAVAILABLE when a dependency is down), unexplained."""
        try:
            authenticator = self.authenticator
            if authenticator is not None:
                token = bearer_token(metadata.get("authorization"))
                if token is not None:
                    caller_var.set(await authenticator.authenticate(token))
                elif (service_token := metadata.get("x-service-token")) is not None:
                    caller_var.set(
                        authenticator.authenticate_service(service_token, metadata.get("x-service-name"))
                    )
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


Registration = tuple[Callable[[Any, grpc.aio.Server], None], Any]
Probe = Callable[[], Awaitable[None]]

# The health "service" name whose check is a round trip to the service's own database.
DATABASE_CHECK = "database"
PROBE_TIMEOUT = 2.0


class ProbingHealthServicer(health.aio.HealthServicer):
    """The standard health service, plus names whose `Check` runs a probe when asked.

    `Check("database")` answers SERVING when the probe (a query to the service's database)
    returns within `PROBE_TIMEOUT` seconds, NOT_SERVING when it fails or takes longer. The
    process's own status (`""` and the service names, what Kubernetes probes) never depends on
    the probe: a database outage does not make a liveness probe restart healthy processes.
    """

    def __init__(self, probes: Mapping[str, Probe], *, timeout: float = PROBE_TIMEOUT) -> None:
        super().__init__()
        self.probes = dict(probes)
        self.timeout = timeout

    async def Check(self, request: health_pb2.HealthCheckRequest, context: Any) -> Any:
        probe = self.probes.get(request.service)
        if probe is None:
            return await super().Check(request, context)
        try:
            async with asyncio.timeout(self.timeout):
                await probe()
        except Exception as exc:
            log.warning("health probe %s failed: %s: %s", request.service, type(exc).__name__, exc)
            return health_pb2.HealthCheckResponse(status=health_pb2.HealthCheckResponse.NOT_SERVING)
        return health_pb2.HealthCheckResponse(status=health_pb2.HealthCheckResponse.SERVING)


def create_server(
    registrations: Sequence[Registration],
    service_names: Iterable[str],
    *,
    authenticator: Authenticator | None,
    extra_interceptors: Sequence[grpc.aio.ServerInterceptor] = (),
    probes: Mapping[str, Probe] | None = None,
    max_connection_age: float | None = None,
    max_connection_age_grace: float = 15.0,
    reflection_enabled: bool = True,
) -> tuple[grpc.aio.Server, health.aio.HealthServicer]:
    """A configured server with our servicers, health checking and (when `reflection_enabled`)
    reflection; not yet bound or started. Services turn reflection off in production.

    With `max_connection_age` (seconds), a client's connection is closed (GOAWAY) after about that
    long, its calls in flight given `max_connection_age_grace` to finish: the client reconnects and
    re-resolves its target, so replicas started since receive their share of the calls.

    `extra_interceptors` run inside `RpcInterceptor`: after the caller is verified, within the
    error mapping, the metrics and the trace. `probes` are health names checked on demand
    (`ProbingHealthServicer`).
    """
    interceptors: list[grpc.aio.ServerInterceptor] = [RpcInterceptor(authenticator), *extra_interceptors]
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
            *server_connection_age_options(max_connection_age, max_connection_age_grace),
        ],
    )
    for add, servicer in registrations:
        add(servicer, server)
    health_servicer = ProbingHealthServicer(probes or {})
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    names = list(service_names)
    if reflection_enabled:
        reflection.enable_server_reflection(
            [*names, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME],
            server,
        )
    return server, health_servicer


def bind(server: grpc.aio.Server, address: str, tls: GrpcTls | None) -> int:
    """Listen on `address` ("host:port", port 0 for a free one); returns the port.

    With `tls` the port speaks mutual TLS only and no plaintext port is opened: a plaintext
    client's handshake fails, and so does one without a certificate of the platform's CA."""
    if tls is None:
        return server.add_insecure_port(address)
    return server.add_secure_port(address, tls.server_credentials())


def server_connection_age_options(age: float | None, grace: float) -> list[tuple[str, int]]:
    """The server options bounding a connection's age (none when `age` is None)."""
    if age is None:
        return []
    return [
        ("grpc.max_connection_age_ms", round(age * 1000)),
        ("grpc.max_connection_age_grace_ms", round(grace * 1000)),
    ]


async def set_serving(
    health_servicer: health.aio.HealthServicer, names: Iterable[str], serving: bool
) -> None:
    status = health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
    for name in ["", *names]:
        await health_servicer.set(name, status)
