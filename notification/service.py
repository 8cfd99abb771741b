"""Notification use cases: recording what events call for, delivering it, and showing the history.

Work is recorded by the event consumer (see events.py) and carried out by two delivery loops,
one for e-mail and one for webhooks. A loop claims due rows with `FOR UPDATE SKIP LOCKED` and a
lease (so several processes share the work and a crashed one's rows come back), does the slow
part outside any transaction, and records the outcome: done, due again after an exponential
backoff, or FAILED past the budget. An e-mail that fails for good sends its event to the
dead-letter topic through the outbox, in the transaction that marks it FAILED.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import secrets
import unicodedata
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar

from jinja2 import TemplateError
from sqlalchemy import Table, func, insert, literal, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from notification.mailer import Mailer, SendError
from notification.models import (
    CANCELLED,
    DELIVERED,
    EMAIL,
    FAILED,
    PENDING,
    SENT,
    Notification,
    Webhook,
    WebhookDelivery,
)
from notification.peers import AccountDirectory, Recipient
from notification.settings import SMTP_CONNECTIONS
from notification.templates import TemplateRenderer
from notification.webhooks import SecretBox, UrlPolicy, UrlRefused, WebhookSender
from servicekit.auth import require_admin, require_caller
from servicekit.context import ROLES, Caller
from servicekit.cursor import CursorCodec
from servicekit.db import transaction
from servicekit.errors import InvalidArgument, NotFound, PermissionDenied, Unavailable, Violations
from servicekit.kafka import dead_letter_topic
from servicekit.metrics import NOTIFICATIONS_FAILED, NOTIFICATIONS_SENT
from servicekit.outbox import NOTIFY_CHANNEL

log = logging.getLogger(__name__)

T = TypeVar("T")

# What a webhook may subscribe to: the facts a shop's other systems act on.
WEBHOOK_EVENTS = frozenset(
    {
        "account.registered",
        "order.created",
        "order.status_changed",
        "order.confirmed",
        "order.cancelled",
        "order.shipped",
        "order.delivered",
        "payment.succeeded",
        "payment.failed",
        "payment.refunded",
        "payment.voided",
        "catalog.stock_low",
    }
)
# Events that carry the address and name themselves; every other e-mail asks the account service
# at each attempt, so that it goes to the address the account has now.
ADDRESSED_BY_EVENT = frozenset({"account.registered"})
MAX_DESCRIPTION_LENGTH = 500
DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100
SECRET_PREFIX = "whsec_"


@dataclass(frozen=True)
class NewNotification:
    """An e-mail an event calls for, before it is sent."""

    account_id: uuid.UUID
    event_id: str
    event_type: str
    template: str
    variables: dict[str, Any]
    # Known from the event itself (account.registered); otherwise looked up when sending.
    recipient: str
    source_topic: str
    envelope: bytes


@dataclass(frozen=True)
class Backoff:
    """Exponential: `initial`, twice that, four times ... up to `maximum`, with 10% jitter."""

    initial: float
    maximum: float
    max_attempts: int

    def delay(self, attempts: int) -> float:
        base = min(self.maximum, self.initial * 2 ** max(0, attempts - 1))
        return base * random.uniform(0.9, 1.1)

    def exhausted(self, attempts: int) -> bool:
        return attempts >= self.max_attempts


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    cursors: list[str]
    has_next_page: bool
    total_count: int


@dataclass(frozen=True)
class CreatedWebhook:
    webhook: Webhook
    secret: str


@dataclass(frozen=True)
class _MailOutcome:
    sent: bool
    permanent: bool = False
    error: str = ""
    recipient: str = ""
    subject: str = ""


class NotificationService:
    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        outbox: Table,
        renderer: TemplateRenderer,
        mailer: Mailer,
        directory: AccountDirectory,
        url_policy: UrlPolicy,
        webhook_sender: WebhookSender,
        secret_box: SecretBox,
        mail_backoff: Backoff,
        webhook_backoff: Backoff,
        batch_size: int,
        lease_seconds: float,
        cursor_secret: str,
    ) -> None:
        self.sessions = sessions
        self.outbox = outbox
        self.renderer = renderer
        self.mailer = mailer
        self.directory = directory
        self.url_policy = url_policy
        self.webhook_sender = webhook_sender
        self.secret_box = secret_box
        self.mail_backoff = mail_backoff
        self.webhook_backoff = webhook_backoff
        self.batch_size = batch_size
        self.lease = timedelta(seconds=lease_seconds)
        self.notification_cursors = CursorCodec(cursor_secret, purpose="notifications")
        self.delivery_cursors = CursorCodec(cursor_secret, purpose="webhook-deliveries")
        # Mail servers limit connections per client; webhook endpoints are many and independent.
        self._smtp_connections = asyncio.Semaphore(SMTP_CONNECTIONS)
        self._mail_wakeup = asyncio.Event()
        self._webhook_wakeup = asyncio.Event()
        # What operators (and metrics) read.
        self.sent_total = 0
        self.failed_total = 0
        self.dead_lettered_total = 0
        self.webhook_delivered_total = 0
        self.webhook_failed_total = 0

    # -- recording (called by the consumer, inside the inbox transaction) -----------------------

    async def record_notification(self, session: AsyncSession, new: NewNotification) -> bool:
        """Stage the e-mail; False when this event already has one for this account."""
        inserted = await session.scalar(
            pg_insert(Notification)
            .values(
                id=uuid.uuid4(),
                account_id=new.account_id,
                event_id=new.event_id,
                event_type=new.event_type,
                channel=EMAIL,
                template=new.template,
                recipient=new.recipient,
                status=PENDING,
                variables=new.variables,
                source_topic=new.source_topic,
                envelope=new.envelope,
            )
            .on_conflict_do_nothing(index_elements=["event_id", "channel", "account_id"])
            .returning(Notification.id)
        )
        return inserted is not None

    async def record_webhook_deliveries(
        self, session: AsyncSession, *, event_id: str, event_type: str, body: bytes
    ) -> int:
        """One PENDING delivery per active webhook subscribed to the event type; returns how many."""
        subscribed = select(
            func.gen_random_uuid(),
            Webhook.id,
            literal(event_id),
            literal(event_type),
            literal(body),
            literal(PENDING),
        ).where(Webhook.deleted_at.is_(None), Webhook.events.any_() == event_type)
        result = await session.execute(
            pg_insert(WebhookDelivery)
            .from_select(["id", "webhook_id", "event_id", "event_type", "body", "status"], subscribed)
            .on_conflict_do_nothing(index_elements=["webhook_id", "event_id"])
            .returning(WebhookDelivery.id)
        )
        return len(result.all())

    def wake(self, *, mail: bool = False, webhooks: bool = False) -> None:
        if mail:
            self._mail_wakeup.set()
        if webhooks:
            self._webhook_wakeup.set()

    # -- the delivery loops ----------------------------------------------------------------------

    async def run_mail_loop(self, poll_interval: float) -> None:
        while True:
            if await self.deliver_mail() < self.batch_size:
                await _wait(self._mail_wakeup, poll_interval)

    async def run_webhook_loop(self, poll_interval: float) -> None:
        while True:
            if await self.deliver_webhooks() < self.batch_size:
                await _wait(self._webhook_wakeup, poll_interval)

    async def deliver_mail(self) -> int:
        """Send the e-mails that are due; returns how many were attempted."""
        claimed = await self._claim(Notification)
        if not claimed:
            return 0
        lookups = [str(n.account_id) for n in claimed if n.event_type not in ADDRESSED_BY_EVENT]
        recipients: dict[str, Recipient] | None = {}
        if lookups:
            try:
                recipients = await self.directory.recipients(lookups)
            except Unavailable as exc:
                log.warning("cannot look up recipients now: %s", exc.message)
                recipients = None
        await asyncio.gather(*(self._send(n, recipients) for n in claimed))
        return len(claimed)

    async def deliver_webhooks(self) -> int:
        """Attempt the webhook deliveries that are due; returns how many were attempted."""
        claimed = await self._claim(WebhookDelivery)
        if not claimed:
            return 0
        async with self.sessions() as session:
            hooks = {
                w.id: w
                for w in await session.scalars(
                    select(Webhook).where(Webhook.id.in_({d.webhook_id for d in claimed}))
                )
            }
        await asyncio.gather(*(self._deliver(d, hooks.get(d.webhook_id)) for d in claimed))
        return len(claimed)

    async def _claim(self, entity: type[Notification] | type[WebhookDelivery]) -> Sequence[Any]:
        """Take up to a batch of due rows: counted as an attempt, hidden from others for a lease."""
        due = (
            select(entity.id)
            .where(entity.status == PENDING, entity.next_attempt_at <= func.now())
            .order_by(entity.next_attempt_at)
            .limit(self.batch_size)
            .with_for_update(skip_locked=True)
            .scalar_subquery()
        )
        async with transaction(self.sessions) as session:
            rows = await session.scalars(
                update(entity)
                .where(entity.id.in_(due))
                .values(attempts=entity.attempts + 1, next_attempt_at=func.now() + self.lease)
                .returning(entity)
                .execution_options(synchronize_session=False)
            )
            return list(rows.all())

    async def _send(self, notification: Notification, recipients: dict[str, Recipient] | None) -> None:
        try:
            outcome = await self._send_once(notification, recipients)
        except Exception as exc:  # one message's surprise must not stop the others
            log.exception("notification %s: unexpected error while sending", notification.id)
            outcome = _MailOutcome(False, error=f"{type(exc).__name__}: internal error")
        await self._record_mail_outcome(notification, outcome)

    async def _send_once(
        self, notification: Notification, recipients: dict[str, Recipient] | None
    ) -> _MailOutcome:
        variables = dict(notification.variables or {})
        recipient = notification.recipient
        if notification.event_type not in ADDRESSED_BY_EVENT:
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

    async def _record_mail_outcome(self, notification: Notification, outcome: _MailOutcome) -> None:
        values: dict[str, Any] = {}
        if outcome.recipient:
            values["recipient"] = outcome.recipient
        if outcome.subject:
            values["subject"] = outcome.subject
        failed = not outcome.sent and (
            outcome.permanent or self.mail_backoff.exhausted(notification.attempts)
        )
        if outcome.sent:
            values.update(status=SENT, sent_at=func.now(), last_error="")
        elif failed:
            values.update(status=FAILED, last_error=outcome.error)
        else:
            delay = timedelta(seconds=self.mail_backoff.delay(notification.attempts))
            values.update(last_error=outcome.error, next_attempt_at=func.now() + delay)
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

    async def _deliver(self, delivery: WebhookDelivery, webhook: Webhook | None) -> None:
        if webhook is None or webhook.deleted_at is not None:
            await self._record_delivery(delivery, status=CANCELLED, error="webhook deleted")
            return
        try:
            secret = self.secret_box.open(webhook.secret_ciphertext)
        except ValueError as exc:
            log.error("webhook %s: %s", webhook.id, exc)
            await self._record_delivery(delivery, status=FAILED, error=str(exc))
            return
        try:
            attempt = await self.webhook_sender.deliver(
                url=webhook.url,
                secret=secret,
                body=delivery.body,
                event_id=delivery.event_id,
                event_type=delivery.event_type,
                delivery_id=str(delivery.id),
            )
        except Exception:  # one delivery's surprise must not stop the others
            log.exception("webhook delivery %s: unexpected error", delivery.id)
            await self._record_delivery(delivery, status=PENDING, error="internal error", retry=True)
            return
        if attempt.delivered:
            self.webhook_delivered_total += 1
            NOTIFICATIONS_SENT.labels(channel="webhook").inc()
            await self._record_delivery(delivery, status=DELIVERED, response_status=attempt.response_status)
        elif attempt.retryable and not self.webhook_backoff.exhausted(delivery.attempts):
            await self._record_delivery(
                delivery,
                status=PENDING,
                response_status=attempt.response_status,
                error=attempt.error,
                retry=True,
            )
        else:
            self.webhook_failed_total += 1
            NOTIFICATIONS_FAILED.labels(channel="webhook").inc()
            log.warning(
                "webhook delivery %s FAILED after %d attempt(s): %s",
                delivery.id,
                delivery.attempts,
                attempt.error,
            )
            await self._record_delivery(
                delivery, status=FAILED, response_status=attempt.response_status, error=attempt.error
            )

    async def _record_delivery(
        self,
        delivery: WebhookDelivery,
        *,
        status: str,
        response_status: int = 0,
        error: str = "",
        retry: bool = False,
    ) -> None:
        values: dict[str, Any] = {"status": status, "response_status": response_status, "last_error": error}
        if status == DELIVERED:
            values.update(delivered_at=func.now(), next_attempt_at=None)
        elif retry:
            delay = timedelta(seconds=self.webhook_backoff.delay(delivery.attempts))
            values["next_attempt_at"] = func.now() + delay
        else:
            values["next_attempt_at"] = None
        async with transaction(self.sessions) as session:
            # A delete that cancelled the delivery meanwhile wins over a retry.
            await session.execute(
                update(WebhookDelivery)
                .where(WebhookDelivery.id == delivery.id, WebhookDelivery.status == PENDING)
                .values(**values)
            )

    # -- notifications: reading --------------------------------------------------------------------

    async def list_notifications(
        self, caller: Caller | None, *, account_id: str, page_size: int, page_token: str
    ) -> Page[Notification]:
        caller = _person(caller)
        target = _parse_id(account_id, "account_id") if account_id else uuid.UUID(caller.account_id)
        if str(target) != caller.account_id and not caller.is_admin:
            raise PermissionDenied("only administrators may read another account's notifications")
        size = _page_size(page_size)
        where = [Notification.account_id == target]
        query = select(Notification).where(*where)
        if page_token:
            position = self.notification_cursors.decode(page_token, field="page_token")
            query = query.where(
                tuple_(Notification.created_at, Notification.id) < _keyset(position, str(target))
            )
        query = query.order_by(Notification.created_at.desc(), Notification.id.desc()).limit(size + 1)
        async with self.sessions() as session:
            rows = list((await session.scalars(query)).all())
            total = await session.scalar(select(func.count()).select_from(Notification).where(*where)) or 0
        return _page(rows, size, total, self.notification_cursors, str(target))

    async def get_notification(self, caller: Caller | None, *, notification_id: str) -> Notification:
        caller = _person(caller)
        wanted = _parse_id(notification_id, "notification_id")
        async with self.sessions() as session:
            notification = await session.get(Notification, wanted)
        if notification is None or (
            str(notification.account_id) != caller.account_id and not caller.is_admin
        ):
            raise NotFound("notification not found")
        return notification

    # -- webhooks ----------------------------------------------------------------------------------

    async def create_webhook(
        self, caller: Caller | None, *, url: str, events: Sequence[str], description: str
    ) -> CreatedWebhook:
        caller = require_admin(caller)
        violations = Violations()
        url = url.strip()
        if not url:
            violations.add("url", "is required")
        else:
            try:
                self.url_policy.parse(url)
            except UrlRefused as refused:
                violations.add("url", str(refused))
        if not events:
            violations.add("events", "must name at least one event type")
        for index, event in enumerate(events):
            if event not in WEBHOOK_EVENTS:
                violations.add(
                    f"events[{index}]",
                    f"{event[:64]!r} is not an event type; one of: {', '.join(sorted(WEBHOOK_EVENTS))}",
                )
        description = description.strip()
        if len(description) > MAX_DESCRIPTION_LENGTH:
            violations.add("description", f"must be at most {MAX_DESCRIPTION_LENGTH} characters")
        elif any(unicodedata.category(ch) in ("Cc", "Cs") and ch not in "\n\t" for ch in description):
            violations.add("description", "must not contain control characters")
        violations.raise_if_any()
        try:
            url = await self.url_policy.check(url)
        except UrlRefused as refused:
            raise InvalidArgument.field("url", str(refused)) from None
        secret = SECRET_PREFIX + secrets.token_urlsafe(32)
        webhook = Webhook(
            id=uuid.uuid4(),
            url=url,
            events=list(dict.fromkeys(events)),
            description=description,
            secret_ciphertext=self.secret_box.seal(secret),
            created_by=caller.account_id,
        )
        async with transaction(self.sessions) as session:
            session.add(webhook)
            await session.flush()
            await session.refresh(webhook)
        log.info("webhook %s created for %s", webhook.id, ", ".join(webhook.events))
        return CreatedWebhook(webhook, secret)

    async def delete_webhook(self, caller: Caller | None, *, webhook_id: str) -> Webhook:
        require_admin(caller)
        wanted = _parse_id(webhook_id, "webhook_id")
        async with transaction(self.sessions) as session:
            webhook = await session.get(Webhook, wanted, with_for_update=True)
            if webhook is None:
                raise NotFound("webhook not found")
            if webhook.deleted_at is None:
                webhook.deleted_at = func.now()
                # Nothing more goes out: pending retries stop here.
                await session.execute(
                    update(WebhookDelivery)
                    .where(WebhookDelivery.webhook_id == wanted, WebhookDelivery.status == PENDING)
                    .values(status=CANCELLED, next_attempt_at=None, last_error="webhook deleted")
                )
            await session.flush()
            await session.refresh(webhook)
        return webhook

    async def list_webhooks(self, caller: Caller | None, *, include_deleted: bool) -> list[Webhook]:
        require_admin(caller)
        query = select(Webhook).order_by(Webhook.created_at.desc(), Webhook.id.desc())
        if not include_deleted:
            query = query.where(Webhook.deleted_at.is_(None))
        async with self.sessions() as session:
            return list((await session.scalars(query)).all())

    async def list_webhook_deliveries(
        self, caller: Caller | None, *, webhook_id: str, page_size: int, page_token: str
    ) -> Page[WebhookDelivery]:
        require_admin(caller)
        wanted = _parse_id(webhook_id, "webhook_id")
        size = _page_size(page_size)
        where = [WebhookDelivery.webhook_id == wanted]
        query = select(WebhookDelivery).where(*where)
        if page_token:
            position = self.delivery_cursors.decode(page_token, field="page_token")
            query = query.where(
                tuple_(WebhookDelivery.created_at, WebhookDelivery.id) < _keyset(position, str(wanted))
            )
        query = query.order_by(WebhookDelivery.created_at.desc(), WebhookDelivery.id.desc()).limit(size + 1)
        async with self.sessions() as session:
            if await session.get(Webhook, wanted) is None:
                raise NotFound("webhook not found")
            rows = list((await session.scalars(query)).all())
            total = await session.scalar(select(func.count()).select_from(WebhookDelivery).where(*where)) or 0
        return _page(rows, size, total, self.delivery_cursors, str(wanted))


# -- helpers ---------------------------------------------------------------------------------------


async def _wait(event: asyncio.Event, timeout: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(event.wait(), timeout)
    event.clear()


def _person(caller: Caller | None) -> Caller:
    """A signed-in account (a peer service has no notifications of its own)."""
    caller = require_caller(caller)
    if caller.role not in ROLES:
        raise PermissionDenied("this operation is for signed-in accounts")
    return caller


def _parse_id(value: str, field: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except (ValueError, AttributeError, TypeError):
        raise InvalidArgument.field(field, "is not a valid id") from None


def _page_size(requested: int) -> int:
    if requested == 0:
        return DEFAULT_PAGE_SIZE
    if not 1 <= requested <= MAX_PAGE_SIZE:
        raise InvalidArgument.field("page_size", f"must be between 1 and {MAX_PAGE_SIZE}")
    return requested


def _keyset(position: dict[str, Any], scope: str) -> tuple[datetime, uuid.UUID]:
    """The (created_at, id) a cursor resumes after; it must belong to the same listing."""
    try:
        if position["s"] != scope:
            raise ValueError("cursor of another listing")
        return datetime.fromisoformat(position["c"]), uuid.UUID(position["i"])
    except (KeyError, TypeError, ValueError):
        raise InvalidArgument.field("page_token", "is not a valid cursor") from None


def _page(rows: list[Any], size: int, total: int, codec: CursorCodec, scope: str) -> Page[Any]:
    has_next_page = len(rows) > size
    rows = rows[:size]
    cursors = [codec.encode({"s": scope, "c": r.created_at.isoformat(), "i": str(r.id)}) for r in rows]
    return Page(rows, cursors, has_next_page, total)
