"""JSON log lines and the access lines LOG_ACCESS chooses."""

from __future__ import annotations

import json
import logging

import pytest

from servicekit import logging as servicekit_logging
from servicekit.logging import access_logged, configure_logging


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
    assert {"time", "request_id", "trace_id", "account_id"} <= first.keys()
    assert second["level"] == "ERROR"
    assert "RuntimeError: boom" in second["exc_info"]
