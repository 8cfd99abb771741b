"""JSON and console log lines, and the access lines LOG_ACCESS chooses."""

from __future__ import annotations

import io
import json
import logging
import re
import sys
from datetime import UTC, datetime

import pytest

from servicekit import logging as servicekit_logging
from servicekit.context import request_id_var
from servicekit.logging import ConsoleFormatter, access_logged, configure_logging, use_colour


@pytest.mark.parametrize(
    ("setting", "ok_logged", "failed_logged"),
    [("all", True, True), ("errors", False, True), ("off", False, False)],
)
def test_log_access_chooses_which_requests_leave_a_line(
    monkeypatch: pytest.MonkeyPatch, setting: str, ok_logged: bool, failed_logged: bool
) -> None:
    monkeypatch.setattr(servicekit_logging, "_access", setting)
    assert access_logged(True) is ok_logged
    assert access_logged(False) is failed_logged


def test_an_unknown_log_access_setting_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(servicekit_logging, "_access", "all")
    with pytest.raises(ValueError, match="access must be one of all, errors, off"):
        configure_logging("test", access="some")  # type: ignore[arg-type]
    assert access_logged(True)


def test_a_line_is_one_json_object_with_the_context_and_the_extras(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", [])
    monkeypatch.setattr(servicekit_logging, "_configured", False)
    monkeypatch.setattr(servicekit_logging, "_access", "all")
    level = root.level
    configure_logging("test-service")
    try:
        logging.getLogger("unit").info("rpc", extra={"grpc_code": "OK", "duration_ms": 1.5})
        try:
            raise RuntimeError("boom")
        except RuntimeError:
            logging.getLogger("unit").exception("failed")
    finally:
        root.setLevel(level)

    first, second = (json.loads(line) for line in capsys.readouterr().err.splitlines())
    assert first["message"] == "rpc"
    assert first["level"] == "INFO"
    assert first["logger"] == "unit"
    assert first["service"] == "test-service"
    assert first["grpc_code"] == "OK"
    assert first["duration_ms"] == 1.5
    assert {"timestamp", "request_id", "trace_id", "account_id"} <= first.keys()
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", first["timestamp"])
    logged_at = datetime.fromisoformat(first["timestamp"])
    assert logged_at.tzinfo == UTC
    assert abs((datetime.now(UTC) - logged_at).total_seconds()) < 60
    assert second["level"] == "ERROR"
    assert "RuntimeError: boom" in second["exc_info"]


def console_line(record: logging.LogRecord, *, colour: bool) -> str:
    handler = logging.StreamHandler(io.StringIO())
    handler.setFormatter(ConsoleFormatter(colour=colour))
    handler.addFilter(servicekit_logging._ContextFilter("catalog"))
    handler.handle(record)
    return handler.stream.getvalue().rstrip("\n")


def rpc_record(code: str) -> logging.LogRecord:
    return logging.makeLogRecord(
        {
            "name": "servicekit.grpc_server",
            "levelno": logging.INFO,
            "levelname": "INFO",
            "msg": "rpc",
            "rpc_method": "/ecommerce.catalog.v1.CatalogService/GetProduct",
            "grpc_code": code,
            "duration_ms": 1.25,
            "account_id": None,
        }
    )


def test_a_console_line_starts_with_the_process_and_keeps_the_rpc_code_duration_and_request_id() -> None:
    token = request_id_var.set("req-123")
    try:
        line = console_line(rpc_record("NOT_FOUND"), colour=False)
    finally:
        request_id_var.reset(token)

    assert re.fullmatch(
        r"catalog {7}\d\d:\d\d:\d\d\.\d{3} rpc /ecommerce\.catalog\.v1\.CatalogService/GetProduct "
        r"NOT_FOUND 1\.25 ms req=req-123",
        line,
    ), line
    assert "\x1b[" not in line


def test_a_console_line_in_colour_paints_the_process_name_and_a_failed_code() -> None:
    line = console_line(rpc_record("INTERNAL"), colour=True)

    assert line.startswith("\x1b[")
    assert "catalog" in line.split("\x1b[0m", 1)[0]
    assert "\x1b[31mINTERNAL\x1b[0m" in line


def test_a_console_line_names_the_level_the_logger_and_the_exception() -> None:
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        record = logging.getLogger("catalog.service").makeRecord(
            "catalog.service", logging.ERROR, __file__, 1, "sweep failed", (), sys.exc_info()
        )
    line = console_line(record, colour=False)

    first, *rest = line.splitlines()
    assert re.fullmatch(r"catalog {7}\S+ ERROR catalog\.service: sweep failed", first), first
    assert "RuntimeError: boom" in rest[-1]


class Stream(io.StringIO):
    def __init__(self, tty: bool) -> None:
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


@pytest.mark.parametrize(
    ("tty", "no_color", "expected"),
    [(True, None, True), (True, "1", False), (False, None, False)],
)
def test_colour_only_on_a_terminal_and_never_with_no_color(
    monkeypatch: pytest.MonkeyPatch, tty: bool, no_color: str | None, expected: bool
) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    if no_color is not None:
        monkeypatch.setenv("NO_COLOR", no_color)
    assert use_colour(Stream(tty)) is expected


def test_an_unknown_log_format_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(servicekit_logging, "_configured", False)
    monkeypatch.setattr(logging.getLogger(), "handlers", [])
    with pytest.raises(ValueError, match="fmt must be json or console"):
        configure_logging("test", fmt="xml")


def test_a_console_graphql_line_reads_as_the_operation_its_code_and_duration() -> None:
    record = logging.makeLogRecord(
        {
            "name": "gateway.metrics",
            "levelno": logging.INFO,
            "levelname": "INFO",
            "msg": "graphql",
            "operation": "Products",
            "operation_type": "query",
            "code": "OK",
            "duration_ms": 12.5,
            "color_message": "graphql",
        }
    )
    line = console_line(record, colour=False)

    assert re.fullmatch(r"catalog {7}\S+ graphql query Products OK 12\.5 ms", line), line
