"""A service names its parts; the kit starts, runs and stops them.

A service's `build(settings)` opens a `ServiceRuntime`, makes its use cases and returns a
`ServiceApp` (or a subclass that adds the service's own handles for tests and commands) naming:

- the servicer it serves (`registration`, `service_name`) and who verifies callers;
- its consumers, made by `runtime.consumer(name, topics, handlers)` from the service's settings;
- its background loops (`Background(name, run)`);
- what to close after the server and the runtime (`on_close`).

`app.serve()` runs it all until SIGTERM or SIGINT; `app.start()` / `app.stop(running)` do the
same in-process for tests; `service_main(name, settings_type, build)` is a service's `main`.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import grpc
from grpc_health.v1 import health

from servicekit.auth import Authenticator
from servicekit.grpc_server import Registration
from servicekit.inbox import EventConsumer
from servicekit.logging import configure_service_logging
from servicekit.runtime import ServiceRuntime, shutdown, start
from servicekit.settings import ServiceSettings

SettingsT = TypeVar("SettingsT", bound=ServiceSettings)
SettingsT_contra = TypeVar("SettingsT_contra", bound=ServiceSettings, contravariant=True)


@dataclass(frozen=True)
class Background:
    """A loop that runs beside the server for the life of the process (restarted if it fails)."""

    name: str
    run: Callable[[], Awaitable[None]]


@dataclass(frozen=True)
class Running:
    """A started service: its server, its health servicer and the port it is bound to."""

    server: grpc.aio.Server
    health: health.aio.HealthServicer
    port: int


@dataclass(kw_only=True)
class ServiceApp:
    """One service's parts, ready to start."""

    runtime: ServiceRuntime
    registration: Registration
    service_name: str
    authenticator: Authenticator | None
    consumers: list[EventConsumer] = field(default_factory=list)
    background: list[Background] = field(default_factory=list)
    on_close: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    @property
    def consumer(self) -> EventConsumer:
        """The service's consumer, for a service that has exactly one."""
        if len(self.consumers) != 1:
            raise AttributeError(f"{self.runtime.name} has {len(self.consumers)} consumers, not one")
        return self.consumers[0]

    def start_background(self) -> None:
        """Spawn the consumers, each once the producer (its dead-letter sender) is up, and the loops."""
        runtime = self.runtime
        for consumer in self.consumers:

            async def consume(consumer: EventConsumer = consumer) -> None:
                await runtime.wait_producer()
                await consumer.run()

            runtime.spawn(consume, f"{consumer.name}-consumer")
        for loop in self.background:
            runtime.spawn(loop.run, loop.name)

    async def start(self, *, background: bool = True) -> Running:
        """Serve on the configured port with the relay, and the consumers and loops unless
        `background` is False."""
        server, health_servicer, port = await start(
            self.runtime,
            [self.registration],
            [self.service_name],
            authenticator=self.authenticator,
            start_background=self.start_background if background else None,
        )
        return Running(server, health_servicer, port)

    async def stop(self, running: Running) -> None:
        """Graceful stop: NOT_SERVING, the server, the loops and connections, then `on_close`."""
        try:
            await shutdown(self.runtime, running.server, running.health, [self.service_name])
        finally:
            await self._close_own()

    async def close(self) -> None:
        """Close an app that was never started (one-shot commands such as `ecommerce seed`)."""
        try:
            await self.runtime.close()
        finally:
            await self._close_own()

    async def serve(self) -> None:
        """Run until SIGTERM or SIGINT, then stop gracefully."""
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        running = await self.start()
        try:
            await stop.wait()
        finally:
            await self.stop(running)

    async def _close_own(self) -> None:
        for close in self.on_close:
            await close()


async def serve_service(name: str, settings: SettingsT, build: Callable[[SettingsT], ServiceApp]) -> None:
    """Configure the process's logging, build the service and serve it until a signal."""
    configure_service_logging(name, settings)
    await build(settings).serve()


class ServiceMain(Protocol[SettingsT_contra]):
    def __call__(self, settings: SettingsT_contra | None = None) -> Coroutine[Any, Any, None]: ...


def service_main(
    name: str, settings_type: type[SettingsT], build: Callable[[SettingsT], ServiceApp]
) -> ServiceMain[SettingsT]:
    """A service's `main(settings=None)`: its settings from the environment unless given."""

    async def main(settings: SettingsT | None = None) -> None:
        await serve_service(name, settings if settings is not None else settings_type(), build)

    return main
