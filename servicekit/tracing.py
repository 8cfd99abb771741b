"""OpenTelemetry traces: from the gateway through gRPC metadata and Kafka headers into every consumer.

The W3C `traceparent` travels in gRPC metadata (the gateway's `call()`, the services' channels)
and in Kafka headers (written by `Outbox.add`, read by `EventConsumer`), so one order's trace
holds its GraphQL request, each RPC, each saga command and each reply.

Spans are recorded and exported only when `OTEL_EXPORTER_OTLP_ENDPOINT` is set (or a test hands
`configure_tracing` an exporter). Otherwise no SDK is loaded and nothing is recorded: an incoming
`traceparent` is still passed on, so the trace id of a caller that traces reaches every log line.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable, Iterator, Mapping, MutableMapping, Sequence
from typing import TYPE_CHECKING, Any

import grpc
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from servicekit.context import request_id_var

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter

log = logging.getLogger(__name__)

TRACEPARENT = "traceparent"
# The propagation headers read from gRPC metadata and Kafka headers.
TRACE_METADATA = (TRACEPARENT, "tracestate", "baggage")
tracer = trace.get_tracer("ecommerce")

# Server-side codes that mean "our fault"; the others (NOT_FOUND, INVALID_ARGUMENT...) are the caller's.
SERVER_ERROR_CODES = frozenset(
    {
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.DATA_LOSS,
        grpc.StatusCode.UNIMPLEMENTED,
    }
)

_provider: TracerProvider | None = None


def configure_tracing(
    service: str, *, endpoint: str = "", exporter: SpanExporter | None = None
) -> TracerProvider | None:
    """Record spans and export them over OTLP to `endpoint` (or to `exporter`); with neither, do nothing.

    Called once per process; a later call adds its exporter to the provider already installed.
    """
    global _provider
    if not endpoint and exporter is None:
        return _provider
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    if _provider is None:
        _provider = TracerProvider(resource=Resource.create({"service.name": service}))
        trace.set_tracer_provider(_provider)
    if exporter is not None:
        _provider.add_span_processor(SimpleSpanProcessor(exporter))
    if endpoint:
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        _provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
        log.info("exporting traces over OTLP to %s", endpoint)
    return _provider


def enabled() -> bool:
    return _provider is not None


def current_ids() -> tuple[str | None, str | None]:
    """The current trace id and span id in hex, or (None, None) outside any trace."""
    span_context = trace.get_current_span().get_span_context()
    if not span_context.is_valid:
        return None, None
    return format(span_context.trace_id, "032x"), format(span_context.span_id, "016x")


def current_trace_id() -> str | None:
    return current_ids()[0]


def inject(carrier: MutableMapping[str, str]) -> MutableMapping[str, str]:
    """Write the current trace context (`traceparent`, `tracestate`) into `carrier`; nothing outside a trace."""
    if trace.get_current_span().get_span_context().is_valid:
        propagate.inject(carrier)
    return carrier


def _text(value: str | bytes) -> str:
    return value.decode("latin-1") if isinstance(value, bytes) else value


def _carrier(items: Iterable[tuple[str, str | bytes]] | None) -> dict[str, str]:
    """The propagation headers of gRPC metadata or Kafka headers, as text."""
    return {key.lower(): _text(value) for key, value in items or () if key.lower() in TRACE_METADATA}


@contextlib.contextmanager
def _continue(
    carrier: Mapping[str, str], name: str, kind: SpanKind, attributes: dict[str, Any]
) -> Iterator[Span | None]:
    """Continue the caller's trace: a span of ours when tracing, else just its context, else nothing."""
    if _provider is not None:
        parent = propagate.extract(carrier) if carrier else None
        with tracer.start_as_current_span(
            name,
            context=parent,
            kind=kind,
            attributes=attributes,
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            yield span
        return
    if TRACEPARENT not in carrier:
        yield None
        return
    token = otel_context.attach(propagate.extract(carrier))
    try:
        yield None
    finally:
        otel_context.detach(token)


@contextlib.contextmanager
def server_span(
    name: str, headers: Mapping[str, str], *, attributes: dict[str, Any] | None = None
) -> Iterator[Span | None]:
    """A SERVER span continuing the trace of incoming HTTP headers (the gateway)."""
    carrier = {key: headers[key] for key in (TRACEPARENT, "tracestate") if key in headers}
    with _continue(carrier, name, SpanKind.SERVER, attributes or {}) as span:
        yield span


@contextlib.contextmanager
def client_span(
    name: str, metadata: list[tuple[str, str]], *, attributes: dict[str, Any] | None = None
) -> Iterator[Span | None]:
    """A CLIENT span around an outgoing RPC; its context is appended to `metadata`."""
    if _provider is None:
        metadata.extend(inject({}).items())
        yield None
        return
    with tracer.start_as_current_span(
        name,
        kind=SpanKind.CLIENT,
        attributes=attributes or {},
        record_exception=False,
        set_status_on_exception=False,
    ) as span:
        metadata.extend(inject({}).items())
        yield span


@contextlib.contextmanager
def consuming(
    headers: Sequence[tuple[str, bytes]] | None, *, topic: str, consumer: str
) -> Iterator[Span | None]:
    """Handle one Kafka message in the trace (and with the request id) of the request that caused it."""
    items = list(headers or ())
    carrier = _carrier(items)
    event_type = next((_text(v) for k, v in items if k == "event_type"), "")
    request_id = next((_text(v) for k, v in items if k == "x-request-id"), "")
    token = request_id_var.set(request_id[:128])
    try:
        with _continue(
            carrier,
            f"{topic} process",
            SpanKind.CONSUMER,
            {
                "messaging.system": "kafka",
                "messaging.destination.name": topic,
                "messaging.consumer.group.name": consumer,
                "messaging.operation.type": "process",
                "ecommerce.event_type": event_type,
            },
        ) as span:
            yield span
    finally:
        request_id_var.reset(token)


def set_rpc_status(span: Span | None, code: grpc.StatusCode) -> None:
    if span is None:
        return
    span.set_attribute("rpc.grpc.status_code", code.value[0])
    if code in SERVER_ERROR_CODES:
        span.set_status(Status(StatusCode.ERROR, code.name))


_NO_SPAN = contextlib.nullcontext()


def rpc_server_span(
    metadata: Mapping[str, str], name: str, attributes: dict[str, Any]
) -> contextlib.AbstractContextManager[Span | None]:
    """The SERVER span of one RPC, continuing the caller's trace (`traceparent` in its metadata);
    nothing at all when we do not trace and the caller sent no trace."""
    if _provider is None and TRACEPARENT not in metadata:
        return _NO_SPAN
    carrier = {key: metadata[key] for key in TRACE_METADATA if key in metadata}
    return _continue(carrier, name, SpanKind.SERVER, attributes)


class TracingClientInterceptor(grpc.aio.UnaryUnaryClientInterceptor):
    """Puts the current trace context into the metadata of every outgoing unary call."""

    async def intercept_unary_unary(self, continuation, client_call_details, request):
        carrier = inject({})
        if carrier:
            metadata = list(client_call_details.metadata or ())
            metadata.extend(carrier.items())
            client_call_details = client_call_details._replace(metadata=grpc.aio.Metadata(*metadata))
        return await continuation(client_call_details, request)
