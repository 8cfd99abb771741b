"""Notifications and webhooks: the caller's e-mail history; signed webhooks for the shop's systems."""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Annotated

import strawberry

from ecommerce.notification.v1 import notification_pb2
from gateway.context import Info
from gateway.read_models import to_datetime
from gateway.schema.common import After, Connection, First, connection_from, paged


@strawberry.enum(description="Where a notification stands.")
class NotificationStatus(Enum):
    PENDING = strawberry.enum_value("PENDING", description="Waiting for its first send or its next retry.")
    SENT = strawberry.enum_value("SENT", description="Accepted by the mail server.")
    FAILED = strawberry.enum_value("FAILED", description="Given up on after its retries.")


@strawberry.enum(description="How a notification reaches its recipient.")
class NotificationChannel(Enum):
    EMAIL = strawberry.enum_value("EMAIL", description="An e-mail with a text and an HTML part.")


@strawberry.enum(description="Where one webhook delivery stands.")
class WebhookDeliveryStatus(Enum):
    PENDING = strawberry.enum_value(
        "PENDING", description="Waiting for its first attempt or its next retry (after a 5xx or a timeout)."
    )
    DELIVERED = strawberry.enum_value("DELIVERED", description="The endpoint answered 2xx.")
    FAILED = strawberry.enum_value("FAILED", description="A 4xx (never retried), or past the retry budget.")
    CANCELLED = strawberry.enum_value("CANCELLED", description="The webhook was deleted before it succeeded.")


STATUS_FROM_PROTO = {
    notification_pb2.NOTIFICATION_STATUS_PENDING: NotificationStatus.PENDING,
    notification_pb2.NOTIFICATION_STATUS_SENT: NotificationStatus.SENT,
    notification_pb2.NOTIFICATION_STATUS_FAILED: NotificationStatus.FAILED,
}
DELIVERY_STATUS_FROM_PROTO = {
    notification_pb2.WEBHOOK_DELIVERY_STATUS_PENDING: WebhookDeliveryStatus.PENDING,
    notification_pb2.WEBHOOK_DELIVERY_STATUS_DELIVERED: WebhookDeliveryStatus.DELIVERED,
    notification_pb2.WEBHOOK_DELIVERY_STATUS_FAILED: WebhookDeliveryStatus.FAILED,
    notification_pb2.WEBHOOK_DELIVERY_STATUS_CANCELLED: WebhookDeliveryStatus.CANCELLED,
}


@strawberry.type(
    description="A message sent to an account about one event (an order confirmed, shipped ...)."
)
class Notification:
    id: strawberry.ID = strawberry.field(description="Notification id (UUID).")
    account_id: strawberry.ID = strawberry.field(description="The account it is addressed to.")
    channel: NotificationChannel = strawberry.field(description="How it is sent.")
    template: str = strawberry.field(description='Which message it is, e.g. "order_confirmed".')
    event_type: str = strawberry.field(description='The event that caused it, e.g. "order.confirmed".')
    event_id: str = strawberry.field(description="That event's id.")
    recipient: str = strawberry.field(
        description="The e-mail address it was sent to; empty before the first try."
    )
    subject: str = strawberry.field(description="The e-mail's subject; empty before the first try.")
    status: NotificationStatus = strawberry.field(description="Where it stands.")
    attempts: int = strawberry.field(description="Send attempts made so far.")
    last_error: str | None = strawberry.field(description="Why the last attempt failed; null once sent.")
    created_at: datetime = strawberry.field(description="When the event was received.")
    sent_at: datetime | None = strawberry.field(description="When the mail server accepted it.")

    @classmethod
    def from_proto(cls, message: notification_pb2.Notification) -> Notification:
        return cls(
            id=strawberry.ID(message.id),
            account_id=strawberry.ID(message.account_id),
            channel=NotificationChannel.EMAIL,
            template=message.template,
            event_type=message.event_type,
            event_id=message.event_id,
            recipient=message.recipient,
            subject=message.subject,
            status=STATUS_FROM_PROTO.get(message.status, NotificationStatus.PENDING),
            attempts=message.attempts,
            last_error=message.last_error or None,
            created_at=to_datetime(message.created_at),
            sent_at=to_datetime(message.sent_at) if message.HasField("sent_at") else None,
        )


@strawberry.type(
    description="An endpoint of the shop's other systems that receives events as signed JSON POSTs. "
    "Each carries `X-Ecommerce-Signature: t=<unix seconds>,v1=<hex>`, the HMAC-SHA256 of "
    '"<t>.<raw body>" with the webhook\'s secret: verify it and refuse old timestamps.'
)
class Webhook:
    id: strawberry.ID = strawberry.field(description="Webhook id (UUID).")
    url: str = strawberry.field(description="Where deliveries are POSTed.")
    events: list[str] = strawberry.field(description='Event types it receives, e.g. "order.confirmed".')
    description: str = strawberry.field(description="What it is for.")
    active: bool = strawberry.field(description="False once deleted.")
    created_at: datetime = strawberry.field(description="When it was created.")

    @classmethod
    def from_proto(cls, message: notification_pb2.Webhook) -> Webhook:
        return cls(
            id=strawberry.ID(message.id),
            url=message.url,
            events=list(message.events),
            description=message.description,
            active=message.active,
            created_at=to_datetime(message.created_at),
        )


