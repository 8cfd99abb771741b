"""servicekit.app: a service's declared parts become consumers and loops built from its settings.

The runtime's clients connect lazily: nothing here reaches a server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from servicekit.app import Background, ServiceApp
from servicekit.db import new_metadata
from servicekit.inbox import inbox_table
from servicekit.runtime import ServiceRuntime
from servicekit.settings import ServiceSettings

INBOX = inbox_table(new_metadata())


def _settings() -> ServiceSettings:
    return ServiceSettings(
        database_url="postgresql://nobody@127.0.0.1:9/nothing",
        redis_url="redis://127.0.0.1:9/0",
        kafka_bootstrap_servers="127.0.0.1:9",
        consumer_max_attempts=7,
        kafka_session_timeout_ms=12_345,
    )


@pytest_asyncio.fixture
async def runtime() -> AsyncIterator[ServiceRuntime]:
    runtime = ServiceRuntime(_settings(), "shop", inbox_table=INBOX)
    yield runtime
    await runtime.close()


async def _handle(session: object, envelope: object) -> None:
    return None


def _app(runtime: ServiceRuntime, **parts: Any) -> ServiceApp:
    return ServiceApp(
        runtime=runtime,
        registration=(lambda s, server: None, None),
        service_name="x",
        authenticator=None,
        **parts,
    )


async def test_a_consumer_is_built_from_the_services_settings(runtime):
    consumer = runtime.consumer("shop", ["orders.events"], {"order.placed": _handle})

    assert consumer.name == consumer.group_id == "shop"
    assert consumer.topics == ["orders.events"]
    assert consumer.handlers == {"order.placed": _handle}
    assert consumer.inbox is INBOX
    assert consumer.sessions is runtime.sessions
    assert consumer.dead_letters is runtime.producer
    assert consumer.bootstrap_servers == runtime.broker
    assert runtime.broker.bootstrap_servers == "127.0.0.1:9"
    assert consumer.max_attempts == 7
    assert consumer.session_timeout_ms == 12_345
    assert runtime.consumer("shop", ["a"], {}, group_id="shop-replay").group_id == "shop-replay"


async def test_a_service_without_an_inbox_cannot_consume():
    runtime = ServiceRuntime(_settings(), "quiet")
    try:
        with pytest.raises(TypeError, match="quiet has no inbox table"):
            runtime.consumer_options()
    finally:
        await runtime.close()


async def test_the_consumer_of_an_app_is_its_only_one(runtime):
    one = runtime.consumer("shop", ["a"], {})

    assert _app(runtime, consumers=[one]).consumer is one
    for consumers in ([], [one, runtime.consumer("other", ["b"], {})]):
        with pytest.raises(AttributeError, match=f"shop has {len(consumers)} consumers, not one"):
            _ = _app(runtime, consumers=consumers).consumer


async def test_background_loops_run_under_their_names_and_consumers_wait_for_the_producer(runtime):
    ran = asyncio.Event()

    async def loop() -> None:
        ran.set()
        await asyncio.Event().wait()

    app = _app(
        runtime, consumers=[runtime.consumer("shop", ["a"], {})], background=[Background("sweeper", loop)]
    )
    app.start_background()
    await asyncio.wait_for(ran.wait(), timeout=10)

    assert sorted(task.get_name() for task in runtime._tasks) == ["shop-consumer", "sweeper"]
    consumer_task = next(t for t in runtime._tasks if t.get_name() == "shop-consumer")
    assert not consumer_task.done()  # parked until the producer has started


async def test_closing_an_app_closes_its_runtime_and_then_its_own_parts(monkeypatch):
    runtime = ServiceRuntime(_settings(), "shop")
    closed: list[str] = []
    original_close = runtime.close

    async def close_runtime() -> None:
        await original_close()
        closed.append("runtime")

    async def close_sender() -> None:
        closed.append("sender")

    monkeypatch.setattr(runtime, "close", close_runtime)
    await _app(runtime, on_close=[close_sender]).close()

    assert closed == ["runtime", "sender"]
