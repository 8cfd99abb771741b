"""The webhook delivery loop: post the due deliveries, signed, and record each outcome.

A delivery is attempted outside any transaction, then marked DELIVERED, due again after an
exponential backoff, or FAILED past the budget; one whose webhook was deleted is CANCELLED.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select, update

from notification.delivery import DeliveryLoop, claim
from notification.models import CANCELLED, DELIVERED, FAILED, PENDING, Webhook, WebhookDelivery
from notification.webhooks import SecretBox, WebhookSender
from servicekit.db import transaction
from servicekit.metrics import NOTIFICATIONS_FAILED, NOTIFICATIONS_SENT

log = logging.getLogger(__name__)


@dataclass(kw_only=True, eq=False)
class WebhookLoop(DeliveryLoop):
    sender: WebhookSender
    secret_box: SecretBox = field(repr=False)
    # What operators (and metrics) read.
    delivered_total: int = field(default=0, init=False)
    failed_total: int = field(default=0, init=False)

    async def deliver(self) -> int:
        """Attempt the webhook deliveries that are due; returns how many were attempted."""
        claimed = await claim(self.sessions, WebhookDelivery, batch_size=self.batch_size, lease=self.lease)
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

    async def _deliver(self, delivery: WebhookDelivery, webhook: Webhook | None) -> None:
        if webhook is None or webhook.deleted_at is not None:
            await self._record(delivery, status=CANCELLED, error="webhook deleted")
            return
        try:
            secret = self.secret_box.open(webhook.secret_ciphertext)
        except ValueError as exc:
            log.error("webhook %s: %s", webhook.id, exc)
            await self._record(delivery, status=FAILED, error=str(exc))
            return
        try:
            attempt = await self.sender.deliver(
                url=webhook.url,
                secret=secret,
                body=delivery.body,
                event_id=delivery.event_id,
                event_type=delivery.event_type,
                delivery_id=str(delivery.id),
            )
        except Exception:  # one delivery's surprise must not stop the others
            log.exception("webhook delivery %s: unexpected error", delivery.id)
            await self._record(delivery, status=PENDING, error="internal error", retry=True)
            return
        if attempt.delivered:
            self.delivered_total += 1
            NOTIFICATIONS_SENT.labels(channel="webhook").inc()
            await self._record(delivery, status=DELIVERED, response_status=attempt.response_status)
        elif attempt.retryable and not self.backoff.exhausted(delivery.attempts):
            await self._record(
                delivery,
                status=PENDING,
                response_status=attempt.response_status,
                error=attempt.error,
                retry=True,
            )
        else:
            self.failed_total += 1
            NOTIFICATIONS_FAILED.labels(channel="webhook").inc()
            log.warning(
                "webhook delivery %s FAILED after %d attempt(s): %s",
                delivery.id,
                delivery.attempts,
                attempt.error,
            )
            await self._record(
                delivery, status=FAILED, response_status=attempt.response_status, error=attempt.error
            )

    async def _record(
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
            delay = timedelta(seconds=self.backoff.delay(delivery.attempts))
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
