"""`GET /status`: every part of the platform checked by a real round trip, with its latency.

Each service's gRPC health (the process) and its `database` health check (a query to its own
database, `servicekit.grpc_server.ProbingHealthServicer`), Redis (PING) and the broker (a ping
produced to a dedicated topic and consumed back). The checks run concurrently, each bounded by
`timeout`; one answer is shared by every caller for `ttl` seconds, so that the page cannot be
used to multiply load on the platform.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import grpc
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from grpc_health.v1 import health_pb2, health_pb2_grpc

from gateway.settings import GatewaySettings
from servicekit import topics
from servicekit.grpc_server import DATABASE_CHECK
from servicekit.grpc_tls import GrpcTls
from servicekit.kafka import BrokerAccess, broker_access, connection_options, create_producer, ensure_topics
from servicekit.runtime import grpc_channel

log = logging.getLogger(__name__)

SERVICES = ("account", "catalog", "order", "payment", "notification")
PING_TOPIC = topics.STATUS_PING
SERVING = health_pb2.HealthCheckResponse.SERVING


@dataclass(frozen=True)
class Check:
    """One part: `ok`, how long its round trip took, and why it failed (a short reason)."""

    name: str
    ok: bool
    latency_ms: float
    error: str | None = None


@dataclass(frozen=True)
class Report:
    checks: tuple[Check, ...]
    checked_at: str

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.checks)

    def as_json(self) -> dict[str, Any]:
        return {
            "status": "ok" if self.ok else "failing",
            "failing": [check.name for check in self.checks if not check.ok],
            "checked_at": self.checked_at,
            "checks": [asdict(check) for check in self.checks],
        }


class NotServing(Exception):
    pass


class BrokerPing:
    """Produces a unique message to `PING_TOPIC` (one partition) and reads it back.

    The clients connect on the first ping and are kept; a ping that fails or times out drops
    them, so that the next one starts from a fresh connection.
    """

    def __init__(self, bootstrap_servers: str | BrokerAccess, *, topic: str = PING_TOPIC) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.partition = TopicPartition(topic, 0)
        self._clients: tuple[AIOKafkaProducer, AIOKafkaConsumer] | None = None
        self._lock = asyncio.Lock()
        self._closing: set[asyncio.Task[None]] = set()

    async def __call__(self) -> None:
        async with self._lock:
            try:
                producer, consumer = await self._connect()
                payload = uuid.uuid4().bytes
                sent = await producer.send_and_wait(
                    self.partition.topic, payload, partition=self.partition.partition
                )
                consumer.seek(self.partition, sent.offset)
                while True:
                    batches = await consumer.getmany(self.partition, timeout_ms=500)
                    if any(record.value == payload for record in batches.get(self.partition, ())):
                        return
            except BaseException:
                self._drop()
                raise

    async def _connect(self) -> tuple[AIOKafkaProducer, AIOKafkaConsumer]:
        if self._clients is not None:
            return self._clients
        await ensure_topics(self.bootstrap_servers, [self.partition.topic], partitions=1)
        producer = create_producer(self.bootstrap_servers, idempotent=False, client_id="gateway-status")
        consumer = AIOKafkaConsumer(
            **connection_options(self.bootstrap_servers),
            group_id=None,
            client_id="gateway-status",
            enable_auto_commit=False,
        )
        self._clients = (producer, consumer)
        await producer.start()
        await consumer.start()
        consumer.assign([self.partition])
        return self._clients

    def _drop(self) -> None:
        clients, self._clients = self._clients, None
        if clients is not None:
            # Closed in the background: a broker that does not answer must not hold the page.
            task = asyncio.create_task(_stop_all(clients))
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    async def close(self) -> None:
        clients, self._clients = self._clients, None
        if clients is not None:
            await _stop_all(clients)
        for task in list(self._closing):
            with contextlib.suppress(Exception):
                await task


async def _stop_all(clients: tuple[AIOKafkaProducer, AIOKafkaConsumer]) -> None:
    for client in clients:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(client.stop(), 5.0)


class PlatformStatus:
    """The checks behind `/status`; `report()` answers from a cache at most `ttl` seconds old."""

    def __init__(
        self,
        settings: GatewaySettings,
        redis: aioredis.Redis,
        *,
        timeout: float = 2.0,
        ttl: float = 1.0,
        tls: GrpcTls | None = None,
    ) -> None:
        self.timeout = timeout
        self.ttl = ttl
        self.redis = redis
        self.broker = BrokerPing(broker_access(settings))
        self._channels = {name: grpc_channel(getattr(settings, f"{name}_addr"), tls=tls) for name in SERVICES}
        self._health = {name: health_pb2_grpc.HealthStub(c) for name, c in self._channels.items()}
        self._cached: Report | None = None
        self._cached_at = 0.0
        self._lock = asyncio.Lock()

    async def report(self) -> Report:
        if self._fresh():
            assert self._cached is not None
            return self._cached
        async with self._lock:  # concurrent callers wait for one round of checks
            if not self._fresh():
                self._cached = await self._check_all()
                self._cached_at = time.monotonic()
            assert self._cached is not None
            return self._cached

    def _fresh(self) -> bool:
        return self._cached is not None and time.monotonic() - self._cached_at < self.ttl

    async def _check_all(self) -> Report:
        probes: list[tuple[str, Callable[[], Awaitable[None]]]] = []
        for name in SERVICES:
            probes.append((name, self._grpc_health(name, "")))
            probes.append((f"{name}.database", self._grpc_health(name, DATABASE_CHECK)))
        probes.append(("redis", self._redis_ping))
        probes.append(("broker", self.broker))
        checks = await asyncio.gather(*(self._timed(name, probe) for name, probe in probes))
        stamp = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        return Report(tuple(checks), stamp)

    def _grpc_health(self, name: str, service: str) -> Callable[[], Awaitable[None]]:
        stub = self._health[name]

        async def check() -> None:
            response = await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=self.timeout)
            if response.status != SERVING:
                raise NotServing(health_pb2.HealthCheckResponse.ServingStatus.Name(response.status))

        return check

    async def _redis_ping(self) -> None:
        await self.redis.ping()

    async def _timed(self, name: str, probe: Callable[[], Awaitable[None]]) -> Check:
        started = time.perf_counter()
        error: str | None = None
        try:
            async with asyncio.timeout(self.timeout):
                await probe()
        except TimeoutError:
            error = f"no answer within {self.timeout:g} s"
        except grpc.aio.AioRpcError as exc:
            error = exc.code().name
        except NotServing as exc:
            error = str(exc)
        except Exception as exc:
            error = type(exc).__name__
        latency = round((time.perf_counter() - started) * 1000, 2)
        if error is not None:
            log.warning("status: %s is failing: %s", name, error)
        return Check(name, error is None, latency, error)

    async def close(self) -> None:
        await self.broker.close()
        for channel in self._channels.values():
            await channel.close()
