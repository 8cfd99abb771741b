"""Traces and metrics through real servers: an RPC continues its caller's trace into its span, its log
line, its outbox row and the Kafka headers; a consumer continues it; servicekit's own metrics count.

Spans are recorded with an in-memory exporter (the SDK is loaded only because this test asks).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
from aiokafka import AIOKafkaConsumer
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from prometheus_client import REGISTRY
from sqlalchemy import MetaData, select, text

from ecommerce.account.v1 import account_pb2, account_pb2_grpc
from ecommerce.events.v1 import account_events_pb2
from servicekit import metrics, tracing
from servicekit.context import current_request_id, request_id_var
from servicekit.db import transaction
from servicekit.inbox import EventConsumer, inbox_table
from servicekit.kafka import dead_letter_topic, ensure_topics
from servicekit.logging import _ContextFilter
from servicekit.messages import Message
from servicekit.outbox import Outbox, OutboxRelay, outbox_table
from tests.helpers import eventually, group_timeouts, unique_email
from tests.integration.outbox.kit import kit_resources

REGISTER = "ecommerce.account.v1.AccountService/Register"

metadata = MetaData()
outbox = outbox_table(metadata)
inbox = inbox_table(metadata)


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def hex_trace_id(span) -> str:  # type: ignore[no-untyped-def]
    return format(span.get_span_context().trace_id, "032x")


@pytest.fixture(scope="module")
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    tracing.configure_tracing("integration-tests", exporter=exporter)
    yield exporter
    exporter.shutdown()


class Captured(logging.Handler):
    """Log records as the JSON handler sees them: after servicekit's context filter."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.addFilter(_ContextFilter("test"))
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def log_records() -> Iterator[list[logging.LogRecord]]:
    handler = Captured()
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    yield handler.records
    root.removeHandler(handler)
    root.setLevel(level)


async def kafka_headers(bootstrap: str, topic: str, key: str) -> dict[str, str]:
    """The headers of the message with `key` on `topic`, read from the beginning."""
    # No consumer group: nothing to join, every partition read from its start.
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest"
    )
    await consumer.start()
    found: dict[str, str] = {}
    try:

        async def seen() -> bool:
            for batch in (await consumer.getmany(timeout_ms=200)).values():
                for record in batch:
                    if record.key == key.encode():
                        found.update({k: v.decode() for k, v in record.headers})
            return bool(found)

        await eventually(seen, timeout=15, what=f"a message keyed {key} on {topic}")
    finally:
        await consumer.stop()
    return found


# -- an RPC ----------------------------------------------------------------------------------------


async def test_an_rpc_continues_its_callers_trace_into_its_span_log_line_outbox_row_and_kafka_headers(
    account, infra, spans, log_records
):
    stub = account_pb2_grpc.AccountServiceStub(account.app.runtime.channel(f"127.0.0.1:{account.port}"))
    labels = {
        "grpc_service": "ecommerce.account.v1.AccountService",
        "grpc_method": "Register",
        "grpc_code": "OK",
    }
    before = sample("grpc_server_handled_total", **labels)

    with tracing.tracer.start_as_current_span("caller") as caller:
        response = await stub.Register(
            account_pb2.RegisterRequest(
                email=unique_email("traced"), name="Ada", password="correct horse battery"
            )
        )
    trace_id, account_id = hex_trace_id(caller), response.account.id

    (server,) = [s for s in spans.get_finished_spans() if s.name == REGISTER and hex_trace_id(s) == trace_id]
    assert server.kind is SpanKind.SERVER
    assert server.parent.span_id == caller.get_span_context().span_id
    assert server.attributes["rpc.grpc.status_code"] == 0
    rpc_lines = [r for r in log_records if r.getMessage() == "rpc" and r.rpc_method == f"/{REGISTER}"]
    assert [r.trace_id for r in rpc_lines] == [trace_id]
    (headers,) = await account.execute(
        "SELECT headers FROM outbox WHERE key = :key AND event_type = 'account.registered'", key=account_id
    )
    assert headers[0]["traceparent"].split("-")[1] == trace_id
    published = await kafka_headers(infra.kafka_bootstrap_servers, "account.events", account_id)
    assert published["traceparent"].split("-")[1] == trace_id
    assert published["event_type"] == "account.registered"
    assert sample("grpc_server_handled_total", **labels) == before + 1


async def test_a_refused_rpc_is_counted_with_its_status_code_and_timed(account):
    stub = account_pb2_grpc.AccountServiceStub(account.app.runtime.channel(f"127.0.0.1:{account.port}"))
    labels = {"grpc_service": "ecommerce.account.v1.AccountService", "grpc_method": "Login"}
    before = sample("grpc_server_handled_total", **labels, grpc_code="UNAUTHENTICATED")
    timed = sample("grpc_server_handling_seconds_count", **labels)

    with pytest.raises(Exception, match="UNAUTHENTICATED"):
        await stub.Login(account_pb2.LoginRequest(email=unique_email("nobody"), password="wrong password!"))

    # The server counts the call once it has answered it: the client may hear the answer first.
    async def counted() -> bool:
        return sample("grpc_server_handled_total", **labels, grpc_code="UNAUTHENTICATED") > before

    await eventually(counted, timeout=5, what="the refused call counted")
    assert sample("grpc_server_handled_total", **labels, grpc_code="UNAUTHENTICATED") == before + 1
    assert sample("grpc_server_handling_seconds_count", **labels) == timed + 1


