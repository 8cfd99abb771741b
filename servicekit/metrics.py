"""Prometheus metrics of every process, and the side HTTP server that serves them.

Each process serves `/metrics`, `/healthz` and `/readyz` on its metrics port (9101-9106 on one
machine, 9090 in Kubernetes). The metric objects are defined here, once, so that names, labels
and help texts stay the same everywhere and the alert rules and dashboard under
`k8s/components/monitoring` can rely on them (a unit test checks that they do).

What servicekit measures by itself: RED per RPC (`grpc_server.RpcInterceptor`), outbox lag and
publishes, consumer lag, inbox duplicates and dead letters (`track_consumer`), and circuit
breaker state (`track_breaker`). The services update the domain metrics below where the thing
happens, e.g. `SAGA_OUTCOMES.labels(outcome="confirmed").inc()`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from collections.abc import Callable, Iterator
from typing import Any, Protocol

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

log = logging.getLogger(__name__)

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
SAGA_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
REFRESH_INTERVAL = 5.0

# No `*_created` series next to every counter and histogram: Prometheus does not need them.
disable_created_metrics()

# -- RED per RPC (names as the grpc-ecosystem interceptors use them) ----------------------------
RPC_HANDLED = Counter(
    "grpc_server_handled_total",
    "RPCs completed by this server, by service, method and status code.",
    ["grpc_service", "grpc_method", "grpc_code"],
)
RPC_DURATION = Histogram(
    "grpc_server_handling_seconds",
    "Time this server took to answer an RPC, by service and method.",
    ["grpc_service", "grpc_method"],
    buckets=LATENCY_BUCKETS,
)

# -- RED per GraphQL operation (the gateway) -----------------------------------------------------
GRAPHQL_OPERATIONS = Counter(
    "ecommerce_graphql_operations_total",
    "GraphQL operations answered by the gateway, by operation name, type and result code "
    "(OK, or the first error's extensions.code).",
    ["operation", "type", "code"],
)
GRAPHQL_DURATION = Histogram(
    "ecommerce_graphql_operation_duration_seconds",
    "Time the gateway took to answer a GraphQL operation, by operation name and type.",
    ["operation", "type"],
    buckets=LATENCY_BUCKETS,
)

# -- outbox and consumers (servicekit) ------------------------------------------------------------
OUTBOX_LAG = Gauge(
    "ecommerce_outbox_lag_seconds",
    "Age of the oldest outbox event not yet published to the broker (0 when all are published).",
)
OUTBOX_PUBLISHED = Counter(
    "ecommerce_outbox_published_total", "Outbox events the relay published and the broker acknowledged."
)
CONSUMER_LAG = Gauge(
    "ecommerce_consumer_lag_messages",
    "Messages on this consumer's assigned partitions not yet consumed, by consumer.",
    ["consumer"],
)

# -- cache (catalog) ---------------------------------------------------------------------------
CACHE_HITS = Counter("ecommerce_cache_hits_total", "Cache lookups answered from Redis, by cache.", ["cache"])
CACHE_MISSES = Counter(
    "ecommerce_cache_misses_total", "Cache lookups that had to read the database, by cache.", ["cache"]
)
CACHE_ERRORS = Counter(
    "ecommerce_cache_errors_total",
    "Cache operations that failed (Redis unreachable); the read was served from the database.",
    ["cache"],
)

# -- the order saga (order) --------------------------------------------------------------------
SAGA_STEP_DURATION = Histogram(
    "ecommerce_saga_step_duration_seconds",
    "Time from sending a saga command to handling its reply, by step (reserve_stock, "
    "authorize_payment, release_stock, commit_stock, refund_payment) and outcome (ok, or what the "
    "reply said instead, e.g. rejected, declined).",
    ["step", "outcome"],
    buckets=SAGA_BUCKETS,
)
SAGA_STEP_RETRIES = Counter(
    "ecommerce_saga_step_retries_total",
    "Saga commands sent again because their step deadline passed, by step.",
    ["step"],
)
SAGA_OUTCOMES = Counter(
    "ecommerce_saga_outcomes_total",
    "Sagas finished, by outcome: confirmed, or cancelled with the cancellation reason in lower case.",
    ["outcome"],
)
SAGA_OLDEST_IN_FLIGHT = Gauge(
    "ecommerce_saga_oldest_in_flight_seconds",
    "Age of the oldest order still in PENDING or AWAITING_PAYMENT (0 when none): a saga that is stuck.",
)
ORDERS_BY_STATUS = Gauge(
    "ecommerce_orders_by_status", "Orders in each status, as last counted by the order service.", ["status"]
)

# -- payments (payment) ------------------------------------------------------------------------
PAYMENT_OUTCOMES = Counter(
    "ecommerce_payment_outcomes_total",
    "Payment operations finished, by outcome: succeeded, declined, failed (provider unavailable), refunded.",
    ["outcome"],
)

# -- notifications (notification) --------------------------------------------------------------
NOTIFICATIONS_SENT = Counter(
    "ecommerce_notifications_sent_total", "Notifications delivered, by channel (email, webhook).", ["channel"]
)
NOTIFICATIONS_FAILED = Counter(
    "ecommerce_notifications_failed_total",
    "Notifications given up on after their retry budget, by channel (email, webhook).",
    ["channel"],
)

# The circuit breaker state gauge's values.
BREAKER_STATES = {"closed": 0, "half_open": 1, "open": 2}


class _Consumer(Protocol):
    name: str
    processed: int
    duplicates: int
    dead_lettered: int

    async def lag(self) -> int: ...


class _Relay(Protocol):
    async def oldest_unpublished_age(self) -> float: ...


_consumers: weakref.WeakSet[Any] = weakref.WeakSet()
_breakers: weakref.WeakSet[Any] = weakref.WeakSet()


def track_consumer(consumer: _Consumer) -> None:
    """Export an EventConsumer's counts (processed, duplicates dropped, dead-lettered) and its lag."""
    _consumers.add(consumer)


