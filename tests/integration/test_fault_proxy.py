"""The chaos suite's TCP proxy: it forwards faithfully, delays, resets and refuses on demand."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from chaos.proxy import FaultProxy


@pytest.fixture
async def proxy() -> AsyncIterator[FaultProxy]:
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(4096):
            writer.write(data)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    faulty = await FaultProxy("127.0.0.1", port).start()
    yield faulty
    await faulty.stop()
    server.close()
    await server.wait_closed()


async def connect(proxy: FaultProxy) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", proxy.port)


async def test_bytes_go_through_whole_and_in_order(proxy):
    reader, writer = await connect(proxy)
    payload = bytes(range(256)) * 2048  # 512 KiB: many chunks
    writer.write(payload)
    await writer.drain()
    writer.write_eof()
    assert await asyncio.wait_for(reader.read(), 10) == payload
    writer.close()


async def test_a_delay_holds_every_chunk_back_and_keeps_the_bytes(proxy):
    proxy.delay = 0.5
    reader, writer = await connect(proxy)
    writer.write(b"ping")
    await writer.drain()
    # The answer cannot arrive before the delay each way has passed, however fast the machine.
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(reader.readexactly(4), 0.4)
    assert await asyncio.wait_for(reader.readexactly(4), 10) == b"ping"
    proxy.heal()
    writer.close()


async def test_reset_aborts_every_open_connection(proxy):
    connections = [await connect(proxy) for _ in range(3)]
    for reader, writer in connections:
        writer.write(b"hello")
        await writer.drain()
        assert await asyncio.wait_for(reader.readexactly(5), 10) == b"hello"

    assert proxy.reset() == 3

    for reader, _ in connections:
        with pytest.raises((ConnectionResetError, asyncio.IncompleteReadError)):
            await asyncio.wait_for(reader.readexactly(1), 10)
    assert proxy.open_connections == 0
    # The link is up again for new connections.
    reader, writer = await connect(proxy)
    writer.write(b"again")
    assert await asyncio.wait_for(reader.readexactly(5), 10) == b"again"
    writer.close()


async def test_while_refusing_new_connections_are_reset_at_once(proxy):
    proxy.refusing = True
    reader, writer = await connect(proxy)
    with pytest.raises((ConnectionResetError, asyncio.IncompleteReadError)):
        await asyncio.wait_for(reader.readexactly(1), 10)
    writer.close()
    proxy.heal()
    reader, writer = await connect(proxy)
    writer.write(b"back")
    assert await asyncio.wait_for(reader.readexactly(4), 10) == b"back"
    writer.close()


async def test_a_target_that_is_down_looks_down_through_the_proxy():
    faulty = await FaultProxy("127.0.0.1", 1).start()  # nothing listens on port 1
    try:
        reader, _ = await connect(faulty)
        with pytest.raises((ConnectionResetError, asyncio.IncompleteReadError)):
            await asyncio.wait_for(reader.readexactly(1), 10)
    finally:
        await faulty.stop()
