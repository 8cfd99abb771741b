"""Starting the whole platform on one machine: infrastructure, databases, topics, processes.

Used by `ecommerce dev` and by the end-to-end tests, so that what the tests drive is what a
developer runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import logging
import os
import random
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import grpc
import httpx
from grpc_health.v1 import health_pb2, health_pb2_grpc

from ecommerce_cli import ALL_SERVICES
from servicekit.db import database_url, ensure_database
from servicekit.embedded import EmbeddedBroker, EmbeddedPostgres, EmbeddedRedis
from servicekit.grpc_tls import load_grpc_tls
from servicekit.kafka import all_topics, ensure_topics
from servicekit.mailbox import Mailbox
from servicekit.migrations import upgrade_async
from servicekit.runtime import grpc_channel
from servicekit.settings import PlatformSettings, grpc_target

log = logging.getLogger(__name__)

DEFAULT_PORTS = {
    "gateway": 8000,
    "account": 50051,
    "catalog": 50052,
    "order": 50053,
    "payment": 50054,
    "notification": 50055,
}
METRICS_PORTS = {
    "gateway": 9101,
    "account": 9102,
    "catalog": 9103,
    "order": 9104,
    "payment": 9105,
    "notification": 9106,
}


REPLICA_PORT_STEP = 10


def _replica_of(name: str) -> tuple[str, int]:
    """`("catalog", 1)` from the process name `catalog-2`; `("catalog", 0)` from `catalog`."""
    service, _, number = name.rpartition("-")
    if service and number.isdigit() and int(number) >= 2:
        return service, int(number) - 1
    return name, 0


def configured_ports(environ: Mapping[str, str] | None = None) -> dict[str, int]:
    """The default ports, each replaceable by `GATEWAY_PORT` or `<SERVICE>_GRPC_PORT`."""
    env = os.environ if environ is None else environ
    ports = dict(DEFAULT_PORTS)
    for name in ports:
        key = "GATEWAY_PORT" if name == "gateway" else f"{name.upper()}_GRPC_PORT"
        if env.get(key, "").isdigit():
            ports[name] = int(env[key])
    return ports


def configured_metrics_ports(environ: Mapping[str, str] | None = None) -> dict[str, int]:
    env = os.environ if environ is None else environ
    ports = dict(METRICS_PORTS)
    for name in ports:
        key = f"{name.upper()}_METRICS_PORT"
        if env.get(key, "").isdigit():
            ports[name] = int(env[key])
    return ports


def available_services() -> list[str]:
    """The services this checkout has (each later issue adds one)."""
    return [name for name in ALL_SERVICES if importlib.util.find_spec(f"{name}.__main__") is not None]


T = TypeVar("T")


async def cancelled_on_signals(work: Awaitable[T]) -> T:
    """Await `work`, cancelling it on SIGINT or SIGTERM, so that its cleanup (stopping every
    process it started) runs instead of leaving them behind."""
    task = asyncio.ensure_future(work)
    loop = asyncio.get_running_loop()
    signals = (signal.SIGINT, signal.SIGTERM)
    for sig in signals:
        loop.add_signal_handler(sig, task.cancel)
    try:
        return await task
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)


# Ports handed out by this process, never handed out twice.
_HANDED: set[int] = set()
# Where ports are looked for: below the kernel's ephemeral range, from which outgoing connections
# take their local ports. A port picked there (as bind to port 0 does) can be taken by a client's
# connection before the service binds it, which then fails with "address already in use".
_FIRST_PORT = 20_000


def _ephemeral_start() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32_768


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on, outside the ephemeral range where possible."""
    end = _ephemeral_start()
    for _ in range(100):
        port = random.randrange(_FIRST_PORT, end) if end > _FIRST_PORT + 1_000 else 0
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            chosen = int(sock.getsockname()[1])
        if chosen not in _HANDED:
            _HANDED.add(chosen)
            return chosen
    raise RuntimeError("no free port found on 127.0.0.1")


