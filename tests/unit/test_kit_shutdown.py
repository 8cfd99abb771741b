"""A service's shutdown goes on when the gRPC server's stop never returns (grpc.aio can hang there
when calls are in flight): the loops and connections are closed all the same, and it says so."""

from __future__ import annotations

import asyncio
import logging
from types import SimpleNamespace

import pytest
from grpc_health.v1 import health

from servicekit import runtime as kit


class StuckServer:
    """A server whose stop waits for ever, as grpc.aio's sometimes does."""

    def __init__(self) -> None:
        self.stop_called_with: float | None = None

    async def stop(self, grace: float) -> None:
        self.stop_called_with = grace
        await asyncio.Event().wait()


async def test_a_server_that_never_stops_does_not_keep_the_process_alive(monkeypatch, caplog) -> None:
    monkeypatch.setattr(kit, "STOP_MARGIN", 0.05)
    closed = asyncio.Event()

    async def close() -> None:
        closed.set()

    service = SimpleNamespace(
        name="payment",
        side_server=SimpleNamespace(ready=True),
        settings=SimpleNamespace(grpc_shutdown_grace=0.05),
        close=close,
    )
    server = StuckServer()
    servicer = health.aio.HealthServicer()

    with caplog.at_level(logging.ERROR, logger="servicekit.runtime"):
        async with asyncio.timeout(10):  # a failure of this test, not a hang of the suite
            await kit.shutdown(service, server, servicer, ["ecommerce.payment.v1.PaymentService"])  # type: ignore[arg-type]

    assert server.stop_called_with == pytest.approx(0.05)
    assert closed.is_set()
    assert service.side_server.ready is False
    assert any("had not stopped" in r.getMessage() for r in caplog.records)
