"""What every embedded server shares: a child process on a free port of 127.0.0.1, started, probed
until it answers, stopped or killed with everything it forked, its output in a log under its directory."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar, Self

from servicekit.embedded.spawn import death_signal_preexec, spawner

logger = logging.getLogger(__name__)

HOST = "127.0.0.1"
LOG_TAIL_BYTES = 4000


class EmbeddedServerError(RuntimeError):
    """An embedded server could not be prepared, started or reached."""


class _PortInUse(EmbeddedServerError):
    """The server exited because someone else took its port between our probe and its bind."""


def free_port(host: str = HOST) -> int:
    """A TCP port that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_open(port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=timeout):
            return True
    except OSError:
        return False


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
            self._proc = spawner.popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                # Its own session: Ctrl-C in the terminal reaches only us, and we stop the
                # servers in order instead of all processes getting SIGINT at once.
                start_new_session=True,
                preexec_fn=death_signal_preexec(self.stop_signal),
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
                log.seek(max(self._log_offset, size - LOG_TAIL_BYTES))
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