def free_ports(replicas: int = 1) -> dict[str, Any]:
    """`Platform` keyword arguments placing every process, each replica included, on a free port."""
    grpc = {
        name: [free_port() for _ in range(replicas if name != "gateway" else 1)] for name in DEFAULT_PORTS
    }
    metrics = {
        name: [free_port() for _ in range(replicas if name != "gateway" else 1)] for name in DEFAULT_PORTS
    }
    return {
        "ports": {name: ports[0] for name, ports in grpc.items()},
        "metrics_ports": {name: ports[0] for name, ports in metrics.items()},
        "replica_ports": {name: ports for name, ports in grpc.items() if name != "gateway"},
        "replica_metrics_ports": {name: ports for name, ports in metrics.items() if name != "gateway"},
        "replicas": replicas,
    }


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0


@dataclass
class Infrastructure:
    """PostgreSQL, Redis and the broker: the embedded ones unless their settings are given."""

    data_dir: Path
    environ: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    postgres: EmbeddedPostgres | None = None
    redis: EmbeddedRedis | None = None
    broker: EmbeddedBroker | None = None
    mailbox: Mailbox | None = None
    postgres_url: str = ""
    redis_url: str = ""
    kafka_bootstrap_servers: str = ""
    # The embedded broker tells clients this port instead of its own (a proxy forwards it).
    broker_advertised_port: int | None = None

    def start(self) -> Infrastructure:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.postgres_url = self.environ.get("DATABASE_URL", "")
        if not self.postgres_url:
            self.postgres = EmbeddedPostgres(self.data_dir / "postgres").start()
            self.postgres_url = self.postgres.url
        self.redis_url = self.environ.get("REDIS_URL", "")
        if not self.redis_url:
            self.redis = EmbeddedRedis(self.data_dir / "redis").start()
            self.redis_url = self.redis.url
        self.kafka_bootstrap_servers = self.environ.get("KAFKA_BOOTSTRAP_SERVERS", "")
        if not self.kafka_bootstrap_servers:
            self.broker = EmbeddedBroker(
                self.data_dir / "broker", advertised_port=self.broker_advertised_port
            ).start()
            self.kafka_bootstrap_servers = self.broker.bootstrap_servers
        if not self.environ.get("NOTIFICATION_SMTP_HOST"):
            self.mailbox = Mailbox(self.data_dir / "mail").start()
        return self

    def stop(self) -> None:
        for server in (self.mailbox, self.broker, self.redis, self.postgres):
            if server is not None:
                server.stop()

    def database_url(self, service: str) -> str:
        """A service's own database: `<SERVICE>_DATABASE_URL`, or a database named after it."""
        explicit = self.environ.get(f"{service.upper()}_DATABASE_URL")
        return explicit or database_url(self.postgres_url, service)


async def prepare(infra: Infrastructure, services: list[str], *, partitions: int = 3) -> None:
    """Create the databases, migrate them, and create the topics."""
    for service in services:
        url = infra.database_url(service)
        await ensure_database(url)
        await upgrade_async(service, url)
    await ensure_topics(infra.kafka_bootstrap_servers, all_topics(), partitions=partitions)


@dataclass
class Process:
    name: str
    popen: subprocess.Popen[bytes]


