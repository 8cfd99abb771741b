"""E-mail out over SMTP with aiosmtplib: one message, one conversation, a clear verdict.

A failure is either transient (the server is away, busy, or answered 4xx: try again later) or
permanent (5xx, e.g. the recipient was refused: trying again changes nothing).
"""

from __future__ import annotations

from dataclasses import dataclass
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formatdate, make_msgid, parseaddr

import aiosmtplib


class SendError(Exception):
    def __init__(self, message: str, *, permanent: bool) -> None:
        super().__init__(message)
        self.permanent = permanent


@dataclass(frozen=True)
class SmtpConfig:
    host: str
    port: int
    starttls: bool
    username: str | None
    password: str | None
    timeout: float
    sender: str


class Mailer:
    def __init__(self, config: SmtpConfig) -> None:
        self.config = config
        _, address = parseaddr(config.sender)
        self._domain = address.rpartition("@")[2] or "localhost"

    def compose(
        self,
        *,
        to: str,
        subject: str,
        text: str,
        html: str,
        headers: dict[str, str] | None = None,
        message_key: str | None = None,
    ) -> EmailMessage:
        """`message_key` (the notification's id) fixes the Message-ID: when a send is retried
        because the outcome of an earlier one was lost (a crash between the SMTP server's "250"
        and our record of it), the copy carries the same Message-ID, by which mail systems
        recognise it as the same message."""
        message = EmailMessage()
        message["From"] = self.config.sender
        message["To"] = Address(addr_spec=to)
        message["Subject"] = subject
        message["Date"] = formatdate(localtime=False, usegmt=True)
        message["Message-ID"] = (
            f"<{message_key}@{self._domain}>" if message_key else make_msgid(domain=self._domain)
        )
        for name, value in (headers or {}).items():
            message[name] = value
        message.set_content(text)
        message.add_alternative(html, subtype="html")
        return message

    async def send(self, message: EmailMessage) -> None:
        config = self.config
        try:
            await aiosmtplib.send(
                message,
                hostname=config.host,
                port=config.port,
                start_tls=config.starttls,
                username=config.username,
                password=config.password,
                timeout=config.timeout,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            raise SendError(f"recipient refused: {_first_line(exc)}", permanent=True) from None
        except aiosmtplib.SMTPDataError as exc:
            # The server read the message and refused it for good (5xx) or for now (4xx).
            raise SendError(
                f"SMTP {exc.code}: {_first_line(exc.message)}", permanent=exc.code >= 500
            ) from None
        except aiosmtplib.SMTPResponseException as exc:
            # Refused sender, failed AUTH, a busy server: the configuration or the moment, not
            # the message; trying again later may succeed.
            raise SendError(f"SMTP {exc.code}: {_first_line(exc.message)}", permanent=False) from None
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            raise SendError(f"{type(exc).__name__}: {_first_line(exc)}", permanent=False) from None


def _first_line(value: object) -> str:
    return str(value).strip().splitlines()[0][:300] if str(value).strip() else ""
