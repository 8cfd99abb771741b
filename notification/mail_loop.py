"""The e-mail delivery loop: render and send the due e-mails, and record each outcome.

An e-mail is sent outside any transaction, then marked SENT, due again after an exponential
backoff, or FAILED past the budget. One that fails for good sends its event to the dead-letter
topic through the outbox, in the transaction that marks it FAILED.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from jinja2 import TemplateError
from sqlalchemy import Table, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from notification.delivery import DeliveryLoop, claim
from notification.mailer import Mailer, SendError
from notification.models import FAILED, GUEST, PENDING, SENT, Notification
from notification.peers import AccountDirectory, Recipient
from notification.settings import SMTP_CONNECTIONS
from notification.templates import TemplateRenderer
from servicekit.db import transaction
from servicekit.errors import Unavailable
from servicekit.kafka import dead_letter_topic
from servicekit.metrics import NOTIFICATIONS_FAILED, NOTIFICATIONS_SENT
from servicekit.outbox import NOTIFY_CHANNEL
from servicekit.topics import AccountEvent, AccountLink

log = logging.getLogger(__name__)

# Events that carry the address and name themselves; every other e-mail but a guest's asks the
# account service at each attempt, so that it goes to the address the account has now.
ADDRESSED_BY_EVENT = frozenset({AccountEvent.REGISTERED})


def addressed_by_event(notification: Notification) -> bool:
    """Whether the e-mail goes to the address recorded with it: a guest's, or a registration's."""
    return notification.account_id == GUEST or notification.event_type in ADDRESSED_BY_EVENT


# Events whose e-mail carries a secret link: once sent (or failed for good) no copy stays here.
SECRET_EVENTS = frozenset(AccountLink)


@dataclass(frozen=True)
class _MailOutcome:
    sent: bool
    permanent: bool = False
    error: str = ""
    recipient: str = ""
    subject: str = ""


@dataclass(kw_only=True, eq=False)
class MailLoop(DeliveryLoop):
    outbox: Table
    renderer: TemplateRenderer
    mailer: Mailer
    directory: AccountDirectory
    # Mail servers limit connections per client.
    _smtp_connections: asyncio.Semaphore = field(
        default_factory=lambda: asyncio.Semaphore(SMTP_CONNECTIONS), init=False, repr=False
    )
    # What operators (and metrics) read.
    sent_total: int = field(default=0, init=False)
    failed_total: int = field(default=0, init=False)
    dead_lettered_total: int = field(default=0, init=False)

    async def deliver(self) -> int:
        """Send the e-mails that are due; returns how many were attempted."""
        claimed = await claim(self.sessions, Notification, batch_size=self.batch_size, lease=self.lease)
        if not claimed:
            return 0
        lookups = [str(n.account_id) for n in claimed if not addressed_by_event(n)]
        recipients: dict[str, Recipient] | None = {}
        if lookups:
            try:
                recipients = await self.directory.recipients(lookups)
            except Unavailable as exc:
                log.warning("cannot look up recipients now: %s", exc.message)
                recipients = None
        await asyncio.gather(*(self._send(n, recipients) for n in claimed))
        return len(claimed)

    async def _send(self, notification: Notification, recipients: dict[str, Recipient] | None) -> None:
        try:
            outcome = await self._send_once(notification, recipients)
        except Exception as exc:  # one message's surprise must not stop the others
            log.exception("notification %s: unexpected error while sending", notification.id)
            outcome = _MailOutcome(False, error=f"{type(exc).__name__}: internal error")
        await self._record_outcome(notification, outcome)

    async def _send_once(
        self, notification: Notification, recipients: dict[str, Recipient] | None
    ) -> _MailOutcome:
        variables = dict(notification.variables or {})
        recipient = notification.recipient
        if not addressed_by_event(notification):
            if recipients is None:
                return _MailOutcome(False, error="account service unavailable", subject=notification.subject)
            account = recipients.get(str(notification.account_id))
            if account is None:
                return _MailOutcome(False, permanent=True, error="recipient account not found")
            recipient = account.email
            variables.setdefault("name", account.name)
        try:
            rendered = self.renderer.render(notification.template, variables, reference=str(notification.id))
            message = self.mailer.compose(
                to=recipient,
                subject=rendered.subject,
                text=rendered.text,
                html=rendered.html,
                headers={"X-Ecommerce-Notification-Id": str(notification.id)},
                message_key=str(notification.id),
            )
        except (TemplateError, LookupError, ValueError) as exc:
            log.error("notification %s cannot be rendered: %s", notification.id, exc)
            return _MailOutcome(
                False, permanent=True, error=f"cannot render: {exc}"[:500], recipient=recipient
            )
        try:
            async with self._smtp_connections:
                await self.mailer.send(message)
        except SendError as exc:
            return _MailOutcome(
                False, permanent=exc.permanent, error=str(exc), recipient=recipient, subject=rendered.subject
            )
        return _MailOutcome(True, recipient=recipient, subject=rendered.subject)

    async def _record_outcome(self, notification: Notification, outcome: _MailOutcome) -> None:
        values: dict[str, Any] = {}
        if outcome.recipient:
            values["recipient"] = outcome.recipient
        if outcome.subject:
            values["subject"] = outcome.subject
        failed = not outcome.sent and (outcome.permanent or self.backoff.exhausted(notification.attempts))
        if outcome.sent:
            values.update(status=SENT, sent_at=func.now(), last_error="")
        elif failed:
            values.update(status=FAILED, last_error=outcome.error)
        else:
            delay = timedelta(seconds=self.backoff.delay(notification.attempts))
            values.update(last_error=outcome.error, next_attempt_at=func.now() + delay)
        if (outcome.sent or failed) and notification.event_type in SECRET_EVENTS:
            values.update(variables={}, envelope=b"")
        async with transaction(self.sessions) as session:
            changed = await session.scalar(
                update(Notification)
                .where(Notification.id == notification.id, Notification.status == PENDING)
                .values(**values)
                .returning(Notification.id)
            )
            if changed is not None and failed:
                await self._dead_letter(session, notification, outcome.error)
        if outcome.sent:
            self.sent_total += 1
            NOTIFICATIONS_SENT.labels(channel="email").inc()
            log.info(
                "sent %s e-mail",
                notification.template,
                extra={"notification_id": str(notification.id), "attempt": notification.attempts},
            )
        elif failed:
            self.failed_total += 1
            NOTIFICATIONS_FAILED.labels(channel="email").inc()
            log.error(
                "notification %s FAILED after %d attempt(s): %s",
                notification.id,
                notification.attempts,
                outcome.error,
            )
        else:
            log.warning(
                "notification %s attempt %d failed, will retry: %s",
                notification.id,
                notification.attempts,
                outcome.error,
            )

    async def _dead_letter(self, session: AsyncSession, notification: Notification, reason: str) -> None:
        """The event goes to its topic's dead-letter topic, published by the outbox relay."""
        await session.execute(
            insert(self.outbox).values(
                event_id=f"dead-letter:{notification.id}",
                topic=dead_letter_topic(notification.source_topic),
                key=notification.event_id,
                event_type=notification.event_type,
                payload=notification.envelope,
                headers={
                    "event_type": notification.event_type,
                    "dlq-reason": reason[:1000],
                    "dlq-consumer": "notification-email",
                    "dlq-notification-id": str(notification.id),
                },
            )
        )
        await session.execute(select(func.pg_notify(NOTIFY_CHANNEL, "")))
        self.dead_lettered_total += 1