@dataclass
class Platform:
    """The services and the gateway as child processes."""

    infra: Infrastructure
    services: list[str]
    ports: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_PORTS))
    metrics_ports: dict[str, int] = field(default_factory=lambda: dict(METRICS_PORTS))
    extra_env: dict[str, str] = field(default_factory=dict)
    # Settings for one process only (e.g. the order service reaching payment through a proxy).
    process_env: dict[str, dict[str, str]] = field(default_factory=dict)
    log_dir: Path | None = None
    processes: dict[str, Process] = field(default_factory=dict)
    # One per run, so that a restarted service still knows its peers' credential.
    service_token: str = field(default_factory=lambda: secrets.token_urlsafe(32), repr=False)
    # Processes of each service; the gateway runs once. Replica i (from 0) of a service listens on
    # `replica_ports[service][i]`, by default its port plus 10 * i (50052, 50062, ...).
    replicas: int = 1
    replica_ports: dict[str, list[int]] = field(default_factory=dict)
    replica_metrics_ports: dict[str, list[int]] = field(default_factory=dict)
    # A folder made by `ecommerce gen-certs`: every process serves and calls gRPC over mutual TLS
    # with its own certificate from it (`ecommerce dev --grpc-tls`).
    grpc_tls_dir: Path | None = None

    def __post_init__(self) -> None:
        if self.replicas < 1:
            raise ValueError("replicas must be at least 1")
        for service in ALL_SERVICES:
            for chosen, base in (
                (self.replica_ports, self.ports),
                (self.replica_metrics_ports, self.metrics_ports),
            ):
                ports = chosen.setdefault(
                    service, [base[service] + REPLICA_PORT_STEP * i for i in range(self.replicas)]
                )
                if len(ports) != self.replicas or ports[0] != base[service]:
                    raise ValueError(f"{service}: {self.replicas} ports wanted, the first its own port")

    def process_names(self, service: str) -> list[str]:
        """`catalog`, then `catalog-2`, `catalog-3` ... for the further replicas."""
        return [service, *(f"{service}-{i}" for i in range(2, self.replicas + 1))]

    def service_target(self, service: str) -> str:
        """The gRPC target naming every replica of `service` (clients balance over them)."""
        addresses = ",".join(f"127.0.0.1:{port}" for port in self.replica_ports[service])
        return grpc_target(addresses)

    def grpc_port(self, name: str) -> int:
        """The port of process `name` (`catalog` or `catalog-2`)."""
        service, replica = _replica_of(name)
        return self.replica_ports[service][replica]

    def metrics_port(self, name: str) -> int:
        service, replica = _replica_of(name)
        if service == "gateway":
            return self.metrics_ports["gateway"]
        return self.replica_metrics_ports[service][replica]

    def environment(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            {
                "ECOMMERCE_DATA_DIR": str(self.infra.data_dir.resolve()),
                "REDIS_URL": self.infra.redis_url,
                "KAFKA_BOOTSTRAP_SERVERS": self.infra.kafka_bootstrap_servers,
                "GATEWAY_PORT": str(self.ports["gateway"]),
                "GATEWAY_METRICS_PORT": str(self.metrics_ports["gateway"]),
                "PYTHONUNBUFFERED": "1",
            }
        )
        env.setdefault("INTERNAL_SERVICE_TOKEN", self.service_token)
        if self.infra.broker is not None:
            # The embedded broker authenticates nobody; saying so lets production mode use it.
            env["KAFKA_SECURITY_PROTOCOL"] = "PLAINTEXT"
        # A partition goes to one consumer of a group: replicas beyond the partition count would idle.
        partitions = env.get("KAFKA_TOPIC_PARTITIONS", "")
        env["KAFKA_TOPIC_PARTITIONS"] = str(
            max(int(partitions) if partitions.isascii() and partitions.isdigit() else 3, self.replicas)
        )
        if self.infra.mailbox is not None:
            env["NOTIFICATION_SMTP_HOST"] = self.infra.mailbox.host
            env["NOTIFICATION_SMTP_PORT"] = str(self.infra.mailbox.port)
        for service in ALL_SERVICES:
            prefix = service.upper()
            env[f"{prefix}_ADDR"] = self.service_target(service)
            env[f"{prefix}_GRPC_PORT"] = str(self.ports[service])
            env[f"{prefix}_METRICS_PORT"] = str(self.metrics_ports[service])
            if service in self.services:
                env[f"{prefix}_DATABASE_URL"] = self.infra.database_url(service)
        if self.grpc_tls_dir is not None:
            env.update(self._tls_files("gateway"), GRPC_TLS_ENABLED="true")
            # A service with replicas is dialled by a list of addresses, which names no host to
            # check: the certificates of `ecommerce gen-certs` all name localhost.
            env["GRPC_TLS_SERVER_NAME"] = "localhost"
        env.update(self.extra_env)
        return env

    def _tls_files(self, name: str) -> dict[str, str]:
        assert self.grpc_tls_dir is not None
        folder = self.grpc_tls_dir / name
        return {
            "GRPC_TLS_CA_FILE": str(folder / "ca.crt"),
            "GRPC_TLS_CERT_FILE": str(folder / "tls.crt"),
            "GRPC_TLS_KEY_FILE": str(folder / "tls.key"),
        }

    def process_environment(self, name: str) -> dict[str, str]:
        """The environment of process `name`: the gateway, a service, or a further replica (`catalog-2`)."""
        service, replica = _replica_of(name)
        env = self.environment()
        if service != "gateway":
            prefix = service.upper()
            env[f"{prefix}_GRPC_PORT"] = str(self.replica_ports[service][replica])
            env[f"{prefix}_METRICS_PORT"] = str(self.replica_metrics_ports[service][replica])
            if self.grpc_tls_dir is not None:
                env.update(self._tls_files(service))
        env.update(self.process_env.get(service, {}))
        env.update(self.process_env.get(name, {}))
        return env

    def spawn(self, name: str) -> Process:
        """Start process `name`: the gateway, a service, or a further replica (`catalog-2`)."""
        service, _ = _replica_of(name)
        env = self.process_environment(name)
        if self.log_dir is not None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            output = (self.log_dir / f"{name}.log").open("ab")
        else:
            output = None
        popen = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            [sys.executable, "-m", service],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT if output else None,
            start_new_session=True,
        )
        process = Process(name, popen)
        self.processes[name] = process
        return process

    async def start(self, *, timeout: float = 60.0) -> None:
        wanted = {"gateway": self.ports["gateway"]} | {
            name: self.grpc_port(name) for service in self.services for name in self.process_names(service)
        }
        taken = [f"{n} ({p})" for n, p in wanted.items() if port_in_use(p)]
        if taken:
            raise RuntimeError(f"ports already in use: {', '.join(taken)}")
        names = [name for service in self.services for name in self.process_names(service)]
        for name in names:
            self.spawn(name)
        await asyncio.gather(*(self.wait_grpc(name, timeout=timeout) for name in names))
        self.spawn("gateway")
        await self.wait_http(f"http://127.0.0.1:{self.ports['gateway']}/healthz", "gateway", timeout=timeout)

    async def wait_grpc(self, name: str, *, timeout: float) -> None:
        """Wait until process `name` (`catalog`, `catalog-2`) answers its health check."""
        deadline = time.monotonic() + timeout
        tls = None
        if self.grpc_tls_dir is not None:  # as the gateway would call it
            files = self._tls_files("gateway")
            tls = load_grpc_tls(
                PlatformSettings(
                    grpc_tls_enabled=True,
                    grpc_tls_ca_file=files["GRPC_TLS_CA_FILE"],
                    grpc_tls_cert_file=files["GRPC_TLS_CERT_FILE"],
                    grpc_tls_key_file=files["GRPC_TLS_KEY_FILE"],
                )
            )
        async with grpc_channel(f"127.0.0.1:{self.grpc_port(name)}", tls=tls) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            while True:
                self._check_alive(name)
                try:
                    response = await stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=1.0)
                    if response.status == health_pb2.HealthCheckResponse.SERVING:
                        return
                except grpc.aio.AioRpcError:
                    pass
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{name} did not become healthy within {timeout:.0f}s")
                await asyncio.sleep(0.1)

    async def wait_http(self, url: str, name: str, *, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient() as client:
            while True:
                self._check_alive(name)
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(url, timeout=1.0)).status_code == 200:
                        return
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{name} did not answer {url} within {timeout:.0f}s")
                await asyncio.sleep(0.1)

    def _check_alive(self, name: str) -> None:
        process = self.processes.get(name)
        if process is not None and process.popen.poll() is not None:
            raise RuntimeError(f"{name} exited with code {process.popen.returncode}")

    async def restart(self, name: str, *, kill: bool = False, timeout: float = 60.0) -> Process:
        """Stop one process and start it again on the same ports; `kill` makes the stop a SIGKILL,
        as a crash would (fault injection). Returns once it answers its health check again."""
        process = self.processes.pop(name, None)
        if process is not None and process.popen.poll() is None:
            if kill:
                process.popen.kill()
            else:
                process.popen.send_signal(signal.SIGTERM)
            await asyncio.to_thread(process.popen.wait, timeout)
        restarted = self.spawn(name)
        if name == "gateway":
            await self.wait_http(f"http://127.0.0.1:{self.ports['gateway']}/healthz", name, timeout=timeout)
        else:
            await self.wait_grpc(name, timeout=timeout)
        return restarted

    def stop(self, *, timeout: float = 10.0) -> None:
        # The gateway first, so that no request arrives at a service that is going away.
        order = ["gateway", *(n for s in reversed(self.services) for n in self.process_names(s))]
        for name in order:
            process = self.processes.get(name)
            if process is not None and process.popen.poll() is None:
                process.popen.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for name in order:
            process = self.processes.pop(name, None)
            if process is None:
                continue
            try:
                process.popen.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop in time; killing it", name)
                process.popen.kill()
                process.popen.wait()
