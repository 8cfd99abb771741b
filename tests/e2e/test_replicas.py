"""The platform with two processes of each service: calls spread over both, every order settled once."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from ecommerce_cli.stack import ALL_SERVICES, Platform, available_services, free_ports, prepare
from tests.e2e.conftest import Gateway
from tests.e2e.test_account_graphql import admin_session, sign_up
from tests.e2e.test_catalog_graphql import new_category, new_product
from tests.e2e.test_notifications import mail_to
from tests.e2e.test_order_saga import place, settled, stock
from tests.helpers import eventually, saga_histories, unique_email

REPLICAS = 2
ORDERS = 6


@pytest.fixture(scope="module")
async def replicated(infra, data_dir: Path) -> AsyncIterator[Gateway]:
    services = available_services()
    await prepare(infra, services)
    stack = Platform(
        infra,
        services,
        **free_ports(REPLICAS),
        log_dir=data_dir / "logs-replicas",
        extra_env={
            "ACCOUNT_BCRYPT_ROUNDS": "4",
            "ECOMMERCE_ENV": os.environ.get("ECOMMERCE_ENV", "test"),
            **{f"{s.upper()}_OUTBOX_POLL_INTERVAL": "0.2" for s in ALL_SERVICES},
            "GATEWAY_RATE_LIMIT_CAPACITY": "1000000",
            "GATEWAY_RATE_LIMIT_RESTORE_RATE": "1000000",
        },
    )
    try:
        await stack.start(timeout=120)
        async with httpx.AsyncClient(timeout=30) as client:
            yield Gateway(f"http://127.0.0.1:{stack.ports['gateway']}/graphql", stack, client)
    finally:
        stack.stop()


async def handled_rpcs(platform: Platform, process: str, grpc_service: str) -> int:
    """RPCs of `grpc_service` process `process` answered, from its own /metrics."""
    async with httpx.AsyncClient(timeout=5) as client:
        response = await client.get(f"http://127.0.0.1:{platform.metrics_port(process)}/metrics")
    response.raise_for_status()
    return round(
        sum(
            sample.value
            for family in text_string_to_metric_families(response.text)
            for sample in family.samples
            if sample.name == "grpc_server_handled_total" and sample.labels["grpc_service"] == grpc_service
        )
    )


async def test_two_processes_of_each_service_share_the_calls_and_confirm_each_order_once(replicated):
    gateway = replicated
    admin = (await admin_session(gateway))["accessToken"]
    category = await new_category(gateway, admin, "Replicas")
    lamp = (await new_product(gateway, admin, category, name="Brass Lamp", stock=10))["id"]
    email = unique_email("replicas")
    token = (await sign_up(gateway, email=email))["accessToken"]

    placed = await asyncio.gather(*(place(gateway, token, [(lamp, 1)]) for _ in range(ORDERS)))
    orders = await asyncio.gather(*(settled(gateway, token, o["id"], payment="SUCCEEDED") for o in placed))

    assert [o["status"] for o in orders] == ["CONFIRMED"] * ORDERS
    assert all([h["status"] for h in o["history"]] in saga_histories("CONFIRMED") for o in orders)
    # Reserved once per order: a second reservation of any of them would leave less than 4.
    assert await stock(gateway, lamp) == 10 - ORDERS

    numbers = sorted(o["id"].split("-")[0].upper() for o in placed)

    async def confirmations() -> list[str] | None:
        subjects = [m["Subject"] for m in mail_to(gateway, email) if m["Subject"].endswith("is confirmed")]
        return subjects if len(subjects) >= ORDERS else None

    subjects = await eventually(confirmations, timeout=60, what="the confirmation e-mails")
    assert sorted(subjects) == [f"Your order {n} is confirmed" for n in numbers]

    platform = gateway.platform
    for service, grpc_service in [
        ("catalog", "ecommerce.catalog.v1.CatalogService"),
        ("order", "ecommerce.order.v1.OrderService"),
    ]:
        served = [
            await handled_rpcs(platform, name, grpc_service) for name in platform.process_names(service)
        ]
        assert len(served) == REPLICAS
        assert all(count > 0 for count in served), f"{service}: RPCs per process {served}"
