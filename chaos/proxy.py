"""A TCP proxy whose faults are switched at run time: the network between two of our processes.

`FaultProxy` listens on 127.0.0.1 and forwards every connection to one target. While it runs:

- `delay` adds that many seconds of latency to every chunk, each way (the bytes keep their order
  and the throughput stays, as on a long link);
- `reset()` aborts every open connection with a TCP RST, as a crashed middlebox or a dropped NAT
  entry does;
- `refusing` resets each new connection as soon as it is accepted.

Used by `make chaos` between the order and payment services and between every service and the
broker; no root, no network namespace.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
import time
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

_CHUNK = 64 * 1024
_LINGER_RST = struct.pack("ii", 1, 0)  # SO_LINGER on, zero seconds: close() sends RST


@dataclass(eq=False)
class _Link:
    client: asyncio.StreamWriter
    upstream: asyncio.StreamWriter
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def abort(self) -> None:
        for writer in (self.client, self.upstream):
            _reset(writer)
        for task in self.tasks:
            task.cancel()


def _reset(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RST)
    writer.transport.abort()


class FaultProxy:
    def __init__(self, target_host: str, target_port: int, *, port: int = 0, name: str = "proxy") -> None:
        self.target = (target_host, target_port)
        self.name = name
        self.delay = 0.0
        self.refusing = False
        self.connections = 0  # accepted, in all
        self.resets = 0  # connections this proxy aborted
        self._port = port
        self._server: asyncio.Server | None = None
        self._links: set[_Link] = set()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError(f"{self.name} has not been started")
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def open_connections(self) -> int:
        return len(self._links)

    async def start(self) -> FaultProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self._port)
        self._port = self.port  # a restart keeps the address it handed out
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            self.reset()
            await self._server.wait_closed()
            self._server = None

    def heal(self) -> None:
        self.delay = 0.0
        self.refusing = False

    def reset(self) -> int:
        """Abort every open connection with RST; returns how many there were."""
        links = list(self._links)
        for link in links:
            link.abort()
        self._links.clear()
        self.resets += len(links)
        return len(links)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        if self.refusing:
            self.resets += 1
            _reset(writer)
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            _reset(writer)  # the target is down: the caller sees what it would without us
            return
        link = _Link(writer, up_writer)
        self._links.add(link)
        link.tasks = [
            asyncio.create_task(self._pump(reader, up_writer, link)),
            asyncio.create_task(self._pump(up_reader, writer, link)),
        ]
        await asyncio.gather(*link.tasks, return_exceptions=True)
        self._links.discard(link)
        for end in (writer, up_writer):
            with contextlib.suppress(Exception):
                end.close()

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, link: _Link) -> None:
        """Copy one direction; with a delay, each chunk leaves `delay` seconds after it arrived."""
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def deliver() -> None:
            try:
                while True:
                    due, data = await queue.get()
                    if not data:
                        with contextlib.suppress(OSError):
                            writer.write_eof()
                        return
                    wait = due - time.monotonic()
                    if wait > 0:
                        await asyncio.sleep(wait)
                    writer.write(data)
                    await writer.drain()
            except OSError:
                link.abort()

        sender = asyncio.create_task(deliver())
        try:
            while True:
                data = await reader.read(_CHUNK)
                queue.put_nowait((time.monotonic() + self.delay, data))
                if not data:
                    break
            await sender
        except (OSError, asyncio.IncompleteReadError):
            link.abort()
        finally:
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError, OSError):
                await sender
