"""NotificationService servicer: proto in, use case, proto out. Errors are mapped by the interceptor."""

from __future__ import annotations

from datetime import datetime

from google.protobuf import timestamp_pb2

from ecommerce.notification.v1 import notification_pb2, notification_pb2_grpc
from notification import models
from notification.service import NotificationService
from servicekit.context import current_caller

SERVICE_NAME = notification_pb2.DESCRIPTOR.services_by_name["NotificationService"].full_name

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


def _timestamp(value: datetime | None) -> timestamp_pb2.Timestamp | None:
    if value is None:
        return None
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(value)
    return stamp


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
        created_at=_timestamp(n.created_at),
        sent_at=_timestamp(n.sent_at),
    )


def webhook_to_proto(w: models.Webhook) -> notification_pb2.Webhook:
    return notification_pb2.Webhook(
        id=str(w.id),
        url=w.url,
        events=list(w.events),
        description=w.description,
        active=w.active,
        created_at=_timestamp(w.created_at),
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
        created_at=_timestamp(d.created_at),
        delivered_at=_timestamp(d.delivered_at),
        next_attempt_at=_timestamp(d.next_attempt_at if d.status == models.PENDING else None),
    )


class NotificationServicer(notification_pb2_grpc.NotificationServiceServicer):
    def __init__(self, service: NotificationService) -> None:
        self.service = service

    async def ListNotifications(self, request, context):  # type: ignore[no-untyped-def]
        page = await self.service.list_notifications(
            current_caller(),
            account_id=request.account_id,
            page_size=request.page_size,
            page_token=request.page_token,
        )
        return notification_pb2.ListNotificationsResponse(
            notifications=[notification_to_proto(n) for n in page.items],
            cursors=page.cursors,
            next_page_token=page.cursors[-1] if page.cursors else "",
            has_next_page=page.has_next_page,
            total_count=page.total_count,
        )

    async def GetNotification(self, request, context):  # type: ignore[no-untyped-def]
        notification = await self.service.get_notification(
            current_caller(), notification_id=request.notification_id
        )
        return notification_pb2.GetNotificationResponse(notification=notification_to_proto(notification))

    async def CreateWebhook(self, request, context):  # type: ignore[no-untyped-def]
        created = await self.service.create_webhook(
            current_caller(), url=request.url, events=list(request.events), description=request.description
        )
        return notification_pb2.CreateWebhookResponse(
            webhook=webhook_to_proto(created.webhook), secret=created.secret
        )

    async def DeleteWebhook(self, request, context):  # type: ignore[no-untyped-def]
        webhook = await self.service.delete_webhook(current_caller(), webhook_id=request.webhook_id)
        return notification_pb2.DeleteWebhookResponse(webhook=webhook_to_proto(webhook))

    async def ListWebhooks(self, request, context):  # type: ignore[no-untyped-def]
        webhooks = await self.service.list_webhooks(current_caller(), include_deleted=request.include_deleted)
        return notification_pb2.ListWebhooksResponse(webhooks=[webhook_to_proto(w) for w in webhooks])

    async def ListWebhookDeliveries(self, request, context):  # type: ignore[no-untyped-def]
        page = await self.service.list_webhook_deliveries(
            current_caller(),
            webhook_id=request.webhook_id,
            page_size=request.page_size,
            page_token=request.page_token,
        )
        return notification_pb2.ListWebhookDeliveriesResponse(
            deliveries=[delivery_to_proto(d) for d in page.items],
            cursors=page.cursors,
            next_page_token=page.cursors[-1] if page.cursors else "",
            has_next_page=page.has_next_page,
            total_count=page.total_count,
        )


def registration(servicer: NotificationServicer) -> tuple:
    return (notification_pb2_grpc.add_NotificationServiceServicer_to_server, servicer)
