"""JSON logs, one object a line, each carrying the service, request id, trace id and caller."""

from __future__ import annotations

import logging
import sys

from pythonjsonlogger.json import JsonFormatter

from servicekit.context import current_caller, current_request_id
from servicekit.tracing import current_ids

_configured = False


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


def configure_logging(service: str, *, level: str = "INFO", fmt: str = "json") -> None:
    """Configure the root logger once per process."""
    global _configured
    root = logging.getLogger()
    if _configured:
        root.setLevel(level.upper())
        return
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(
            JsonFormatter(
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
