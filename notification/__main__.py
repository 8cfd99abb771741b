"""`python -m notification`: the notification service, its event consumer and its delivery loops."""

from __future__ import annotations

import base64
import binascii
import os
from dataclasses import dataclass
from pathlib import Path

from notification import consumers, erasure, grpc_api
from notification.delivery import Backoff
from notification.mailer import Mailer, SmtpConfig
from notification.models import inbox, outbox
from notification.peers import AccountDirectory
from notification.service import NotificationService
from notification.settings import NotificationSettings
from notification.templates import TemplateRenderer
from notification.webhooks import SecretBox, UrlPolicy, WebhookSender
from servicekit.app import Background, ServiceApp, serve_service
from servicekit.runtime import ServiceRuntime


@dataclass(kw_only=True)
class NotificationApp(ServiceApp):
    service: NotificationService


def webhook_secret_key(settings: NotificationSettings) -> bytes:
    """The key that encrypts webhook secrets at rest; made once per data directory in development.
    In production it must be given, and be a Fernet key of 32 bytes that are not a placeholder."""
    path = settings.webhook_secret_key_file
    if settings.webhook_secret_key is not None:
        key = settings.webhook_secret_key.get_secret_value().encode()
    elif settings.production:
        if path is None or not path.exists():
            raise SystemExit(
                "NOTIFICATION_WEBHOOK_SECRET_KEY or NOTIFICATION_WEBHOOK_SECRET_KEY_FILE is required in production"
            )
        key = path.read_bytes().strip()
    else:
        return _load_or_create_key(path or settings.data_dir / "keys" / "webhook-secrets.key")
    if settings.production:
        problem = fernet_key_problem(key)
        if problem is not None:
            raise SystemExit(f"the webhook secret key {problem}")
    return key


def fernet_key_problem(key: bytes) -> str | None:
    """Why `key` is no production Fernet key (not 32 bytes of URL-safe base64, or too uniform), or None."""
    try:
        raw = base64.urlsafe_b64decode(key)
    except (ValueError, binascii.Error):
        raw = b""
    if len(raw) != 32 or len(key) != 44:
        return "must be 32 random bytes in URL-safe base64 (44 characters)"
    if len(set(raw)) < 8:
        return "does not look random"
    return None


def _load_or_create_key(path: Path) -> bytes:
    if path.exists():
        return path.read_bytes().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    key = SecretBox.new_key()
    # Created with its final permissions; if another process won the race, its key is used.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_bytes().strip()
    with os.fdopen(fd, "wb") as handle:
        handle.write(key)
    return key


def build(settings: NotificationSettings) -> NotificationApp:
    runtime = ServiceRuntime(settings, "notification", outbox_table=outbox, inbox_table=inbox)
    policy = UrlPolicy(allow_private=settings.private_webhook_urls_allowed)
    service = NotificationService(
        sessions=runtime.sessions,
        outbox=outbox,
        renderer=TemplateRenderer(shop_url=settings.shop_url),
        mailer=Mailer(
            SmtpConfig(
                host=settings.smtp_host,
                port=settings.smtp_port,
                starttls=settings.smtp_starttls,
                username=settings.smtp_username,
                password=settings.smtp_password.get_secret_value() if settings.smtp_password else None,
                timeout=settings.smtp_timeout,
                sender=settings.smtp_from,
            )
        ),
        directory=AccountDirectory(
            runtime.channel(settings.account_addr),
            service_token=settings.internal_service_token,
            timeout=settings.peer_timeout,
        ),
        url_policy=policy,
        webhook_sender=WebhookSender(policy, timeout=settings.webhook_timeout),
        secret_box=SecretBox(webhook_secret_key(settings)),
        mail_backoff=Backoff(
            settings.send_backoff_initial, settings.send_backoff_max, settings.send_max_attempts
        ),
        webhook_backoff=Backoff(
            settings.webhook_backoff_initial, settings.webhook_backoff_max, settings.webhook_max_attempts
        ),
        batch_size=settings.delivery_batch,
        lease_seconds=settings.delivery_lease,
        cursor_secret=settings.cursor_secret,
    )
    poll = settings.delivery_poll_interval
    return NotificationApp(
        runtime=runtime,
        registration=grpc_api.registration(grpc_api.NotificationServicer(service)),
        service_name=grpc_api.SERVICE_NAME,
        authenticator=runtime.authenticator(),
        consumers=[
            runtime.consumer(
                consumers.CONSUMER, consumers.TOPICS, {**consumers.handlers(service), **erasure.handlers()}
            )
        ],
        background=[
            Background("mail-delivery", lambda: service.run_mail_loop(poll)),
            Background("webhook-delivery", lambda: service.run_webhook_loop(poll)),
            # Keeps the set of subscribed event types current in this process (subscribed.py).
            Background("webhook-subscriptions", lambda: service.subscribed.run(settings.database_url)),
        ],
        on_close=[service.webhook_sender.close],
        service=service,
    )


async def main(settings: NotificationSettings | None = None) -> None:
    settings = settings or NotificationSettings()
    if not settings.internal_service_token:
        raise SystemExit("INTERNAL_SERVICE_TOKEN is required: recipients are looked up as this service")
    await serve_service("notification", settings, build)


if __name__ == "__main__":
    from servicekit.runtime import run

    run(main())