def track_breaker(breaker: Any) -> None:
    """Export a CircuitBreaker's state (0 closed, 1 half-open, 2 open) and how often it opened."""
    _breakers.add(breaker)


class _TrackedCollector(Collector):
    """Reads the tracked objects' own counters at scrape time, so the hot paths count nothing twice."""

    def collect(self) -> Iterator[Metric]:
        processed = CounterMetricFamily(
            "ecommerce_consumer_processed",
            "Events handled by this consumer, by consumer.",
            labels=["consumer"],
        )
        duplicates = CounterMetricFamily(
            "ecommerce_inbox_duplicates",
            "Redelivered events the inbox recognised and dropped, by consumer.",
            labels=["consumer"],
        )
        dead = CounterMetricFamily(
            "ecommerce_consumer_dead_lettered",
            "Events sent to the dead-letter topic (unparseable, or failing past their attempts), by consumer.",
            labels=["consumer"],
        )
        totals: dict[str, list[int]] = {}
        for consumer in list(_consumers):
            sums = totals.setdefault(consumer.name, [0, 0, 0])
            sums[0] += consumer.processed
            sums[1] += consumer.duplicates
            sums[2] += consumer.dead_lettered
        for name, (done, dup, dlq) in sorted(totals.items()):
            processed.add_metric([name], done)
            duplicates.add_metric([name], dup)
            dead.add_metric([name], dlq)
        state = GaugeMetricFamily(
            "ecommerce_circuit_breaker_state",
            "Circuit breaker state by breaker: 0 closed, 1 half-open, 2 open.",
            labels=["breaker"],
        )
        opened = CounterMetricFamily(
            "ecommerce_circuit_breaker_opened",
            "Times the circuit breaker opened, by breaker.",
            labels=["breaker"],
        )
        for breaker in list(_breakers):
            state.add_metric([breaker.name], BREAKER_STATES.get(breaker.state.value, 0))
            opened.add_metric([breaker.name], breaker.times_opened)
        yield from (processed, duplicates, dead, state, opened)


REGISTRY.register(_TrackedCollector())


