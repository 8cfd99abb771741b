"""`gateway.serving`: a response's head and body leave in one write, nothing is reordered or lost,
and a server on the protocol answers HTTP and WebSocket clients as uvicorn's own does."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket
from websockets.asyncio.client import connect

from gateway.serving import HeldWriteTransport, OneWriteHttpProtocol
from tests.helpers import eventually


class RecordingTransport:
    """The real transport's side: what was written, in how many writes."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False
        self.aborted = False

    def write(self, data: bytes) -> None:
        assert not self.closed
        self.writes.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = True

    def get_write_buffer_size(self) -> int:
        return 0

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 4321)}.get(name, default)


async def _next_turn() -> None:
    """Return once every callback scheduled before this call has run (the loop runs them in order)."""
    loop = asyncio.get_running_loop()
    turned = loop.create_future()
    loop.call_soon(turned.set_result, None)
    await turned


async def test_a_head_and_the_body_that_follows_it_go_out_in_one_write() -> None:
    real = RecordingTransport()
    held = HeldWriteTransport(real, asyncio.get_running_loop())  # type: ignore[arg-type]
    held.write(b"HTTP/1.1 200 OK\r\n\r\n")
    assert real.writes == []
    held.write(b'{"data":{}}')
    assert real.writes == [b'HTTP/1.1 200 OK\r\n\r\n{"data":{}}']
    await _next_turn()  # the held write's flush finds nothing left
    assert real.writes == [b'HTTP/1.1 200 OK\r\n\r\n{"data":{}}']


async def test_a_write_nothing_follows_leaves_on_the_next_turn_of_the_loop_in_order() -> None:
    real = RecordingTransport()
    held = HeldWriteTransport(real, asyncio.get_running_loop())  # type: ignore[arg-type]
    held.write(b"one")
    assert held.get_write_buffer_size() == 3
    await _next_turn()
    assert real.writes == [b"one"]
    held.write(b"two")
    held.write(b"three")
    held.write(memoryview(b"four"))
    held.writelines([b"fi", b"ve"])
    await _next_turn()
    assert b"".join(real.writes) == b"onetwothreefourfive"
    held.write(b"")  # an empty write holds nothing back
    await _next_turn()
    assert b"".join(real.writes) == b"onetwothreefourfive"


async def test_closing_sends_what_is_held_first_and_aborting_drops_it() -> None:
    loop = asyncio.get_running_loop()
    real = RecordingTransport()
    held = HeldWriteTransport(real, loop)  # type: ignore[arg-type]
    held.write(b"last words")
    held.close()
    assert real.writes == [b"last words"]
    assert real.closed
    await _next_turn()  # the scheduled flush writes nothing on a closed transport
    assert real.writes == [b"last words"]

    other = RecordingTransport()
    held = HeldWriteTransport(other, loop)  # type: ignore[arg-type]
    held.write(b"never sent")
    held.abort()
    await _next_turn()
    assert other.writes == []
    assert other.aborted


async def test_everything_else_is_the_real_transports() -> None:
    held = HeldWriteTransport(RecordingTransport(), asyncio.get_running_loop())  # type: ignore[arg-type]
    assert held.get_extra_info("peername") == ("127.0.0.1", 4321)
    assert held.is_closing() is False
    with pytest.raises(AttributeError):
        held.no_such_method()


def _app() -> Starlette:
    async def answer(request: Request) -> JSONResponse:
        body = await request.body()
        return JSONResponse(
            {"echo": body.decode(), "padding": "x" * int(request.query_params.get("size", "0"))}
        )

    async def echo(websocket: WebSocket) -> None:
        await websocket.accept()
        async for text in websocket.iter_text():
            await websocket.send_text(text.upper())

    return Starlette(routes=[Route("/", answer, methods=["POST"]), WebSocketRoute("/ws", echo)])


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_a_server_on_the_protocol_answers_keep_alive_large_and_websocket_requests() -> None:
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            _app(), host="127.0.0.1", port=port, http=OneWriteHttpProtocol, log_config=None, lifespan="off"
        )
    )
    serving = asyncio.create_task(server.serve())
    try:

        async def started() -> bool:
            return server.started

        await eventually(started, what="the server started")
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            for i in range(20):  # one kept-alive connection, answer after answer
                response = await client.post("/", content=f"n{i}")
                assert response.json()["echo"] == f"n{i}"
            big = await client.post("/?size=3000000", content="big")  # past the socket's buffer
            assert len(big.json()["padding"]) == 3_000_000
            assert (await client.post("/", content="after")).json()["echo"] == "after"
        async with connect(f"ws://127.0.0.1:{port}/ws") as websocket:
            for word in ("one", "two", "three"):
                await websocket.send(word)
                assert await websocket.recv() == word.upper()
    finally:
        server.should_exit = True
        await asyncio.wait_for(serving, 10)
