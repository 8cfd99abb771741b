"""uvicorn's HTTP/1.1 protocol (httptools), with each response's head and body in one write.

uvicorn writes a response's status line and headers as soon as the application starts the
response, then its body: two writes, two TCP segments, each a system call that on the loopback
also delivers the segment to the reader. For the gateway's answers, small JSON bodies sent right
after their head, the first write was about as dear as the second. Here the transport holds a
write back until the next one (head and body then go out as one) or until the event loop's next
turn, whichever comes first: nothing is reordered, and a write that nothing follows (a
`100 Continue`, a WebSocket frame) leaves at most one turn of the loop later.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class HeldWriteTransport:
    """A transport that joins a write to the one that follows it in the same turn of the loop."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._held: bytes | None = None

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._held is None:
            if not data:
                return
            self._held = bytes(data)
            self._loop.call_soon(self.flush)
            return
        held, self._held = self._held, None
        self._transport.write(held + bytes(data))

    def writelines(self, lines: Any) -> None:
        self.write(b"".join(lines))

    def flush(self) -> None:
        held, self._held = self._held, None
        if held is not None and not self._transport.is_closing():
            self._transport.write(held)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def abort(self) -> None:
        self._held = None
        self._transport.abort()

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + len(self._held or b"")

    def __getattr__(self, name: str) -> Any:
        # Everything else (reading, flow control, extra info, a WebSocket upgrade's set_protocol)
        # is the real transport's.
        return getattr(self._transport, name)


class OneWriteHttpProtocol(HttpToolsProtocol):
    """`uvicorn.run(..., http=OneWriteHttpProtocol)`: httptools, one write per response."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        held = HeldWriteTransport(transport, self.loop)
        super().connection_made(held)  # type: ignore[arg-type]
