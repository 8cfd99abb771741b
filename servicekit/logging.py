"""JSON logs, one object a line, each carrying the service, request id, trace id and caller.

Every RPC and every GraphQL operation leaves an access line (`rpc`, `graphql`). `LOG_ACCESS`
chooses which: `all` (the default), `errors` (only those that did not end OK) or `off`; errors
and warnings of the code itself are logged whatever it says.
"""

from __future__ import annotations

import logging
import sys
from typing import TYPE_CHECKING, Literal

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
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(
            OrjsonFormatter(
                "%(asctime)s %(levelname)s %(name)s %(message)s",
                rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
                timestamp=False,
            )
        )
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)-7s %(service)s %(name)s: %(message)s")
        )
    handler.addFilter(_ContextFilter(service))
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Libraries that talk a lot at INFO.
    for noisy in ("aiokafka", "kafka", "sqlalchemy.engine", "alembic.runtime.migration"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    _configured = True


def configure_service_logging(service: str, settings: PlatformSettings) -> None:
    """`configure_logging` with a process's LOG_LEVEL, LOG_FORMAT and LOG_ACCESS."""
    configure_logging(service, level=settings.log_level, fmt=settings.log_format, access=settings.log_access)
