"""Webhooks: an administrator subscribes a URL to event types, lists them, deletes them, and reads
each one's delivery log."""

from __future__ import annotations

import logging
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import InitVar, dataclass, field

from sqlalchemy import func, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from notification.models import CANCELLED, PENDING, Webhook, WebhookDelivery
from notification.settings import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE
from notification.subscribed import SubscribedEvents, announce
from notification.webhooks import SecretBox, UrlPolicy, UrlRefused
from servicekit import pages
from servicekit.auth import require_admin
from servicekit.context import Caller
from servicekit.cursor import CursorCodec
from servicekit.db import transaction
from servicekit.errors import InvalidArgument, NotFound, Violations
from servicekit.ids import parse_id
from servicekit.pages import Page
from servicekit.text import CONTROL_CHARACTERS, has_control_characters
from servicekit.topics import AccountEvent, CatalogEvent, OrderEvent, PaymentEvent

log = logging.getLogger(__name__)

# What a webhook may subscribe to: the facts a shop's other systems act on.
WEBHOOK_EVENTS: frozenset[str] = frozenset(
    {
        AccountEvent.REGISTERED,
        OrderEvent.CREATED,
        OrderEvent.STATUS_CHANGED,
        OrderEvent.CONFIRMED,
        OrderEvent.CANCELLED,
        OrderEvent.SHIPPED,
        OrderEvent.DELIVERED,
        PaymentEvent.SUCCEEDED,
        PaymentEvent.FAILED,
        PaymentEvent.REFUNDED,
        PaymentEvent.VOIDED,
        CatalogEvent.STOCK_LOW,
    }
)
MAX_DESCRIPTION_LENGTH = 500
SECRET_PREFIX = "whsec_"


@dataclass(frozen=True)
class CreatedWebhook:
    webhook: Webhook
    secret: str


@dataclass(kw_only=True, eq=False, slots=True)
class WebhookSubscriptions:
    """Webhooks and their deliveries, for administrators: a new webhook's URL must pass
    `url_policy`, and its signing secret is stored sealed by `secret_box`."""

    sessions: async_sessionmaker[AsyncSession]
    url_policy: UrlPolicy
    secret_box: SecretBox = field(repr=False)
    # This process forgets at once what it knew; the others when they hear `announce`.
    subscribed: SubscribedEvents | None = None
    cursor_secret: InitVar[str]
    delivery_cursors: CursorCodec = field(init=False, repr=False)

    def __post_init__(self, cursor_secret: str) -> None:
        self.delivery_cursors = CursorCodec(cursor_secret, purpose="webhook-deliveries")

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
        elif has_control_characters(description, forbidden={"Cc", "Cs"}, allowed="\n\t"):
            violations.add("description", CONTROL_CHARACTERS)
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
            await announce(session)
            await session.flush()
            await session.refresh(webhook)
        if self.subscribed is not None:
            self.subscribed.forget()
        log.info("webhook %s created for %s", webhook.id, ", ".join(webhook.events))
        return CreatedWebhook(webhook, secret)

    async def delete_webhook(self, caller: Caller | None, *, webhook_id: str) -> Webhook:
        require_admin(caller)
        wanted = parse_id(webhook_id, "webhook_id")
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
                await announce(session)
            await session.flush()
            await session.refresh(webhook)
        if self.subscribed is not None:
            self.subscribed.forget()
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
        wanted = parse_id(webhook_id, "webhook_id")
        size = pages.page_size(page_size, maximum=MAX_PAGE_SIZE, default=DEFAULT_PAGE_SIZE)
        scope = ("s", str(wanted))
        where = [WebhookDelivery.webhook_id == wanted]
        query = select(WebhookDelivery).where(*where)
        if page_token:
            after = pages.position_after(self.delivery_cursors, page_token, scope=scope)
            query = query.where(tuple_(WebhookDelivery.created_at, WebhookDelivery.id) < after)
        query = query.order_by(WebhookDelivery.created_at.desc(), WebhookDelivery.id.desc()).limit(size + 1)
        async with self.sessions() as session:
            if await session.get(Webhook, wanted) is None:
                raise NotFound("webhook not found")
            rows = list((await session.scalars(query)).all())
            total = await session.scalar(select(func.count()).select_from(WebhookDelivery).where(*where)) or 0
        return pages.page_of(
            rows, size, total, lambda d: pages.position_cursor(self.delivery_cursors, d, scope=scope)
        )
