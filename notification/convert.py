"""Conversions from the notification service's rows to its protobuf messages."""

from __future__ import annotations

from ecommerce.notification.v1 import notification_pb2
from notification import models
from servicekit.timestamps import to_optional_timestamp

STATUS_TO_PROTO = {
    models.PENDING: notification_pb2.NOTIFICATION_STATUS_PENDING,
    models.SENT: notification_pb2.NOTIFICATION_STATUS_SENT,
    models.FAILED: notification_pb2.NOTIFICATION_STATUS_FAILED,
}
CHANNEL_TO_PROTO = {models.EMAIL: notification_pb2.NOTIFICATION_CHANNEL_EMAIL}
DELIVERY_STATUS_TO_PROTO = {
    models.PENDING: notification_pb2.WEBHOOK_DELIVERY_STATUS_PENDING,
    models.DELIVERED: notification_pb2.WEBHOOK_DELIVERY_STATUS_DELIVERED,
    models.FAILED: notification_pb2.WEBHOOK_DELIVERY_STATUS_FAILED,
    models.CANCELLED: notification_pb2.WEBHOOK_DELIVERY_STATUS_CANCELLED,
}


def notification_to_proto(n: models.Notification) -> notification_pb2.Notification:
    return notification_pb2.Notification(
        id=str(n.id),
        account_id=str(n.account_id),
        channel=CHANNEL_TO_PROTO[n.channel],
        template=n.template,
        event_type=n.event_type,
        event_id=n.event_id,
        recipient=n.recipient,
        subject=n.subject,
        status=STATUS_TO_PROTO[n.status],
        attempts=n.attempts,
        last_error=n.last_error,
        created_at=to_optional_timestamp(n.created_at),
        sent_at=to_optional_timestamp(n.sent_at),
    )


def webhook_to_proto(w: models.Webhook) -> notification_pb2.Webhook:
    return notification_pb2.Webhook(
        id=str(w.id),
        url=w.url,
        events=list(w.events),
        description=w.description,
        active=w.active,
        created_at=to_optional_timestamp(w.created_at),
    )


def delivery_to_proto(d: models.WebhookDelivery) -> notification_pb2.WebhookDelivery:
    return notification_pb2.WebhookDelivery(
        id=str(d.id),
        webhook_id=str(d.webhook_id),
        event_id=d.event_id,
        event_type=d.event_type,
        status=DELIVERY_STATUS_TO_PROTO[d.status],
        response_status=d.response_status,
        attempts=d.attempts,
        last_error=d.last_error,
        created_at=to_optional_timestamp(d.created_at),
        delivered_at=to_optional_timestamp(d.delivered_at),
        next_attempt_at=to_optional_timestamp(d.next_attempt_at if d.status == models.PENDING else None),
    )
