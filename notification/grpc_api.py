"""NotificationService servicer: proto in, use case, proto out. Errors are mapped by the interceptor."""

from __future__ import annotations

import grpc

from ecommerce.notification.v1 import notification_pb2 as pb
from ecommerce.notification.v1 import notification_pb2_grpc
from notification.convert import delivery_to_proto, notification_to_proto, webhook_to_proto
from notification.service import NotificationService
from servicekit.context import current_caller
from servicekit.grpc_server import Registration
from servicekit.pages import page_fields

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["NotificationService"].full_name


class NotificationServicer(notification_pb2_grpc.NotificationServiceServicer):
    def __init__(self, service: NotificationService) -> None:
        self.service = service

    async def ListNotifications(
        self, request: pb.ListNotificationsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListNotificationsResponse:
        page = await self.service.history.list_notifications(
            current_caller(),
            account_id=request.account_id,
            page_size=request.page_size,
            page_token=request.page_token,
        )
        return pb.ListNotificationsResponse(
            notifications=[notification_to_proto(n) for n in page.items], **page_fields(page)
        )

    async def GetNotification(
        self, request: pb.GetNotificationRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetNotificationResponse:
        notification = await self.service.history.get_notification(
            current_caller(), notification_id=request.notification_id
        )
        return pb.GetNotificationResponse(notification=notification_to_proto(notification))

    async def CreateWebhook(
        self, request: pb.CreateWebhookRequest, context: grpc.aio.ServicerContext
    ) -> pb.CreateWebhookResponse:
        created = await self.service.subscriptions.create_webhook(
            current_caller(), url=request.url, events=list(request.events), description=request.description
        )
        return pb.CreateWebhookResponse(webhook=webhook_to_proto(created.webhook), secret=created.secret)

    async def DeleteWebhook(
        self, request: pb.DeleteWebhookRequest, context: grpc.aio.ServicerContext
    ) -> pb.DeleteWebhookResponse:
        webhook = await self.service.subscriptions.delete_webhook(
            current_caller(), webhook_id=request.webhook_id
        )
        return pb.DeleteWebhookResponse(webhook=webhook_to_proto(webhook))

    async def ListWebhooks(
        self, request: pb.ListWebhooksRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListWebhooksResponse:
        webhooks = await self.service.subscriptions.list_webhooks(
            current_caller(), include_deleted=request.include_deleted
        )
        return pb.ListWebhooksResponse(webhooks=[webhook_to_proto(w) for w in webhooks])

    async def ListWebhookDeliveries(
        self, request: pb.ListWebhookDeliveriesRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListWebhookDeliveriesResponse:
        page = await self.service.subscriptions.list_webhook_deliveries(
            current_caller(),
            webhook_id=request.webhook_id,
            page_size=request.page_size,
            page_token=request.page_token,
        )
        return pb.ListWebhookDeliveriesResponse(
            deliveries=[delivery_to_proto(d) for d in page.items], **page_fields(page)
        )


def registration(servicer: NotificationServicer) -> Registration:
    return (notification_pb2_grpc.add_NotificationServiceServicer_to_server, servicer)
