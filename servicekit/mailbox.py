"""A real local SMTP server for the embedded default: every message it accepts becomes a file.

`ecommerce dev` starts one unless `NOTIFICATION_SMTP_HOST` names another server, so the e-mails
the platform sends land under `<data_dir>/mail/`, one `.eml` file each (RFC 5322, as received,
with `Return-Path` and `Delivered-To` added as a delivering server would): any mail client opens
them. It is `aiosmtpd` in a thread of its own, so it serves whatever the caller's event loop does.
"""

from __future__ import annotations

import email.policy
import logging
import os
import socket
import uuid
from datetime import UTC, datetime
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any, Self

from aiosmtpd.controller import Controller

log = logging.getLogger(__name__)

HOST = "127.0.0.1"


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class _Maildir:
    """The aiosmtpd handler: one file per accepted message, written whole or not at all."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        content: bytes = envelope.original_content or envelope.content or b""
        if isinstance(content, str):
            content = content.encode("utf-8", "surrogateescape")
        trace = f"Return-Path: <{envelope.mail_from or ''}>\r\n".encode()
        for recipient in envelope.rcpt_tos:
            trace += f"Delivered-To: {recipient}\r\n".encode()
        name = f"{datetime.now(UTC).strftime('%Y%m%dT%H%M%S.%fZ')}-{uuid.uuid4().hex[:8]}.eml"
        partial = self.directory / f".{name}.part"
        partial.write_bytes(trace + content)
        os.replace(partial, self.directory / name)
        log.info("mailbox: stored %s for %s", name, ", ".join(envelope.rcpt_tos))
        return "250 Message accepted for delivery"


class Mailbox:
    """An SMTP server on `host:port` storing messages in `directory`; `port=0` picks a free one,
    kept across `stop()` and `start()` so that a restarted mailbox is found where it was."""

    def __init__(self, directory: Path, *, host: str = HOST, port: int = 0) -> None:
        self.directory = Path(directory)
        self.host = host
        self.port = port
        self._controller: Controller | None = None

    @property
    def running(self) -> bool:
        return self._controller is not None

    def start(self) -> Self:
        if self._controller is not None:
            return self
        self.directory.mkdir(parents=True, exist_ok=True)
        if not self.port:
            self.port = _free_port(self.host)
        controller = Controller(
            _Maildir(self.directory),
            hostname=self.host,
            port=self.port,
            server_hostname="mailbox.localhost",
            ready_timeout=10.0,
        )
        controller.start()
        self._controller = controller
        log.info("mailbox: smtp://%s:%d, messages in %s", self.host, self.port, self.directory)
        return self

    def stop(self) -> None:
        controller, self._controller = self._controller, None
        if controller is not None:
            controller.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def files(self) -> list[Path]:
        """The stored messages, oldest first."""
        if not self.directory.exists():
            return []
        return sorted(p for p in self.directory.glob("*.eml") if p.is_file())

    def messages(self) -> list[EmailMessage]:
        return [read_message(path) for path in self.files()]


def read_message(path: Path) -> EmailMessage:
    """One stored `.eml` file, parsed."""
    with path.open("rb") as handle:
        # With the default policy the parser builds EmailMessage objects.
        return BytesParser(policy=email.policy.default).parse(handle)
