"""The notification service, assembled from its rooms.

Work is recorded by the event consumer (`recording`, called from `consumers`) and carried out by
two delivery loops, one for e-mail (`mail_loop`) and one for webhooks (`webhook_loop`). The API
reads the e-mail history (`history`) and manages webhooks (`subscriptions`). This class only
builds those parts from one set of collaborators and keeps the few settings tests and operators
change at run time in one place.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from notification import recording
from notification.delivery import Backoff
from notification.history import NotificationHistory
from notification.mail_loop import MailLoop
from notification.mailer import Mailer
from notification.peers import AccountDirectory
from notification.subscribed import SubscribedEvents
from notification.subscriptions import WebhookSubscriptions
from notification.templates import TemplateRenderer
from notification.webhook_loop import WebhookLoop
from notification.webhooks import SecretBox, UrlPolicy, WebhookSender


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
        lease = timedelta(seconds=lease_seconds)
        # Also read by the consumer, which lists the administrators an alert goes to.
        self.directory = directory
        self.mail = MailLoop(
            sessions=sessions,
            outbox=outbox,
            renderer=renderer,
            mailer=mailer,
            directory=directory,
            backoff=mail_backoff,
            batch_size=batch_size,
            lease=lease,
        )
        self.webhooks = WebhookLoop(
            sessions=sessions,
            sender=webhook_sender,
            secret_box=secret_box,
            backoff=webhook_backoff,
            batch_size=batch_size,
            lease=lease,
        )
        # Read by the consumer: an event no webhook subscribes to records no delivery.
        self.subscribed = SubscribedEvents(sessions)
        self.history = NotificationHistory(sessions=sessions, cursor_secret=cursor_secret)
        self.subscriptions = WebhookSubscriptions(
            sessions=sessions,
            url_policy=url_policy,
            secret_box=secret_box,
            subscribed=self.subscribed,
            cursor_secret=cursor_secret,
        )

    record_notification = staticmethod(recording.record_notification)
    record_webhook_deliveries = staticmethod(recording.record_webhook_deliveries)

    def wake(self, *, mail: bool = False, webhooks: bool = False) -> None:
        """Newly recorded work: the named loops look for due rows now rather than at their next poll."""
        if mail:
            self.mail.wake()
        if webhooks:
            self.webhooks.wake()

    async def run_mail_loop(self, poll_interval: float) -> None:
        await self.mail.run(poll_interval)

    async def run_webhook_loop(self, poll_interval: float) -> None:
        await self.webhooks.run(poll_interval)

    @property
    def mail_backoff(self) -> Backoff:
        return self.mail.backoff

    @mail_backoff.setter
    def mail_backoff(self, backoff: Backoff) -> None:
        self.mail.backoff = backoff

    @property
    def webhook_backoff(self) -> Backoff:
        return self.webhooks.backoff

    @webhook_backoff.setter
    def webhook_backoff(self, backoff: Backoff) -> None:
        self.webhooks.backoff = backoff

    @property
    def url_policy(self) -> UrlPolicy:
        """The policy new webhook URLs are checked against (each delivery checks its sender's)."""
        return self.subscriptions.url_policy

    @url_policy.setter
    def url_policy(self, policy: UrlPolicy) -> None:
        self.subscriptions.url_policy = policy

    @property
    def webhook_sender(self) -> WebhookSender:
        return self.webhooks.sender
