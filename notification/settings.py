from __future__ import annotations

import math
from pathlib import Path

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from servicekit.settings import Port, ServiceSettings

# SMTP conversations at a time per process.
SMTP_CONNECTIONS = 4
# Rows per page of the notification and webhook delivery listings: unless asked, and at most.
DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100


class NotificationSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="NOTIFICATION_", extra="ignore")

    database_url: str = "postgresql+asyncpg://postgres@127.0.0.1:5432/notification"
    grpc_port: Port = 50055
    metrics_port: Port = 9106

    # -- e-mail out --------------------------------------------------------------------------
    smtp_host: str = Field("127.0.0.1", description="SMTP server; `ecommerce dev` starts a local one.")
    smtp_port: int = Field(25, ge=1, le=65535)
    smtp_starttls: bool = Field(False, description="Require STARTTLS before sending.")
    smtp_username: str | None = Field(None, description="SMTP AUTH user, if the server needs one.")
    smtp_password: SecretStr | None = None
    smtp_timeout: float = Field(10.0, gt=0, le=300, description="Seconds for one SMTP conversation.")
    smtp_from: str = Field(
        "Ecommerce Shop <shop@example.com>", description="The From header of every e-mail."
    )
    send_max_attempts: int = Field(
        6, ge=1, le=100, description="Send attempts of one e-mail before it is FAILED and dead-lettered."
    )
    send_backoff_initial: float = Field(2.0, gt=0, le=3600, description="Seconds before the first retry.")
    send_backoff_max: float = Field(600.0, gt=0, description="Longest pause between two retries.")

    # -- webhooks ----------------------------------------------------------------------------
    webhook_timeout: float = Field(5.0, gt=0, le=60, description="Seconds one delivery may take.")
    webhook_max_attempts: int = Field(
        8, ge=1, le=100, description="Attempts of one delivery (retried on 5xx and timeouts only)."
    )
    webhook_backoff_initial: float = Field(5.0, gt=0, le=3600, description="Seconds before the first retry.")
    webhook_backoff_max: float = Field(3600.0, gt=0, description="Longest pause between two retries.")
    allow_private_webhook_urls: bool | None = Field(
        None,
        description="Accept webhook URLs on private, loopback or link-local addresses; "
        "by default true in development and test, false in production.",
    )
    webhook_secret_key: SecretStr | None = Field(
        None, description="Fernet key (urlsafe base64, 32 bytes) that encrypts webhook secrets at rest."
    )
    webhook_secret_key_file: Path | None = Field(
        None, description="File holding that key; in development it is created when missing."
    )

    # -- the delivery loops ------------------------------------------------------------------
    delivery_poll_interval: float = Field(
        1.0, gt=0, le=60, description="How often the delivery loops look for due work when not woken."
    )
    delivery_batch: int = Field(20, ge=1, le=500, description="Messages claimed per round.")
    # Long enough for the slowest round of a batch (so a message is never sent twice because its
    # lease ran out while it was being sent), short enough that the messages a crashed process
    # had claimed go out again within a minute.
    delivery_lease: float = Field(
        60.0, gt=0, description="Seconds a claimed message stays invisible to other workers."
    )
    peer_timeout: float = Field(5.0, gt=0, le=60, description="Deadline of the account lookups.")

    @model_validator(mode="after")
    def _private_urls_by_environment(self) -> NotificationSettings:
        if self.allow_private_webhook_urls is None:
            self.allow_private_webhook_urls = not self.production
        return self

    @model_validator(mode="after")
    def _lease_outlasts_a_round(self) -> NotificationSettings:
        mail_round = self.peer_timeout + math.ceil(self.delivery_batch / SMTP_CONNECTIONS) * self.smtp_timeout
        longest = max(mail_round, self.webhook_timeout)
        if self.delivery_lease <= longest:
            raise ValueError(
                f"delivery_lease must be longer than a batch can take to send ({longest:g}s with "
                "these timeouts and delivery_batch)"
            )
        return self

    @property
    def private_webhook_urls_allowed(self) -> bool:
        return bool(self.allow_private_webhook_urls)
