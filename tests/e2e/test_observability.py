"""Observability of the running platform: every process serves metrics and health on its side port,
requests are counted there, and a request's trace id reaches every log line and Kafka header
along its way, from the gateway through each RPC, command and reply.

The client starts the trace (a W3C `traceparent` header), as an edge proxy would; the platform
runs with tracing off, so this is also the proof that "off" still propagates for free.
"""

from __future__ import annotations

import json
import secrets
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from aiokafka import AIOKafkaConsumer
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.test_account_graphql import admin_session, sign_up
from tests.e2e.test_catalog_graphql import new_category, new_product
from tests.helpers import eventually, unique_email

pytestmark = pytest.mark.e2e

REGISTER = """
mutation ObservedRegister($input: RegisterInput!) { register(input: $input) { account { id } } }"""
CHECKOUT = """
mutation ObservedCheckout($input: CreateOrderInput!) { createOrder(input: $input) { id status } }"""
ORDER = "query ObservedOrder($id: ID!) { order(id: $id) { status } }"
ADDRESS = {
    "name": "Ada Lovelace",
    "line1": "1 Analytical Way",
    "city": "London",
    "postalCode": "N1",
    "country": "GB",
}

Samples = dict[tuple[str, frozenset], float]


def new_trace() -> tuple[str, str]:
    trace_id = secrets.token_hex(16)
    return trace_id, f"00-{trace_id}-{secrets.token_hex(8)}-01"


async def scrape(platform, name: str) -> Samples:
    async with httpx.AsyncClient() as client:
        response = await client.get(f"http://127.0.0.1:{platform.metrics_ports[name]}/metrics", timeout=5)
    assert response.status_code == 200
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def log_lines(platform, name: str) -> list[dict]:
    path = Path(platform.log_dir) / f"{name}.log"
    lines = []
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            try:
                lines.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return lines


async def traced_lines(platform, name: str, trace_id: str, message: str) -> list[dict]:
    async def found() -> list[dict]:
        return [
            line
            for line in log_lines(platform, name)
            if line.get("trace_id") == trace_id and line["message"] == message
        ]

    return await eventually(found, what=f"a {message!r} line of {name} with trace id {trace_id}")


async def traceparents(bootstrap: str, topic: str, key: str) -> list[str]:
    """The `traceparent` of every message keyed `key` on `topic` (none: fails)."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest"
    )
    await consumer.start()
    found: list[str] = []
    try:

        async def seen() -> bool:
            for batch in (await consumer.getmany(timeout_ms=200)).values():
                found.extend(
                    dict(record.headers).get("traceparent", b"").decode()
                    for record in batch
                    if record.key == key.encode()
                )
            return bool(found)

        await eventually(seen, timeout=15, what=f"a message keyed {key} on {topic}")
    finally:
        await consumer.stop()
    return found


def trace_of(traceparent: str) -> str:
    return traceparent.split("-")[1] if traceparent.count("-") == 3 else ""


# -- every process -------------------------------------------------------------------------------


async def test_every_process_serves_metrics_health_and_readiness_on_its_side_port(platform):
    names = [*platform.services, "gateway"]
    async with httpx.AsyncClient() as client:
        for name in names:
            base = f"http://127.0.0.1:{platform.metrics_ports[name]}"
            metrics, health, ready = [
                await client.get(base + path) for path in ("/metrics", "/healthz", "/readyz")
            ]

            assert [metrics.status_code, health.status_code, ready.status_code] == [200, 200, 200], name
            expected = (
                "ecommerce_graphql_operations_total" if name == "gateway" else "grpc_server_handled_total"
            )
            assert f"# TYPE {expected} counter" in metrics.text, name
            assert "process_resident_memory_bytes" in metrics.text, name


# -- one registration ------------------------------------------------------------------------------


async def test_a_registration_is_counted_and_traced_from_the_gateway_through_account_into_kafka(
    gateway, platform
):
    trace_id, traceparent = new_trace()
    before = {name: await scrape(platform, name) for name in ("gateway", "account")}

    body = await gateway.post(
        REGISTER,
        {"input": {"name": "Ada", "email": unique_email("observed"), "password": "correct horse battery"}},
        headers={"traceparent": traceparent},
    )
    account_id = body["data"]["register"]["account"]["id"]

    graphql = {"operation": "ObservedRegister", "type": "mutation", "code": "OK"}
    rpc = {
        "grpc_service": "ecommerce.account.v1.AccountService",
        "grpc_method": "Register",
        "grpc_code": "OK",
    }
    after = await scrape(platform, "gateway")
    assert (
        value(after, "ecommerce_graphql_operations_total", **graphql)
        - value(before["gateway"], "ecommerce_graphql_operations_total", **graphql)
        == 1.0
    )

    async def account_counted() -> bool:
        now = await scrape(platform, "account")
        return (
            value(now, "grpc_server_handled_total", **rpc)
            - value(before["account"], "grpc_server_handled_total", **rpc)
            == 1.0
            and value(now, "ecommerce_outbox_published_total")
            - value(before["account"], "ecommerce_outbox_published_total")
            == 1.0
        )

    await eventually(account_counted, what="the Register RPC and its published event counted by account")
    (gateway_line,) = await traced_lines(platform, "gateway", trace_id, "graphql")
    assert (gateway_line["operation"], gateway_line["code"]) == ("ObservedRegister", "OK")
    account_lines = await traced_lines(platform, "account", trace_id, "rpc")
    assert [line["rpc_method"] for line in account_lines] == ["/ecommerce.account.v1.AccountService/Register"]
    assert [
        trace_of(t)
        for t in await traceparents(platform.infra.kafka_bootstrap_servers, "account.events", account_id)
    ] == [trace_id]


# -- one order -------------------------------------------------------------------------------------


@dataclass
class Checkout:
    order_id: str
    trace_id: str
    before: dict[str, Samples]
    after: dict[str, Samples]


@pytest.fixture(scope="module")
async def checkout(gateway, platform) -> Checkout:
    """One order placed with a trace of the client's, carried to CONFIRMED; metrics read around it."""
    admin = (await admin_session(gateway))["accessToken"]
    customer = (await sign_up(gateway))["accessToken"]
    product = await new_product(gateway, admin, await new_category(gateway, admin), stock=5, currency="EUR")
    names = [*platform.services, "gateway"]
    before = {name: await scrape(platform, name) for name in names}
    trace_id, traceparent = new_trace()

    body = await gateway.post(
        CHECKOUT,
        {
            "input": {
                "items": [{"productId": product["id"], "quantity": 2}],
                "paymentToken": "tok_visa",
                "shippingAddress": ADDRESS,
            }
        },
        token=customer,
        headers={"traceparent": traceparent, "Idempotency-Key": uuid.uuid4().hex},
    )
    assert "errors" not in body, body
    order_id = body["data"]["createOrder"]["id"]

    async def confirmed() -> bool:
        status = await gateway.post(ORDER, {"id": order_id}, token=customer)
        return status["data"]["order"]["status"] == "CONFIRMED"

    await eventually(confirmed, timeout=30, interval=0.1, what="the order CONFIRMED")
    after = {name: await scrape(platform, name) for name in names}
    return Checkout(order_id, trace_id, before, after)


