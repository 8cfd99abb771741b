"""Logs, one event a line, each carrying the service, request id, trace id and caller.

`LOG_FORMAT=json` (the default) writes one JSON object a line with an ISO-8601 UTC `timestamp`;
`console` (what `ecommerce dev` uses) writes one readable line prefixed with the process name,
in colour on a terminal unless `NO_COLOR` is set.

Every RPC and every GraphQL operation leaves an access line (`rpc`, `graphql`). `LOG_ACCESS`
chooses which: `all` (the default), `errors` (only those that did not end OK) or `off`; errors
and warnings of the code itself are logged whatever it says.
"""

from __future__ import annotations

import logging
import os
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal, TextIO

from pythonjsonlogger.orjson import OrjsonFormatter

from servicekit.context import current_caller, current_request_id
from servicekit.tracing import current_ids

if TYPE_CHECKING:
    from servicekit.settings import PlatformSettings

AccessLog = Literal["all", "errors", "off"]
ACCESS_LOG_CHOICES: tuple[AccessLog, ...] = ("all", "errors", "off")

_configured = False
_access: AccessLog = "all"


def access_logged(ok: bool) -> bool:
    """Whether a request that ended `ok` (or not) gets its access line."""
    return _access == "all" or (_access == "errors" and not ok)


class _ContextFilter(logging.Filter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def filter(self, record: logging.LogRecord) -> bool:
        record.service = self.service
        record.request_id = current_request_id() or None
        record.trace_id, record.span_id = current_ids()
        if not hasattr(record, "account_id"):
            caller = current_caller()
            record.account_id = caller.account_id if caller else None
        return True


# Attributes every LogRecord has; anything else on a record is an extra worth showing.
_RECORD_ATTRIBUTES = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}
# Shown otherwise (the prefix, `req=`, `account=`), or a copy of the message (uvicorn's).
_CONTEXT_ATTRIBUTES = ("service", "request_id", "trace_id", "span_id", "account_id", "color_message")
# How an access line reads: the fields that name what was called, then the field of its code.
_ACCESS_LINES = {"rpc": (("rpc_method",), "grpc_code"), "graphql": (("operation_type", "operation"), "code")}
_COLOURS = ("36", "32", "33", "35", "34", "96", "92", "93")
_LEVEL_COLOURS = {"WARNING": "33", "ERROR": "31", "CRITICAL": "1;31"}


def use_colour(stream: TextIO) -> bool:
    """Colour only on a terminal, and never when NO_COLOR is set (https://no-color.org)."""
    if os.environ.get("NO_COLOR"):
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


class ConsoleFormatter(logging.Formatter):
    """`catalog       12:03:04.512 rpc /ecommerce.catalog.v1.CatalogService/GetProduct OK 1.3 ms req=...`

    The process name first (coloured, a fixed width so that messages line up), the local time,
    the level when it is not INFO, the message, then the useful fields; the access line of an RPC
    or a GraphQL operation reads as what was called, its code and its duration.
    """

    def __init__(self, *, colour: bool) -> None:
        super().__init__()
        self.colour = colour

    def _paint(self, text: str, code: str | None) -> str:
        return f"\x1b[{code}m{text}\x1b[0m" if self.colour and code else text

    def format(self, record: logging.LogRecord) -> str:
        service = str(getattr(record, "service", "") or record.name)
        colour = _COLOURS[sum(service.encode()) % len(_COLOURS)]
        parts = [
            self._paint(f"{service:<13}", colour),
            datetime.fromtimestamp(record.created).strftime("%H:%M:%S.%f")[:-3],
        ]
        if record.levelno != logging.INFO:
            parts.append(self._paint(record.levelname, _LEVEL_COLOURS.get(record.levelname)))
        extras = {
            k: v
            for k, v in vars(record).items()
            if k not in _RECORD_ATTRIBUTES and k not in _CONTEXT_ATTRIBUTES
        }
        message = record.getMessage()
        layout = _ACCESS_LINES.get(message)
        if layout is not None and all(name in extras for name in layout[0]):
            called, code_field = layout
            code = str(extras.pop(code_field, ""))
            message = " ".join(
                [
                    message,
                    *(str(extras.pop(name)) for name in called),
                    self._paint(code, None if code == "OK" else "31"),
                    f"{extras.pop('duration_ms', '?')} ms",
                ]
            )
        elif record.name not in ("root", "__main__"):
            message = f"{record.name}: {message}"
        parts.append(message)
        fields = [f"{k}={v}" for k, v in extras.items() if v is not None]
        account_id = getattr(record, "account_id", None)
        if account_id:
            fields.append(f"account={account_id}")
        request_id = getattr(record, "request_id", None)
        if request_id:
            fields.append(f"req={request_id}")
        if fields:
            parts.append(self._paint(" ".join(fields), "2"))
        line = " ".join(parts)
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class JsonFormatter(OrjsonFormatter):
    """One JSON object a line; `timestamp` is ISO-8601 in UTC (`2026-12-07T01:02:03.456Z`)."""

    def __init__(self) -> None:
        super().__init__(
            "%(levelname)s %(name)s %(message)s",
            rename_fields={"levelname": "level", "name": "logger"},
            timestamp=False,
        )

    def add_fields(
        self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]
    ) -> None:
        log_data["timestamp"] = (
            datetime.fromtimestamp(record.created, tz=UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z")
        )
        super().add_fields(log_data, record, message_dict)


def configure_logging(
    service: str, *, level: str = "INFO", fmt: str = "json", access: AccessLog = "all"
) -> None:
    """Configure the root logger once per process; `access` is LOG_ACCESS (see above)."""
    global _configured, _access
    if access not in ACCESS_LOG_CHOICES:
        raise ValueError(f"access must be one of {', '.join(ACCESS_LOG_CHOICES)}")
    _access = access
    root = logging.getLogger()
    if _configured:
        root.setLevel(level.upper())
        return
    if fmt not in ("json", "console"):
        raise ValueError("fmt must be json or console")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonFormatter() if fmt == "json" else ConsoleFormatter(colour=use_colour(sys.stderr))
    )
    handler.addFilter(_ContextFilter(service))
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Libraries that talk a lot at INFO.
    for noisy in (
        "aiokafka",
        "kafka",
        "sqlalchemy.engine",
        "alembic",
        "httpx",
        "mail.log",  # aiosmtpd's sink: a line per SMTP command
        "watchfiles",
    ):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    _configured = True


def configure_service_logging(service: str, settings: PlatformSettings) -> None:
    """`configure_logging` with a process's LOG_LEVEL, LOG_FORMAT and LOG_ACCESS."""
    configure_logging(service, level=settings.log_level, fmt=settings.log_format, access=settings.log_access)
