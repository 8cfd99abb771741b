"""Metrics, the side HTTP server, trace propagation and the GraphQL extension, in-process."""

from __future__ import annotations

import asyncio
import logging
import uuid

import httpx
import pytest
from graphql import GraphQLError
from prometheus_client import REGISTRY

from gateway import metrics as gateway_metrics
from gateway.errors import ApiError
from gateway.schema import create_schema
from gateway.settings import GatewaySettings
from servicekit import tracing
from servicekit.context import current_request_id
from servicekit.logging import _ContextFilter
from servicekit.metrics import SideServer
from servicekit.resilience import CircuitBreaker

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT_ID}-01"


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


# -- the side server -----------------------------------------------------------------------------


@pytest.fixture
async def side() -> SideServer:
    server = SideServer()
    assert await server.start("127.0.0.1", 0) is not None
    yield server
    await server.close()


async def test_the_side_server_serves_metrics_and_health(side):
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{side.port}") as client:
        metrics = await client.get("/metrics")
        health = await client.get("/healthz")

    assert metrics.status_code == 200
    assert metrics.headers["content-type"].startswith("text/plain; version=")
    assert "# TYPE grpc_server_handled_total counter" in metrics.text
    assert "# TYPE ecommerce_outbox_lag_seconds gauge" in metrics.text
    assert (health.status_code, health.json()) == (200, {"status": "ok"})


async def test_readyz_answers_503_until_the_service_serves_and_again_once_it_stops(side):
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{side.port}") as client:
        starting = await client.get("/readyz")
        side.ready = True
        serving = await client.get("/readyz")
        side.ready = False
        stopping = await client.get("/readyz")

    assert [starting.status_code, serving.status_code, stopping.status_code] == [503, 200, 503]
    assert serving.json() == {"status": "ready"}


async def test_the_side_server_refuses_other_paths_methods_and_oversized_requests(side):
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{side.port}") as client:
        unknown = await client.get("/admin")
        posted = await client.post("/metrics", content=b"x")
    reader, writer = await asyncio.open_connection("127.0.0.1", side.port)
    writer.write(b"GET /metrics HTTP/1.1\r\nX-Junk: " + b"a" * 10_000 + b"\r\n\r\n")
    await writer.drain()
    oversized = await reader.read()
    writer.close()

    assert (unknown.status_code, posted.status_code) == (404, 405)
    assert oversized.startswith(b"HTTP/1.1 431 ")


async def test_a_taken_metrics_port_leaves_the_process_running_without_metrics(side):
    second = SideServer()

    assert await second.start("127.0.0.1", side.port) is None
    await second.close()


# -- what servicekit exports by itself -----------------------------------------------------------


def test_a_circuit_breaker_exports_its_state_and_how_often_it_opened():
    now = [0.0]
    name = f"provider-{uuid.uuid4().hex[:8]}"
    breaker = CircuitBreaker(name, failure_threshold=2, cool_down=30, clock=lambda: now[0])

    closed = sample("ecommerce_circuit_breaker_state", breaker=name)
    breaker.record_failure()
    breaker.record_failure()
    opened = sample("ecommerce_circuit_breaker_state", breaker=name)
    now[0] = 31.0
    half_open = sample("ecommerce_circuit_breaker_state", breaker=name)

    assert (closed, opened, half_open) == (0.0, 2.0, 1.0)
    assert sample("ecommerce_circuit_breaker_opened_total", breaker=name) == 1.0


# -- the GraphQL extension -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def schema():
    return create_schema(GatewaySettings(env="development"))


async def test_each_graphql_operation_is_counted_by_name_type_and_code(schema):
    before = sample("ecommerce_graphql_operations_total", operation="UnitProbe", type="query", code="OK")
    count_before = sample(
        "ecommerce_graphql_operation_duration_seconds_count", operation="UnitProbe", type="query"
    )

    result = await schema.execute("query UnitProbe { __typename }")

    assert result.errors is None
    assert (
        sample("ecommerce_graphql_operations_total", operation="UnitProbe", type="query", code="OK")
        == before + 1
    )
    assert (
        sample("ecommerce_graphql_operation_duration_seconds_count", operation="UnitProbe", type="query")
        == count_before + 1
    )


async def test_an_unparseable_document_counts_as_a_parse_failure_of_an_unknown_operation(schema):
    labels = {"operation": "anonymous", "type": "unknown", "code": "GRAPHQL_PARSE_FAILED"}
    before = sample("ecommerce_graphql_operations_total", **labels)

    result = await schema.execute("query { __typename")

    assert result.errors is not None
    assert sample("ecommerce_graphql_operations_total", **labels) == before + 1


def test_operation_names_from_clients_become_a_bounded_set_of_label_values(monkeypatch):
    monkeypatch.setattr(gateway_metrics, "_seen_names", set())
    monkeypatch.setattr(gateway_metrics, "MAX_OPERATION_NAMES", 2)

    labels = [
        gateway_metrics.operation_label(name)
        for name in (None, "", "Checkout", "Checkout", "Browse", "Third", "x" * 65, "drop table;", "Ünïcode")
    ]

    assert labels == [
        "anonymous",
        "anonymous",
        "Checkout",
        "Checkout",
        "Browse",
        "other",
        "invalid",
        "invalid",
        "invalid",
    ]


def test_the_result_code_is_the_first_errors_code_and_internal_for_what_gets_masked():
    masked = GraphQLError("boom", original_error=RuntimeError("database password in here"))

    assert gateway_metrics.result_code(None) == "OK"
    assert gateway_metrics.result_code([ApiError("no", "NOT_FOUND"), masked]) == "NOT_FOUND"
    assert gateway_metrics.result_code([masked]) == "INTERNAL"
    assert gateway_metrics.result_code([GraphQLError("Unknown field")]) == "GRAPHQL_VALIDATION_FAILED"


# -- trace propagation without the SDK -----------------------------------------------------------


@pytest.fixture
def no_sdk(monkeypatch):
    monkeypatch.setattr(tracing, "_provider", None)


def test_outside_any_trace_nothing_is_propagated_and_logs_carry_no_trace_id(no_sdk):
    record = logging.LogRecord("t", logging.INFO, __file__, 1, "m", None, None)
    _ContextFilter("test").filter(record)

    assert tracing.inject({}) == {}
    assert (record.trace_id, record.span_id) == (None, None)


def test_a_kafka_message_is_handled_in_its_headers_trace_and_request_id(no_sdk):
    headers = [
        ("event_type", b"order.created"),
        ("x-request-id", b"req-1"),
        ("traceparent", TRACEPARENT.encode()),
    ]
    record = logging.LogRecord("t", logging.INFO, __file__, 1, "m", None, None)

    with tracing.consuming(headers, topic="order.events", consumer="test"):
        seen = (tracing.current_trace_id(), current_request_id())
        passed_on = tracing.inject({})
        _ContextFilter("test").filter(record)

    assert seen == (TRACE_ID, "req-1")
    assert passed_on["traceparent"].split("-")[1] == TRACE_ID
    assert record.trace_id == TRACE_ID
    assert (tracing.current_trace_id(), current_request_id()) == (None, "")


def test_a_malformed_traceparent_starts_no_trace_and_breaks_nothing(no_sdk):
    with tracing.consuming([("traceparent", b"00-zz-\xff-01")], topic="t", consumer="c"):
        assert tracing.current_trace_id() is None