def delta(checkout: Checkout, process: str, name: str, **labels: str) -> float:
    return value(checkout.after[process], name, **labels) - value(checkout.before[process], name, **labels)


async def test_an_orders_trace_id_is_in_the_gateway_and_order_logs_and_every_command_and_reply(
    checkout, platform
):
    (line,) = await traced_lines(platform, "gateway", checkout.trace_id, "graphql")
    assert (line["operation"], line["operation_type"], line["code"]) == ("ObservedCheckout", "mutation", "OK")
    order_lines = await traced_lines(platform, "order", checkout.trace_id, "rpc")
    assert "/ecommerce.order.v1.OrderService/CreateOrder" in [line["rpc_method"] for line in order_lines]
    for topic in ("inventory.commands", "inventory.events", "payment.commands", "payment.events"):
        found = await traceparents(platform.infra.kafka_bootstrap_servers, topic, checkout.order_id)
        assert checkout.trace_id in [trace_of(t) for t in found], topic


async def test_an_order_is_counted_once_by_the_gateway_and_the_order_service_and_by_each_consumer(checkout):
    assert (
        delta(
            checkout,
            "gateway",
            "ecommerce_graphql_operations_total",
            operation="ObservedCheckout",
            type="mutation",
            code="OK",
        )
        == 1
    )
    create = {
        "grpc_service": "ecommerce.order.v1.OrderService",
        "grpc_method": "CreateOrder",
        "grpc_code": "OK",
    }
    assert delta(checkout, "order", "grpc_server_handled_total", **create) == 1
    assert (
        delta(
            checkout,
            "order",
            "grpc_server_handling_seconds_count",
            grpc_service=create["grpc_service"],
            grpc_method="CreateOrder",
        )
        == 1
    )
    # Reserve, then commit the stock; authorize the payment; the two replies of each.
    assert delta(checkout, "catalog", "ecommerce_consumer_processed_total", consumer="catalog") >= 1
    assert delta(checkout, "payment", "ecommerce_consumer_processed_total", consumer="payment") == 1
    assert delta(checkout, "order", "ecommerce_consumer_processed_total", consumer="order-saga") >= 2
    for process in ("order", "catalog", "payment"):
        assert delta(checkout, process, "ecommerce_outbox_published_total") >= 1, process
        assert ("ecommerce_outbox_lag_seconds", frozenset()) in checkout.after[process], process
    assert delta(checkout, "payment", "ecommerce_inbox_duplicates_total", consumer="payment") == 0
    assert (
        "ecommerce_circuit_breaker_state",
        frozenset({("breaker", "payment-provider-simulated")}),
    ) in checkout.after["payment"]


async def test_an_order_shows_in_the_saga_payment_and_order_status_metrics(checkout):
    assert delta(checkout, "order", "ecommerce_saga_outcomes_total", outcome="confirmed") == 1
    assert (
        delta(
            checkout,
            "order",
            "ecommerce_saga_step_duration_seconds_count",
            step="reserve_stock",
            outcome="ok",
        )
        == 1
    )
    assert delta(checkout, "payment", "ecommerce_payment_outcomes_total", outcome="succeeded") == 1
    assert value(checkout.after["order"], "ecommerce_orders_by_status", status="CONFIRMED") >= 1
