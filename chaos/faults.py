"""The faults `make chaos` injects, one at a time, while orders keep coming.

Each fault has an `inject` (the moment it starts), an optional `during` (what keeps happening
while it lasts, e.g. a link that keeps dropping) and a `heal` (the end of it: a restart, the
link repaired). How long a fault lasts is counted in orders placed, not in seconds.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from aiokafka import AIOKafkaConsumer, TopicPartition

from chaos.ledger import GROUPS
from chaos.proxy import FaultProxy
from chaos.shop import OrderLoad
from ecommerce_cli.stack import Infrastructure, Platform
from servicekit import topics
from servicekit.kafka import connection_options, create_producer, dead_letter_topic

REPLAY_ROUND = 500  # records sent by the replay before it waits for their delivery
READ_SECONDS = 60.0  # to read topics to the end offsets they had when the read began
# Records of each partition the replay sends again: the last few seconds of traffic at the default
# rate, so the copies land among sagas still in flight as well as finished ones, and the fault
# costs the same whatever ran before it.
REPLAY_LAST = 200


class Chaos(Protocol):
    """What a fault acts on: the running platform, its servers and proxies, and the load."""

    infra: Infrastructure
    platform: Platform
    proxies: dict[str, FaultProxy]
    load: OrderLoad
    notes: list[str]
    poison: list[tuple[str, bytes]]

    @property
    def bootstrap_servers(self) -> str: ...


Step = Callable[[Chaos], Awaitable[None]]


async def _nothing(chaos: Chaos) -> None:
    return None


@dataclass(frozen=True)
class Fault:
    name: str
    what: str
    inject: Step
    heal: Step = _nothing
    during: Step | None = None
    short: bool = False  # part of the short run inside `make test`


# -- processes ------------------------------------------------------------------------------------


def _kill(name: str) -> Step:
    async def kill(chaos: Chaos) -> None:
        process = chaos.platform.processes[name].popen
        process.kill()
        await asyncio.to_thread(process.wait)

    return kill


def _restart(name: str) -> Step:
    async def restart(chaos: Chaos) -> None:
        await chaos.platform.restart(name, timeout=120)

    return restart


def _killed(name: str, *, short: bool = False) -> Fault:
    return Fault(
        f"kill {name}", f"SIGKILL the {name} process, restart it", _kill(name), _restart(name), short=short
    )


# -- servers --------------------------------------------------------------------------------------


def _infra(server: str, action: str) -> Step:
    """`action` (kill, stop, start) on one of the infrastructure's servers, off the event loop."""

    async def step(chaos: Chaos) -> None:
        target = getattr(chaos.infra, server)
        assert target is not None, f"no {server} to {action}"
        await asyncio.to_thread(getattr(target, action))

    return step


# -- the network ----------------------------------------------------------------------------------


def _delay(proxy: str, seconds: float) -> Step:
    async def delay(chaos: Chaos) -> None:
        chaos.proxies[proxy].delay = seconds

    return delay


def _heal(proxy: str) -> Step:
    async def heal(chaos: Chaos) -> None:
        chaos.proxies[proxy].heal()

    return heal


def _flapping(proxy: str) -> Step:
    """Reset every connection through the link each time another order is placed."""

    async def flap(chaos: Chaos) -> None:
        while True:
            chaos.proxies[proxy].reset()
            await chaos.load.wait_attempted(1)

    return flap


# -- the payment provider -------------------------------------------------------------------------


def _provider(**settings: str) -> Step:
    async def weather(chaos: Chaos) -> None:
        chaos.platform.process_env["payment"] = {f"PAYMENT_{k.upper()}": v for k, v in settings.items()}
        await chaos.platform.restart("payment", timeout=120)

    return weather


# -- deliveries -----------------------------------------------------------------------------------


async def _read_to_end(
    reader: AIOKafkaConsumer, partitions: list[TopicPartition], ends: dict[TopicPartition, int]
) -> tuple[dict[TopicPartition, list[Any]], list[str]]:
    """The records of `partitions` (assigned and positioned) up to at least `ends`, and a line for
    each partition not read that far within `READ_SECONDS`: a broker that lists records it does
    not serve must not hold the run up for ever. Records past `ends` that came in the same fetch
    are kept: the embedded broker's end offsets can fall short of what it serves."""
    records: dict[TopicPartition, list[Any]] = {tp: [] for tp in partitions}
    deadline = time.monotonic() + READ_SECONDS
    while behind := [tp for tp in partitions if await reader.position(tp) < ends[tp]]:
        if time.monotonic() > deadline:
            return records, [
                f"{tp.topic}[{tp.partition}] read to offset {await reader.position(tp)} of {ends[tp]}"
                for tp in behind
            ]
        for tp, batch in (await reader.getmany(timeout_ms=500)).items():
            records[tp].extend(batch)
    return records, []