@strawberry.type(
    description="One event sent to one webhook, with its attempts: an entry of the delivery log."
)
class WebhookDelivery:
    id: strawberry.ID = strawberry.field(description="Delivery id (UUID); sent as `X-Ecommerce-Delivery`.")
    webhook_id: strawberry.ID = strawberry.field(description="The webhook.")
    event_id: str = strawberry.field(description="The event delivered; sent as `X-Ecommerce-Event-Id`.")
    event_type: str = strawberry.field(description="Its type; sent as `X-Ecommerce-Event`.")
    status: WebhookDeliveryStatus = strawberry.field(description="Where it stands.")
    response_status: int | None = strawberry.field(
        description="HTTP status of the last attempt; null if none answered (timeout, refused)."
    )
    attempts: int = strawberry.field(description="Attempts made so far.")
    last_error: str | None = strawberry.field(description='Why the last attempt failed, e.g. "HTTP 500".')
    created_at: datetime = strawberry.field(description="When the event was received.")
    delivered_at: datetime | None = strawberry.field(description="When the endpoint answered 2xx.")
    next_attempt_at: datetime | None = strawberry.field(description="When the next retry is due, if PENDING.")

    @classmethod
    def from_proto(cls, message: notification_pb2.WebhookDelivery) -> WebhookDelivery:
        return cls(
            id=strawberry.ID(message.id),
            webhook_id=strawberry.ID(message.webhook_id),
            event_id=message.event_id,
            event_type=message.event_type,
            status=DELIVERY_STATUS_FROM_PROTO.get(message.status, WebhookDeliveryStatus.PENDING),
            response_status=message.response_status or None,
            attempts=message.attempts,
            last_error=message.last_error or None,
            created_at=to_datetime(message.created_at),
            delivered_at=to_datetime(message.delivered_at) if message.HasField("delivered_at") else None,
            next_attempt_at=(
                to_datetime(message.next_attempt_at) if message.HasField("next_attempt_at") else None
            ),
        )


@strawberry.type(description="A new webhook and its signing secret.")
class CreateWebhookPayload:
    webhook: Webhook = strawberry.field(description="The webhook.")
    secret: str = strawberry.field(
        description="The signing secret. Shown only here, never again: store it with the receiver."
    )


@strawberry.type
class NotificationQuery:
    @strawberry.field(description="The e-mails sent (or being sent) to the signed-in account, newest first.")
    async def my_notifications(
        self,
        info: Info,
        first: First = 20,
        after: After = None,
    ) -> Connection[Notification]:
        ctx = info.context
        ctx.require_caller()
        response = await ctx.call(
            ctx.services.notification.ListNotifications,
            paged(notification_pb2.ListNotificationsRequest(), first, after),
        )
        return connection_from(response, response.notifications, Notification.from_proto)

    @strawberry.field(description="The webhooks, newest first. ADMIN only.")
    async def webhooks(
        self,
        info: Info,
        include_deleted: Annotated[
            bool, strawberry.argument(description="Also list deleted webhooks (`active: false`).")
        ] = False,
    ) -> list[Webhook]:
        ctx = info.context
        ctx.require_admin()
        response = await ctx.call(
            ctx.services.notification.ListWebhooks,
            notification_pb2.ListWebhooksRequest(include_deleted=include_deleted),
        )
        return [Webhook.from_proto(w) for w in response.webhooks]

    @strawberry.field(
        description="A webhook's delivery log, newest first (deleted webhooks too). ADMIN only."
    )
    async def webhook_deliveries(
        self,
        info: Info,
        webhook_id: Annotated[strawberry.ID, strawberry.argument(description="The webhook.")],
        first: First = 20,
        after: After = None,
    ) -> Connection[WebhookDelivery]:
        ctx = info.context
        ctx.require_admin()
        response = await ctx.call(
            ctx.services.notification.ListWebhookDeliveries,
            paged(notification_pb2.ListWebhookDeliveriesRequest(webhook_id=str(webhook_id)), first, after),
        )
        return connection_from(response, response.deliveries, WebhookDelivery.from_proto)


@strawberry.type
class NotificationMutation:
    @strawberry.mutation(
        description="Register an endpoint for events; returns its signing secret, the only time it is "
        "shown. Deliveries are retried with exponential backoff on 5xx and timeouts, never on 4xx. "
        "BAD_USER_INPUT: a URL that is not http(s), is over 2,048 characters, or points inside the "
        "network (private, loopback, link-local; allowed in development); no events or an unknown "
        "event type; a description over 500 characters. ADMIN only."
    )
    async def create_webhook(
        self,
        info: Info,
        url: Annotated[str, strawberry.argument(description="An http(s) URL, at most 2,048 characters.")],
        events: Annotated[
            list[str],
            strawberry.argument(
                description="Event types to receive: account.registered, order.created, "
                "order.status_changed, order.confirmed, order.cancelled, order.shipped, "
                "order.delivered, payment.succeeded, payment.failed, payment.refunded, "
                "payment.voided, catalog.stock_low."
            ),
        ],
        description: Annotated[
            str, strawberry.argument(description="What it is for, at most 500 characters.")
        ] = "",
    ) -> CreateWebhookPayload:
        ctx = info.context
        ctx.require_admin()
        response = await ctx.call(
            ctx.services.notification.CreateWebhook,
            notification_pb2.CreateWebhookRequest(url=url, events=events, description=description),
        )
        return CreateWebhookPayload(webhook=Webhook.from_proto(response.webhook), secret=response.secret)

    @strawberry.mutation(
        description="Delete a webhook: nothing more is sent to it and its pending retries stop; its "
        "delivery log stays readable. Deleting it again changes nothing. ADMIN only."
    )
    async def delete_webhook(
        self, info: Info, id: Annotated[strawberry.ID, strawberry.argument(description="The webhook.")]
    ) -> Webhook:
        ctx = info.context
        ctx.require_admin()
        response = await ctx.call(
            ctx.services.notification.DeleteWebhook,
            notification_pb2.DeleteWebhookRequest(webhook_id=str(id)),
        )
        return Webhook.from_proto(response.webhook)
