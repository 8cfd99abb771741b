"""ListNotifications and GetNotification: the caller's own history, an ADMIN's view of anyone's."""

from __future__ import annotations

import uuid

import grpc

from ecommerce.events.v1 import envelope_pb2
from ecommerce.notification.v1 import notification_pb2
from notification.recording import NewNotification
from servicekit.db import transaction
from tests.integration.notification.conftest import Customer, NotificationHarness, rpc_error


async def seed(harness: NotificationHarness, customer: Customer, count: int) -> list[str]:
    """Notifications of `count` events for the customer, oldest first; returns their event ids."""
    event_ids = []
    for _ in range(count):
        event_id = str(uuid.uuid4())
        async with transaction(harness.app.runtime.sessions) as session:
            await harness.service.record_notification(
                session,
                NewNotification(
                    account_id=uuid.UUID(customer.account_id),
                    event_id=event_id,
                    event_type="order.delivered",
                    template="order_delivered",
                    variables={"order_number": "ABC"},
                    recipient="",
                    source_topic="order.events",
                    envelope=envelope_pb2.EventEnvelope(event_id=event_id).SerializeToString(),
                ),
            )
        event_ids.append(event_id)
    return event_ids


def listing(**fields: object) -> notification_pb2.ListNotificationsRequest:
    return notification_pb2.ListNotificationsRequest(**fields)  # type: ignore[arg-type]


async def test_a_customer_lists_only_their_own_notifications_newest_first(notifications: NotificationHarness):
    ada, bob = await notifications.customer(), await notifications.customer()
    ada_events = await seed(notifications, ada, 3)
    await seed(notifications, bob, 2)

    response = await notifications.stub.ListNotifications(listing(), metadata=ada.metadata)

    assert [n.event_id for n in response.notifications] == list(reversed(ada_events))
    assert {n.account_id for n in response.notifications} == {ada.account_id}
    assert response.total_count == 3
    assert not response.has_next_page
    first = response.notifications[0]
    assert (first.channel, first.template, first.event_type) == (
        notification_pb2.NOTIFICATION_CHANNEL_EMAIL,
        "order_delivered",
        "order.delivered",
    )


async def test_pages_follow_each_other_through_cursors(notifications: NotificationHarness):
    ada = await notifications.customer()
    events = list(reversed(await seed(notifications, ada, 5)))

    first = await notifications.stub.ListNotifications(listing(page_size=2), metadata=ada.metadata)
    second = await notifications.stub.ListNotifications(
        listing(page_size=2, page_token=first.next_page_token), metadata=ada.metadata
    )
    third = await notifications.stub.ListNotifications(
        listing(page_size=2, page_token=second.cursors[-1]), metadata=ada.metadata
    )

    assert [n.event_id for n in first.notifications] == events[:2]
    assert [n.event_id for n in second.notifications] == events[2:4]
    assert [n.event_id for n in third.notifications] == events[4:]
    assert (first.has_next_page, second.has_next_page, third.has_next_page) == (True, True, False)
    assert first.total_count == second.total_count == third.total_count == 5


async def test_an_admin_lists_another_accounts_notifications(notifications: NotificationHarness):
    ada = await notifications.customer()
    events = await seed(notifications, ada, 2)

    response = await notifications.stub.ListNotifications(
        listing(account_id=ada.account_id), metadata=notifications.admin()
    )

    assert [n.event_id for n in response.notifications] == list(reversed(events))


async def test_a_customer_asking_for_another_accounts_notifications_is_refused(
    notifications: NotificationHarness,
):
    ada, bob = await notifications.customer(), await notifications.customer()
    await seed(notifications, bob, 1)

    code, _ = await rpc_error(
        notifications.stub.ListNotifications(listing(account_id=bob.account_id), metadata=ada.metadata)
    )

    assert code == grpc.StatusCode.PERMISSION_DENIED


async def test_listing_refuses_bad_page_sizes_ids_and_cursors(notifications: NotificationHarness):
    ada, bob = await notifications.customer(), await notifications.customer()
    await seed(notifications, ada, 2)
    await seed(notifications, bob, 2)
    bobs_cursor = (
        await notifications.stub.ListNotifications(listing(page_size=1), metadata=bob.metadata)
    ).next_page_token
    own_cursor = (
        await notifications.stub.ListNotifications(listing(page_size=1), metadata=ada.metadata)
    ).next_page_token
    tampered = own_cursor[:-2] + ("AA" if not own_cursor.endswith("AA") else "BB")

    for request, field in [
        (listing(page_size=101), "page_size"),
        (listing(page_size=-1), "page_size"),
        (listing(page_token="not a cursor"), "page_token"),
        (listing(page_token=tampered), "page_token"),
        (listing(page_token="x" * 100_000), "page_token"),
        (listing(page_token=bobs_cursor), "page_token"),
        (listing(account_id="robert'); DROP TABLE notifications;--"), "account_id"),
    ]:
        code, fields = await rpc_error(notifications.stub.ListNotifications(request, metadata=ada.metadata))
        assert (code, fields) == (grpc.StatusCode.INVALID_ARGUMENT, [field]), request


async def test_anonymous_callers_and_bad_tokens_are_unauthenticated(notifications: NotificationHarness):
    for metadata in ([], [("authorization", "Bearer not.a.token")]):
        code, _ = await rpc_error(notifications.stub.ListNotifications(listing(), metadata=metadata))
        assert code == grpc.StatusCode.UNAUTHENTICATED
        code, _ = await rpc_error(
            notifications.stub.GetNotification(
                notification_pb2.GetNotificationRequest(notification_id=str(uuid.uuid4())), metadata=metadata
            )
        )
        assert code == grpc.StatusCode.UNAUTHENTICATED


async def test_a_notification_is_shown_to_its_owner_and_admins_only(notifications: NotificationHarness):
    ada, bob = await notifications.customer(), await notifications.customer()
    await seed(notifications, ada, 1)
    [mine] = (await notifications.stub.ListNotifications(listing(), metadata=ada.metadata)).notifications

    def get(notification_id: str) -> notification_pb2.GetNotificationRequest:
        return notification_pb2.GetNotificationRequest(notification_id=notification_id)

    own = await notifications.stub.GetNotification(get(mine.id), metadata=ada.metadata)
    as_admin = await notifications.stub.GetNotification(get(mine.id), metadata=notifications.admin())
    assert own.notification.id == as_admin.notification.id == mine.id

    for notification_id, metadata, expected in [
        (mine.id, bob.metadata, grpc.StatusCode.NOT_FOUND),  # another's is as unknown as an unknown id
        (str(uuid.uuid4()), ada.metadata, grpc.StatusCode.NOT_FOUND),
        ("", ada.metadata, grpc.StatusCode.INVALID_ARGUMENT),
        ("1' OR '1'='1", ada.metadata, grpc.StatusCode.INVALID_ARGUMENT),
        ("x" * 10_000, ada.metadata, grpc.StatusCode.INVALID_ARGUMENT),
    ]:
        code, _ = await rpc_error(notifications.stub.GetNotification(get(notification_id), metadata=metadata))
        assert code == expected, notification_id
