"""One service process: its resources opened in order, its server and loops run, all closed cleanly.

`create_server()` builds a configured server (so tests run the real thing in-process on a free
port); `start()` runs it with the outbox relay and the service's loops, `shutdown()` marks health
NOT_SERVING, stops the server with a grace period and closes the loops and connections. A service
names its parts in a `servicekit.app.ServiceApp`, which runs them through these.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from typing import TypedDict

import grpc
import redis.asyncio as aioredis
from grpc_health.v1 import health
from sqlalchemy import Table, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from ecommerce.account.v1 import account_pb2, account_pb2_grpc
from servicekit.auth import Authenticator, JwksFetcher, JwksKeySet, TokenDenylist, jwks_from_json
from servicekit.db import create_engine, session_factory
from servicekit.errors import Unavailable
from servicekit.grpc_server import DATABASE_CHECK, Registration, bind, create_server, set_serving
from servicekit.grpc_tls import GrpcTls, process_grpc_tls
from servicekit.heap import freeze_startup_heap
from servicekit.inbox import EventConsumer, Handler
from servicekit.kafka import BrokerAccess, RenewingProducer, broker_access, create_producer
from servicekit.metrics import SideServer, refresh_forever
from servicekit.outbox import Outbox, OutboxRelay
from servicekit.security import TokenVerifier
from servicekit.settings import ServiceSettings, grpc_target, production_secret_problems
from servicekit.tracing import TracingClientInterceptor, configure_tracing
from servicekit.transient import is_transient

log = logging.getLogger(__name__)

# Seconds a gRPC server's stop may take beyond its grace before the shutdown goes on without it.
STOP_MARGIN = 5.0
CHANNEL_OPTIONS = [
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.http2.max_pings_without_data", 0),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.max_receive_message_length", 4 * 1024 * 1024),
    # After a peer restarts, reconnect within seconds: the default backoff grows to two minutes,
    # so a service that was down for a while would stay unreachable long after it is back.
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.min_reconnect_backoff_ms", 200),
    ("grpc.max_reconnect_backoff_ms", 2_000),
    # A peer may run as several processes (a target listing them, or a headless Service's DNS
    # name): spread calls over all of them, not only the first one that answered.
    ("grpc.lb_policy_name", "round_robin"),
]


def grpc_channel(
    address: str,
    *,
    tls: GrpcTls | None = None,
    interceptors: Sequence[grpc.aio.ClientInterceptor] | None = None,
) -> grpc.aio.Channel:
    """A channel to `address` (see `servicekit.settings.grpc_target`), balancing calls round-robin
    over every address it resolves to; over mutual TLS with `tls` (`load_grpc_tls`), else plaintext.

    Every channel of the platform is made here, so that GRPC_TLS_ENABLED reaches all of them."""
    target = grpc_target(address)
    if tls is None:
        return grpc.aio.insecure_channel(target, options=CHANNEL_OPTIONS, interceptors=interceptors)
    return grpc.aio.secure_channel(
        target,
        tls.channel_credentials(),
        options=[*CHANNEL_OPTIONS, *tls.channel_options()],
        interceptors=interceptors,
    )


def account_jwks_fetcher(channel: grpc.aio.Channel, *, timeout: float = 5.0) -> JwksFetcher:
    """Fetches the account service's public keys.

    The call waits up to `timeout` for the channel to connect: just after the account service
    restarted (as it does to rotate its signing key) the channel may still be backing off, and
    the first token signed by the new key must wait for the reconnect rather than fail. When the
    keys cannot be had in time it raises `Unavailable`, which callers answer as UNAVAILABLE.
    """
    stub = account_pb2_grpc.AccountServiceStub(channel)

    async def fetch() -> dict:
        try:
            response = await stub.GetJwks(account_pb2.GetJwksRequest(), timeout=timeout, wait_for_ready=True)
        except grpc.aio.AioRpcError as error:
            raise Unavailable(
                f"the keys that verify access tokens cannot be fetched now ({error.code().name}); "
                "try again shortly"
            ) from error
        return jwks_from_json(response.jwks_json)

    return fetch


class ConsumerOptions(TypedDict):
    """What every consumer of a service shares, from its settings (`ServiceRuntime.consumer_options`)."""

    sessions: async_sessionmaker[AsyncSession]
    inbox: Table
    bootstrap_servers: BrokerAccess
    dead_letters: RenewingProducer
    max_attempts: int
    session_timeout_ms: int


class ServiceRuntime:
    """Connections shared by one service process."""

    def __init__(
        self,
        settings: ServiceSettings,
        name: str,
        *,
        outbox_table: Table | None = None,
        inbox_table: Table | None = None,
    ) -> None:
        problems = production_secret_problems(settings)
        if problems:
            raise SystemExit(f"{name} refuses to start in production: " + "; ".join(problems))
        self.tls = process_grpc_tls(settings, name)
        self.settings = settings
        self.name = name
        self.inbox_table = inbox_table
        self.engine: AsyncEngine = create_engine(settings.database_url, pool_size=settings.database_pool_size)
        self.sessions: async_sessionmaker[AsyncSession] = session_factory(self.engine)
        self.redis: aioredis.Redis = aioredis.from_url(
            settings.redis_url, socket_timeout=2.0, socket_connect_timeout=2.0, health_check_interval=30
        )
        # What may be evicted under memory pressure (the catalog cache), apart from the security state.
        self.cache_redis: aioredis.Redis = aioredis.from_url(
            settings.cache_redis, socket_timeout=2.0, socket_connect_timeout=2.0, health_check_interval=30
        )
        # Who this process is to the broker (refuses a production start without a security protocol).
        self.broker = broker_access(settings)
        self.producer = RenewingProducer(
            lambda: create_producer(
                self.broker,
                idempotent=settings.kafka_idempotent_producer,
                client_id=name,
            )
        )
        self.outbox = Outbox(outbox_table, name) if outbox_table is not None else None
        self.relay = (
            OutboxRelay(
                sessions=self.sessions,
                table=outbox_table,
                producer=self.producer,
                database_url=settings.database_url,
                poll_interval=settings.outbox_poll_interval,
                recreate_topics_with_partitions=settings.kafka_topic_partitions,
                bootstrap_servers=self.broker,
            )
            if outbox_table is not None
            else None
        )
        self.denylist = TokenDenylist(self.redis)
        self._channels: list[grpc.aio.Channel] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._producer_ready = asyncio.Event()
        # /metrics, /healthz, /readyz on the metrics port, started with the server.
        self.side_server = SideServer()

    async def check_database(self) -> None:
        """A round trip to the service's database; raises when it does not answer."""
        async with self.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))

    def channel(self, address: str) -> grpc.aio.Channel:
        """A channel to a peer; calls carry the current trace context."""
        channel = grpc_channel(address, tls=self.tls, interceptors=[TracingClientInterceptor()])
        self._channels.append(channel)
        return channel

    def consumer_options(self) -> ConsumerOptions:
        """The keyword arguments of `EventConsumer` that come from the service: its sessions and
        inbox, the broker, dead letters through this process's producer, attempts and timeouts."""
        if self.inbox_table is None:
            raise TypeError(f"{self.name} has no inbox table: pass inbox_table= to consume events")
        return ConsumerOptions(
            sessions=self.sessions,
            inbox=self.inbox_table,
            bootstrap_servers=self.broker,
            dead_letters=self.producer,
            max_attempts=self.settings.consumer_max_attempts,
            session_timeout_ms=self.settings.kafka_session_timeout_ms,
        )

    def consumer(
        self,
        name: str,
        topics: Sequence[str],
        handlers: Mapping[str, Handler],
        *,
        group_id: str | None = None,
        follow_up_types: Collection[str] = (),
    ) -> EventConsumer:
        """A consumer of `topics` (consumer group `group_id`, by default `name`) handling each event
        type with its handler, each fetched batch in one transaction with its inbox rows;
        `follow_up_types` as `EventConsumer` takes them."""
        return EventConsumer(
            name=name,
            topics=topics,
            handlers=handlers,
            group_id=group_id,
            follow_up_types=follow_up_types,
            **self.consumer_options(),
        )

    def authenticator(self, fetch: JwksFetcher | None = None) -> Authenticator:
        """Verifies tokens with the account service's JWKS (or the given key source)."""
        verifier = TokenVerifier(
            issuer=self.settings.jwt_issuer,
            audience=self.settings.jwt_audience,
            algorithms=tuple(self.settings.jwt_algorithms),
        )
        source = fetch or account_jwks_fetcher(self.channel(self.settings.account_addr))
        return Authenticator(
            JwksKeySet(verifier, source), self.denylist, service_token=self.settings.internal_service_token
        )

    def spawn(self, factory: Callable[[], Awaitable[None]], name: str) -> None:
        """Run a loop for the life of the process; it is restarted if it ever fails."""

        async def supervised() -> None:
            while True:
                try:
                    await factory()
                    return
                except asyncio.CancelledError:
                    task = asyncio.current_task()
                    if task is None or task.cancelling():
                        raise
                    # A library's own cancellation that leaked out of the loop: restart it.
                    log.warning("background task %s ended on a stray cancellation; restarting", name)
                    await asyncio.sleep(1.0)
                except Exception as exc:
                    if is_transient(exc):
                        log.warning("background task %s: a dependency is unavailable: %s", name, exc)
                    else:
                        log.exception("background task %s failed; restarting", name)
                    await asyncio.sleep(1.0)

        self._tasks.append(asyncio.create_task(supervised(), name=name))

    async def start_producer(self) -> None:
        """Connect the producer, retrying while the broker is away; the relay waits for it."""
        delay = 0.2
        while True:
            try:
                await self.producer.start()
                self._producer_ready.set()
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("broker not reachable yet (%s); retrying in %.1fs", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def wait_producer(self) -> None:
        await self._producer_ready.wait()

    def start_relay(self) -> None:
        if self.relay is None:
            return
        relay = self.relay

        async def run() -> None:
            await self.wait_producer()
            await relay.run()

        self.spawn(run, "outbox-relay")

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        # Also when it never started (one-shot commands such as `ecommerce seed`): aiokafka warns
        # "Unclosed AIOKafkaProducer" at exit otherwise. Stopping an unstarted producer is harmless.
        with contextlib.suppress(Exception):
            await self.producer.stop()
        for channel in self._channels:
            await channel.close()
        await self.side_server.close()
        await self.redis.aclose()
        await self.cache_redis.aclose()
        await self.engine.dispose()


async def start(
    runtime: ServiceRuntime,
    registrations: Sequence[Registration],
    service_names: Sequence[str],
    *,
    authenticator: Authenticator | None,
    start_background: Callable[[], None] | None = None,
) -> tuple[grpc.aio.Server, health.aio.HealthServicer, int]:
    """Start the service's server and loops; returns the server, its health servicer and the bound port."""
    settings = runtime.settings
    configure_tracing(runtime.name, endpoint=settings.otel_exporter_otlp_endpoint)
    server, health_servicer = create_server(
        registrations,
        service_names,
        authenticator=authenticator,
        probes={DATABASE_CHECK: runtime.check_database},
        max_connection_age=settings.grpc_max_connection_age,
        max_connection_age_grace=settings.grpc_max_connection_age_grace,
        reflection_enabled=not settings.production,
    )
    port = bind(server, f"{settings.grpc_host}:{settings.grpc_port}", runtime.tls)
    await runtime.side_server.start(settings.grpc_host, settings.metrics_port)
    relay = runtime.relay
    runtime.spawn(lambda: refresh_forever(relay), "metrics")
    runtime.spawn(runtime.start_producer, "producer-start")
    runtime.start_relay()
    if start_background is not None:
        start_background()
    await server.start()
    await set_serving(health_servicer, service_names, True)
    runtime.side_server.ready = True
    log.info(
        "%s serving gRPC%s on %s:%d",
        runtime.name,
        " over mutual TLS" if runtime.tls else "",
        settings.grpc_host,
        port,
    )
    return server, health_servicer, port


async def shutdown(
    runtime: ServiceRuntime,
    server: grpc.aio.Server,
    health_servicer: health.aio.HealthServicer,
    service_names: Sequence[str],
) -> None:
    """Graceful stop: NOT_SERVING first, so balancers drain, then the server, then the loops.

    The server's stop is given its grace and `STOP_MARGIN` more: grpc.aio's stop can hang for good
    when it comes while calls are in flight (seen once under load in `make chaos`, the process
    alive minutes after SIGTERM), and a process that does not go away when told to holds up a
    rolling update until it is killed. Past that, the loops are stopped all the same."""
    log.info("%s shutting down", runtime.name)
    runtime.side_server.ready = False
    await set_serving(health_servicer, service_names, False)
    grace = runtime.settings.grpc_shutdown_grace
    try:
        async with asyncio.timeout(grace + STOP_MARGIN):
            await server.stop(grace)
    except TimeoutError:
        log.error(
            "%s: the gRPC server had not stopped %.0fs after its grace; going on", runtime.name, STOP_MARGIN
        )
    await runtime.close()


def run(main: Awaitable[None]) -> None:
    """Run a process's main coroutine on uvloop where available, with what the imports built frozen
    out of the garbage collector's way (`servicekit.heap`)."""
    freeze_startup_heap()
    try:
        import uvloop
    except ImportError:  # pragma: no cover - not on Windows
        asyncio.run(main)  # type: ignore[arg-type]
        return
    uvloop.run(main)  # type: ignore[arg-type]
