"""A webhook receiver for the tests: a real HTTP server on loopback (uvicorn) that records every
POST and answers the statuses a test queues (then 200), after an optional delay."""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.helpers import eventually


@dataclass
class ReceivedRequest:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """A real HTTP server on loopback: records every POST, answers the queued statuses (then 200)."""

    requests: list[ReceivedRequest] = field(default_factory=list)
    statuses: collections.deque[int] = field(default_factory=collections.deque)
    delay: float = 0.0
    port: int = 0
    _server: uvicorn.Server | None = None
    _task: asyncio.Task[None] | None = None

    def url(self, path: str = "/hooks") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def reset(self) -> None:
        self.requests.clear()
        self.statuses.clear()
        self.delay = 0.0

    def answer(self, *statuses: int) -> None:
        self.statuses.extend(statuses)

    async def _receive(self, request: Request) -> Response:
        self.requests.append(
            ReceivedRequest(
                request.url.path, {k.lower(): v for k, v in request.headers.items()}, await request.body()
            )
        )
        if self.delay:
            await asyncio.sleep(self.delay)  # the endpoint being slow, not the test waiting
        return Response(status_code=self.statuses.popleft() if self.statuses else 200)

    async def start(self) -> None:
        app = Starlette(routes=[Route("/{path:path}", self._receive, methods=["POST"])])
        config = uvicorn.Config(
            app, host="127.0.0.1", port=0, log_level="warning", lifespan="off", timeout_graceful_shutdown=1
        )
        self._server = uvicorn.Server(config)
        self._task = asyncio.create_task(self._server.serve())
        server = self._server

        async def started() -> bool:
            return server.started

        await eventually(started, what="the webhook receiver to listen")
        self.port = server.servers[0].sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            await self._task

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Receiver]:
        """Listening while the block runs."""
        await self.start()
        try:
            yield self
        finally:
            await self.stop()

    def received(self, event_id: str) -> list[ReceivedRequest]:
        return [r for r in self.requests if r.headers.get("x-ecommerce-event-id") == event_id]