# -- outbox and consumer ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
async def kit(infra) -> AsyncIterator[dict]:
    async with kit_resources(infra, "observability_it", "observability-test", metadata) as resources:
        sessions = resources["sessions"]
        relay = OutboxRelay(
            sessions=sessions, table=outbox, producer=resources["producer"], database_url=resources["url"]
        )
        yield {**resources, "relay": relay}


@pytest.fixture
async def topic(kit) -> str:
    name = f"observed-{uuid.uuid4().hex[:10]}"
    await ensure_topics(kit["bootstrap"], [name, dead_letter_topic(name)], partitions=1)
    return name


async def add_event(kit: dict, topic: str, aggregate_id: str) -> str:
    async with transaction(kit["sessions"]) as session:
        return await Outbox(outbox, "observability-test").add(
            session,
            Message(
                topic=topic,
                event_type="account.registered",
                aggregate_id=aggregate_id,
                payload=account_events_pb2.AccountRegistered(account_id=aggregate_id, email="a@example.com"),
            ),
        )


async def test_a_consumer_handles_an_event_in_the_trace_and_request_id_that_wrote_it_and_counts_duplicates(
    kit, topic, spans
):
    seen: list[tuple[str | None, str]] = []

    async def handler(session, envelope):  # type: ignore[no-untyped-def]
        seen.append((tracing.current_trace_id(), current_request_id()))

    name = f"observer-{uuid.uuid4().hex[:8]}"
    consumer = EventConsumer(
        name=name,
        topics=[topic],
        handlers={"account.registered": handler},
        sessions=kit["sessions"],
        inbox=inbox,
        bootstrap_servers=kit["bootstrap"],
        dead_letters=kit["producer"],
        session_timeout_ms=group_timeouts()["session_timeout_ms"],
    )
    token = request_id_var.set("req-observed-1")
    with tracing.tracer.start_as_current_span("request") as request:
        await add_event(kit, topic, "agg-1")
    request_id_var.reset(token)
    await kit["relay"].publish_batch()
    running = asyncio.create_task(consumer.run())
    try:
        await eventually(lambda: asyncio.sleep(0, result=seen), what="the event handled")
        # The relay publishing the same row again (a crash between publish and mark): a redelivery.
        async with kit["sessions"]() as session:
            row = (
                await session.execute(select(outbox).where(outbox.c.key == "agg-1", outbox.c.topic == topic))
            ).one()
        headers = [(k, v.encode()) for k, v in row.headers.items()]
        await kit["producer"].send_and_wait(topic, value=row.payload, key=row.key.encode(), headers=headers)
        await eventually(
            lambda: asyncio.sleep(0, result=consumer.duplicates == 1), what="the duplicate dropped"
        )

        async def caught_up() -> bool:
            await metrics.refresh()
            return REGISTRY.get_sample_value("ecommerce_consumer_lag_messages", {"consumer": name}) == 0.0

        await eventually(caught_up, what="the lag measured")
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)

    assert seen == [(hex_trace_id(request), "req-observed-1")]
    handled = [
        s for s in spans.get_finished_spans() if s.attributes.get("messaging.consumer.group.name") == name
    ]
    assert [(s.name, s.kind) for s in handled] == [
        (f"{topic} process", SpanKind.CONSUMER)
    ] * 2  # and the duplicate
    assert {s.parent.span_id for s in handled} == {request.get_span_context().span_id}
    assert sample("ecommerce_consumer_processed_total", consumer=name) == 1.0
    assert sample("ecommerce_inbox_duplicates_total", consumer=name) == 1.0
    assert sample("ecommerce_consumer_dead_lettered_total", consumer=name) == 0.0


async def test_the_outbox_lag_is_the_age_of_the_oldest_unpublished_event_and_zero_once_published(kit, topic):
    await kit["relay"].publish_batch()
    published = sample("ecommerce_outbox_published_total")
    event_id = await add_event(kit, topic, "agg-lag")
    async with transaction(kit["sessions"]) as session:
        await session.execute(
            text("UPDATE outbox SET created_at = now() - interval '90 seconds' WHERE event_id = :id"),
            {"id": event_id},
        )

    await metrics.refresh(kit["relay"])
    waiting = sample("ecommerce_outbox_lag_seconds")
    await kit["relay"].publish_batch()
    await metrics.refresh(kit["relay"])

    assert waiting >= 90
    assert sample("ecommerce_outbox_lag_seconds") == 0.0
    assert sample("ecommerce_outbox_published_total") == published + 1
    async with kit["sessions"]() as session:
        assert (
            await session.scalar(select(outbox.c.published_at).where(outbox.c.event_id == event_id))
            is not None
        )