async def refresh(relay: _Relay | None = None) -> None:
    """Compute the gauges that need I/O: each consumer's lag and the outbox lag.

    The outbox lag is set last, with nothing awaited after it: where several relays share one
    process (the integration tests run services side by side) the caller reads its own relay's
    value, not one another relay's refresh wrote meanwhile."""
    for consumer in list(_consumers):
        try:
            CONSUMER_LAG.labels(consumer=consumer.name).set(await consumer.lag())
        except Exception as exc:  # the broker is away
            log.debug("cannot measure the lag of %s: %s", consumer.name, exc)
    if relay is not None:
        try:
            OUTBOX_LAG.set(await relay.oldest_unpublished_age())
        except Exception as exc:  # the database is away; the next round tries again
            log.debug("cannot measure the outbox lag: %s", exc)


async def refresh_forever(relay: _Relay | None = None, *, interval: float = REFRESH_INTERVAL) -> None:
    while True:
        await refresh(relay)
        await asyncio.sleep(interval)


# -- the side server -----------------------------------------------------------------------------


class SideServer:
    """`GET /metrics`, `/healthz` and `/readyz` over plain HTTP/1.1 on the metrics port.

    A few lines of asyncio rather than a web framework: it answers Prometheus and people, one
    request per connection. `/healthz` says the process is alive; `/readyz` answers 503 until
    `ready` is set (the service is serving) and again once shutdown has begun.
    """

    MAX_HEADER_BYTES = 8192

    def __init__(
        self, *, registry: CollectorRegistry = REGISTRY, ready: Callable[[], bool] | None = None
    ) -> None:
        self.registry = registry
        self.ready = False
        self._ready_check = ready
        self._server: asyncio.Server | None = None
        self.port: int | None = None

    async def start(self, host: str, port: int) -> int | None:
        """Listen on `host:port` (0 for a free port); returns the port, or None if it is taken."""
        try:
            self._server = await asyncio.start_server(self._serve, host, port)
        except OSError as exc:
            # A second process on the same machine (tests run in parallel): metrics are lost, the
            # service is not.
            log.warning("metrics port %s:%d is not available (%s); serving no metrics", host, port, exc)
            return None
        self.port = int(self._server.sockets[0].getsockname()[1])
        log.info("metrics and health on http://%s:%d/metrics", host, self.port)
        return self.port

    async def close(self) -> None:
        self.ready = False
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2.0)
            self._server = None

    def is_ready(self) -> bool:
        return self.ready and (self._ready_check is None or self._ready_check())

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(10):
                head = await reader.readuntil(b"\r\n\r\n")
                if len(head) > self.MAX_HEADER_BYTES:
                    await self._answer(writer, 431, b"request header too large\n")
                    return
                method, _, rest = head.split(b"\r\n", 1)[0].decode("latin-1").partition(" ")
                path = rest.split(" ", 1)[0].split("?", 1)[0]
                if method not in ("GET", "HEAD"):
                    await self._answer(writer, 405, b"method not allowed\n")
                elif path == "/metrics":
                    await self._answer(
                        writer, 200, generate_latest(self.registry), CONTENT_TYPE_LATEST, method
                    )
                elif path == "/healthz":
                    await self._answer(writer, 200, b'{"status":"ok"}\n', "application/json", method)
                elif path == "/readyz":
                    ready = self.is_ready()
                    body = b'{"status":"ready"}\n' if ready else b'{"status":"not ready"}\n'
                    await self._answer(writer, 200 if ready else 503, body, "application/json", method)
                else:
                    await self._answer(writer, 404, b"not found\n")
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    @staticmethod
    async def _answer(
        writer: asyncio.StreamWriter,
        status: int,
        body: bytes,
        content_type: str = "text/plain; charset=utf-8",
        method: str = "GET",
    ) -> None:
        reason = {
            200: "OK",
            404: "Not Found",
            405: "Method Not Allowed",
            431: "Too Large",
            503: "Unavailable",
        }
        writer.write(
            f"HTTP/1.1 {status} {reason.get(status, '')}\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
        )
        if method != "HEAD":
            writer.write(body)
        await writer.drain()
