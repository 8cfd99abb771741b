"""E-mails that carry a one-time link: sent to the account's address with the link in both parts,
then no copy of the link kept, and never offered to webhooks."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import grpc
import pytest

from ecommerce.events.v1 import account_events_pb2
from ecommerce.notification.v1 import notification_pb2
from servicekit.timestamps import to_timestamp
from servicekit.topics import AccountEvent, AccountLink
from tests.integration.notification.conftest import NotificationHarness
from tests.integration.notification.test_email import html_part, text_part

LINK = "http://shop.test/reset-password?token=s3cret-" + uuid.uuid4().hex


async def test_a_password_reset_email_carries_the_link_and_none_is_kept_after_sending(
    notifications: NotificationHarness,
):
    shopper = await notifications.customer(name="Grace Hopper")
    expires = datetime(2030, 1, 2, 3, 4, tzinfo=UTC)
    payload = account_events_pb2.PasswordResetRequested(
        account_id=shopper.account_id, link=LINK, expires_at=to_timestamp(expires)
    )

    envelope = await notifications.publish(
        AccountLink.PASSWORD_RESET_REQUESTED, payload, aggregate_id=shopper.account_id
    )

    [message] = await notifications.wait_mail(shopper.email)
    assert "Reset your" in message["Subject"]
    assert LINK in text_part(message)
    assert f'href="{LINK}"' in html_part(message)
    assert "2030-01-02 03:04 UTC" in text_part(message)
    row = await notifications.wait_notification(envelope.event_id, "SENT")
    assert row["variables"] == {}
    assert row["envelope"] == b""
    [(dump,)] = await notifications.execute("SELECT concat_ws(' ', n.*) FROM notifications n")
    assert "s3cret" not in dump


@pytest.mark.parametrize("event", list(AccountLink))
async def test_a_webhook_cannot_subscribe_to_an_event_carrying_a_link(
    notifications: NotificationHarness, event
):
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await notifications.stub.CreateWebhook(
            notification_pb2.CreateWebhookRequest(url="http://127.0.0.1:9/hook", events=[event]),
            metadata=notifications.admin(),
        )

    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert await notifications.execute("SELECT * FROM webhooks") == []


async def test_a_verification_email_carries_its_link(notifications: NotificationHarness):
    shopper = await notifications.customer()
    link = "http://shop.test/verify-email?token=v3rify-" + uuid.uuid4().hex
    payload = account_events_pb2.EmailVerificationRequested(
        account_id=shopper.account_id, link=link, expires_at=to_timestamp(datetime.now(UTC))
    )

    envelope = await notifications.publish(
        AccountLink.EMAIL_VERIFICATION_REQUESTED, payload, aggregate_id=shopper.account_id
    )

    [message] = await notifications.wait_mail(shopper.email)
    assert message["Subject"].startswith("Confirm your e-mail address")
    assert link in text_part(message)
    row = await notifications.wait_notification(envelope.event_id, "SENT")
    assert (row["variables"], row["envelope"]) == ({}, b"")


async def test_the_owner_of_a_taken_email_is_told_someone_tried_to_register(
    notifications: NotificationHarness,
):
    shopper = await notifications.customer(name="Ada Owner")
    payload = account_events_pb2.AccountRegistrationAttempted(account_id=shopper.account_id)

    await notifications.publish(AccountEvent.REGISTRATION_ATTEMPTED, payload, aggregate_id=shopper.account_id)

    [message] = await notifications.wait_mail(shopper.email)
    assert message["Subject"].startswith("Someone tried to register")
    assert "Hello Ada Owner," in text_part(message)