async def _replay_recent_reversed(chaos: Chaos) -> None:
    """The last `REPLAY_LAST` records of every partition of every topic, produced again in reverse
    order: each event type delivered twice, and the copies out of order."""
    reader = AIOKafkaConsumer(**connection_options(chaos.bootstrap_servers), enable_auto_commit=False)
    await reader.start()
    try:
        await reader.topics()
        partitions = [
            TopicPartition(t, p) for t in topics.ALL for p in sorted(reader.partitions_for_topic(t) or ())
        ]
        starts = await reader.beginning_offsets(partitions)
        ends = await reader.end_offsets(partitions)
        reader.assign(partitions)
        for tp in partitions:
            reader.seek(tp, max(starts[tp], ends[tp] - REPLAY_LAST))
        fetched, unread = await _read_to_end(reader, partitions, ends)
    finally:
        await reader.stop()
    chaos.notes += [f"not replayed in full: {line}" for line in unread]
    records = {tp: [r for r in batch if r.offset < ends[tp]] for tp, batch in fetched.items()}
    producer = create_producer(chaos.bootstrap_servers, idempotent=False, client_id="chaos-replay")
    await producer.start()
    try:
        # Send them in rounds, each delivered before the next, so the producer's buffer never waits
        # on the broker for longer than its timeout.
        delivered: list[asyncio.Future[Any]] = []
        for tp, batch in records.items():
            for record in reversed(batch):
                delivered.append(
                    await producer.send(
                        tp.topic,
                        record.value,
                        key=record.key,
                        partition=tp.partition,
                        headers=list(record.headers or ()),
                    )
                )
                if len(delivered) >= REPLAY_ROUND:
                    await asyncio.gather(*delivered)
                    delivered.clear()
        await asyncio.gather(*delivered)
    finally:
        await producer.stop()
    chaos.notes.append(f"replayed {sum(len(b) for b in records.values())} records reversed")


async def _poison(chaos: Chaos) -> None:
    """Bytes no consumer can read, on every partition of every topic a service consumes."""
    producer = create_producer(chaos.bootstrap_servers, idempotent=False, client_id="chaos-poison")
    await producer.start()
    try:
        for topic in sorted({t for topics in GROUPS.values() for t in topics}):
            for partition in sorted(await producer.partitions_for(topic)):
                value = f"\x00poison {uuid.uuid4().hex}".encode()
                await producer.send_and_wait(topic, value, key=b"poison", partition=partition)
                chaos.poison.append((topic, value))
    finally:
        await producer.stop()


async def dead_lettered(bootstrap_servers: str, poison: list[tuple[str, bytes]]) -> list[str]:
    """A line for each poison message a consumer group of its topic has not dead-lettered, and for
    each dead-letter partition that could not be read to its end."""
    reader = AIOKafkaConsumer(**connection_options(bootstrap_servers), enable_auto_commit=False)
    await reader.start()
    try:
        await reader.topics()
        wanted = {dead_letter_topic(t) for t, _ in poison}
        partitions = [
            TopicPartition(t, p) for t in wanted for p in sorted(reader.partitions_for_topic(t) or ())
        ]
        ends = await reader.end_offsets(partitions)
        reader.assign(partitions)
        await reader.seek_to_beginning(*partitions)
        records, unread = await _read_to_end(reader, partitions, ends)
    finally:
        await reader.stop()
    seen: dict[tuple[str, bytes], set[str]] = {}
    for tp, batch in records.items():
        for record in batch:
            consumer = dict(record.headers or ()).get("dlq-consumer", b"").decode()
            seen.setdefault((tp.topic, record.value), set()).add(consumer)
    problems = [f"dead-letter partition not readable to its end: {line}" for line in unread]
    for topic, value in poison:
        groups = {g for g, topics in GROUPS.items() if topic in topics}
        got = seen.get((dead_letter_topic(topic), value), set())
        problems += [f"poison not dead-lettered by {topic}: {g}" for g in sorted(groups - got)]
    return problems


FAULTS: tuple[Fault, ...] = (
    _killed("catalog"),
    _killed("order"),
    _killed("payment", short=True),
    _killed("notification", short=True),
    _killed("gateway"),
    Fault(
        "kill broker",
        "SIGKILL the broker (it keeps nothing), start it again",
        _infra("broker", "kill"),
        _infra("broker", "start"),
    ),
    Fault(
        "restart postgres",
        "stop PostgreSQL (fast shutdown), start it again",
        _infra("postgres", "stop"),
        _infra("postgres", "start"),
        short=True,
    ),
    Fault(
        "stop redis",
        "stop Redis for a while, start it again",
        _infra("redis", "stop"),
        _infra("redis", "start"),
    ),
    Fault(
        "delay order-payment",
        "400 ms each way between order and payment",
        _delay("payment", 0.4),
        _heal("payment"),
    ),
    Fault(
        "reset order-payment",
        "reset every connection between order and payment, again and again",
        _nothing,
        _heal("payment"),
        during=_flapping("payment"),
    ),
    Fault(
        "delay broker",
        "200 ms each way between every service and the broker",
        _delay("broker", 0.2),
        _heal("broker"),
    ),
    Fault(
        "reset broker",
        "reset every connection to the broker, again and again",
        _nothing,
        _heal("broker"),
        during=_flapping("broker"),
    ),
    Fault(
        "slow provider",
        "the provider answers after up to 1.5 s; payment gives up on a call after 1 s",
        _provider(simulated_latency="1.5"),
        _provider(),
    ),
    Fault(
        "failing provider",
        "60% of provider calls fail (503)",
        _provider(simulated_failure_rate="0.6"),
        _provider(),
    ),
    Fault(
        "duplicate + reorder",
        f"the last {REPLAY_LAST} records of every partition delivered again, in reverse order",
        _replay_recent_reversed,
    ),
    Fault("poison", "an unreadable message on every partition of every consumed topic", _poison, short=True),
)
