"""The checks behind the gateway's /status: bounded in time, run concurrently, answered from a
short cache."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis
from pydantic import ValidationError

from gateway.settings import GatewaySettings
from gateway.status import PlatformStatus, Report
from tests.helpers import eventually

SERVICES = ("account", "catalog", "order", "payment", "notification")


@pytest.fixture
async def silent_port() -> AsyncIterator[int]:
    """A port that accepts connections and never says anything: a peer that hangs."""
    held: list[asyncio.StreamWriter] = []

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    for writer in held:
        writer.close()
    server.close()


def hanging_platform(port: int, *, timeout: float, ttl: float) -> PlatformStatus:
    address = f"127.0.0.1:{port}"
    settings = GatewaySettings(
        kafka_bootstrap_servers=address, **{f"{name}_addr": address for name in SERVICES}
    )
    redis = aioredis.from_url(f"redis://{address}/0")
    return PlatformStatus(settings, redis, timeout=timeout, ttl=ttl)


async def test_every_check_of_a_hanging_platform_fails_within_one_timeout_not_the_sum(silent_port):
    status = hanging_platform(silent_port, timeout=0.5, ttl=1.0)
    try:
        started = time.monotonic()
        report = await status.report()
        elapsed = time.monotonic() - started
    finally:
        await status.close()
        await status.redis.aclose()

    body = report.as_json()
    assert body["status"] == "failing"
    assert body["failing"] == [
        *(name for service in SERVICES for name in (service, f"{service}.database")),
        "redis",
        "broker",
    ]
    assert all(check["error"] for check in body["checks"])
    assert all(check["latency_ms"] < 1500 for check in body["checks"])
    # Twelve checks of 0.5 s each: one after the other they would take at least their sum.
    assert elapsed < 12 * 0.5


async def test_callers_within_the_ttl_share_one_answer_and_a_later_one_checks_again(silent_port):
    status = hanging_platform(silent_port, timeout=0.2, ttl=1.0)
    try:
        first, *others = await asyncio.gather(*(status.report() for _ in range(10)))

        async def checked_again() -> Report | None:
            report = await status.report()
            return report if report is not first else None

        later = await eventually(checked_again, timeout=5, interval=0.05, what="a new round of checks")
    finally:
        await status.close()
        await status.redis.aclose()

    assert all(other is first for other in others)
    assert later.checked_at != first.checked_at


@pytest.mark.parametrize("value", ["0", "-1", "31", "abc", "nan", ""])
def test_a_status_timeout_out_of_bounds_is_refused(monkeypatch: pytest.MonkeyPatch, value: str):
    monkeypatch.setenv("GATEWAY_STATUS_TIMEOUT", value)
    with pytest.raises(ValidationError, match="status_timeout"):
        GatewaySettings()
