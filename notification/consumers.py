"""What the notification service consumes: facts that call for e-mails to shoppers, alerts to the
administrators (`alerts`) and signed webhooks to the shop's systems.

One consumer reads the facts topics through the inbox, so a redelivered event finds its inbox row
and changes nothing. Its handlers only record work, in the inbox's transaction: a PENDING e-mail
(with the template variables taken from the event) and a PENDING delivery per subscribed webhook
(no query at all for an event type no webhook subscribes to: `subscribed`).
Sending happens in the delivery loops, so a slow SMTP server or webhook never holds a partition.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson
from google.protobuf import descriptor_pool, json_format, message_factory
from google.protobuf.message import Message
from sqlalchemy.ext.asyncio import AsyncSession

from ecommerce.common.v1 import money_pb2
from ecommerce.events.v1 import (
    account_events_pb2,
    catalog_events_pb2,
    order_events_pb2,
    payment_events_pb2,
)
from ecommerce.order.v1 import order_pb2
from notification.alerts import ADMIN_EMAIL_EVENTS, admin_emails
from notification.facts import derived_fact
from notification.models import GUEST
from notification.recording import NewNotification, record_notification, record_webhook_deliveries
from notification.service import NotificationService
from notification.subscriptions import WEBHOOK_EVENTS
from servicekit.inbox import Envelope, FollowUp, Handler
from servicekit.kafka import unpack
from servicekit.timestamps import from_timestamp
from servicekit.topics import (
    ACCOUNT_EVENTS,
    ACCOUNT_LINKS,
    CATALOG_EVENTS,
    ORDER_EVENTS,
    PAYMENT_EVENTS,
    AccountEvent,
    AccountLink,
    CatalogEvent,
    OrderEvent,
    PaymentEvent,
)

log = logging.getLogger(__name__)

CONSUMER = "notification"
TOPICS = (ACCOUNT_EVENTS, ACCOUNT_LINKS, ORDER_EVENTS, PAYMENT_EVENTS, CATALOG_EVENTS)
SOURCE_TOPICS: dict[str, str] = {
    **dict.fromkeys(AccountEvent, ACCOUNT_EVENTS),
    **dict.fromkeys(AccountLink, ACCOUNT_LINKS),
    **dict.fromkeys(OrderEvent, ORDER_EVENTS),
    **dict.fromkeys(PaymentEvent, PAYMENT_EVENTS),
    **dict.fromkeys(CatalogEvent, CATALOG_EVENTS),
}

# event type -> (template, payload type)
EMAIL_EVENTS: dict[str, tuple[str, type[Message]]] = {
    AccountEvent.REGISTERED: ("welcome", account_events_pb2.AccountRegistered),
    AccountEvent.REGISTRATION_ATTEMPTED: (
        "registration_attempted",
        account_events_pb2.AccountRegistrationAttempted,
    ),
    AccountLink.PASSWORD_RESET_REQUESTED: ("password_reset", account_events_pb2.PasswordResetRequested),
    AccountLink.EMAIL_VERIFICATION_REQUESTED: ("verify_email", account_events_pb2.EmailVerificationRequested),
    OrderEvent.CONFIRMED: ("order_confirmed", order_events_pb2.OrderConfirmed),
    OrderEvent.CANCELLED: ("order_cancelled", order_events_pb2.OrderCancelled),
    OrderEvent.SHIPPED: ("order_shipped", order_events_pb2.OrderShipped),
    OrderEvent.DELIVERED: ("order_delivered", order_events_pb2.OrderDelivered),
    PaymentEvent.REFUNDED: ("payment_refunded", payment_events_pb2.PaymentRefunded),
}

CANCELLATION_REASONS = {
    order_pb2.CANCELLATION_REASON_OUT_OF_STOCK: "an item in it is no longer in stock",
    order_pb2.CANCELLATION_REASON_PAYMENT_DECLINED: "your payment was declined",
    order_pb2.CANCELLATION_REASON_PAYMENT_UNAVAILABLE: "we could not take your payment in time",
    order_pb2.CANCELLATION_REASON_EXPIRED: "it was not paid in time, so its reservation expired",
    order_pb2.CANCELLATION_REASON_CUSTOMER_CANCELLED: "you cancelled it",
    order_pb2.CANCELLATION_REASON_ADMIN_CANCELLED: "our team cancelled it",
    order_pb2.CANCELLATION_REASON_INVENTORY_UNAVAILABLE: "we could not reserve its items in time",
}


def source_topic(event_type: str) -> str:
    """The topic a fact travels on: `order.confirmed` comes from `order.events`."""
    return SOURCE_TOPICS[event_type]


# -- e-mail variables -------------------------------------------------------------------------


def _money(message: money_pb2.Money) -> dict[str, Any]:
    return {"amount_minor": message.amount_minor, "currency": message.currency}


def order_number(order_id: str) -> str:
    """What a shopper reads and quotes: the first block of the order's UUID, upper case."""
    return order_id.partition("-")[0].upper()


def _order_variables(payload: Any) -> dict[str, Any]:
    """What every order e-mail shows. A part the event lacks is left out, so that the template
    reports it as a gap rather than printing a zero."""
    variables: dict[str, Any] = {"order_id": payload.order_id, "order_number": order_number(payload.order_id)}
    if payload.items:
        variables["items"] = [
            {
                "name": item.name,
                "sku": item.sku,
                "quantity": item.quantity,
                "unit_price": _money(item.unit_price),
                "line_total": _money(item.line_total),
            }
            for item in payload.items
        ]
    if payload.HasField("total"):
        variables["total"] = _money(payload.total)
    if "subtotal" in payload.DESCRIPTOR.fields_by_name and payload.HasField("subtotal"):
        variables["breakdown"] = {
            part: _money(getattr(payload, part)) for part in ("subtotal", "discount", "shipping", "tax")
        }
    if "shipping_address" in payload.DESCRIPTOR.fields_by_name and payload.HasField("shipping_address"):
        a = payload.shipping_address
        variables["shipping_address"] = {
            "name": a.name,
            "line1": a.line1,
            "line2": a.line2,
            "city": a.city,
            "region": a.region,
            "postal_code": a.postal_code,
            "country": a.country,
        }
    return variables


def _cancelled_variables(payload: order_events_pb2.OrderCancelled) -> dict[str, Any]:
    return {
        **_order_variables(payload),
        "reason_text": CANCELLATION_REASONS.get(payload.cancellation_reason, "it could not be completed"),
        "detail": payload.reason,
        "refund_expected": payload.refund_expected,
    }


def _refunded_variables(payload: payment_events_pb2.PaymentRefunded) -> dict[str, Any]:
    variables: dict[str, Any] = {
        "order_id": payload.order_id,
        "order_number": order_number(payload.order_id),
        "reason": payload.reason,
    }
    if payload.HasField("amount"):
        variables["amount"] = _money(payload.amount)
    return variables


def _link_variables(payload: Any) -> dict[str, Any]:
    """The link and when it stops working (UTC, to the minute)."""
    expires = from_timestamp(payload.expires_at).strftime("%Y-%m-%d %H:%M UTC")
    return {"link": payload.link, "expires_at": expires}


VARIABLES: dict[str, Callable[[Any], dict[str, Any]]] = {
    AccountEvent.REGISTERED: lambda p: {"name": p.name, "email": p.email},
    AccountEvent.REGISTRATION_ATTEMPTED: lambda p: {},
    AccountLink.PASSWORD_RESET_REQUESTED: _link_variables,
    AccountLink.EMAIL_VERIFICATION_REQUESTED: _link_variables,
    OrderEvent.CONFIRMED: _order_variables,
    OrderEvent.CANCELLED: _cancelled_variables,
    OrderEvent.SHIPPED: _order_variables,
    OrderEvent.DELIVERED: _order_variables,
    PaymentEvent.REFUNDED: _refunded_variables,
}


def _guest(envelope: Envelope, payload: Any) -> bool:
    """An order event of a guest's order: no account, the e-mail the order was placed with."""
    order_event = SOURCE_TOPICS.get(envelope.event_type) == ORDER_EVENTS
    return order_event and not payload.account_id and bool(payload.email)


def _guest_variables(payload: Any, variables: dict[str, Any]) -> dict[str, Any]:
    """A guest has no account to greet by: the shipping name if the event has it. `guest_email`
    makes the templates show how to follow the order (`guestOrder` takes its id and e-mail)."""
    name = variables.get("shipping_address", {}).get("name") or "customer"
    return {"name": name, **variables, "guest_email": payload.email}


def email_for(envelope: Envelope) -> NewNotification | None:
    """The e-mail an event calls for; None (and a log line) when it names no valid account and
    is not a guest's order."""
    template, payload_type = EMAIL_EVENTS[envelope.event_type]
    payload: Any = unpack(envelope, payload_type)
    variables = VARIABLES[envelope.event_type](payload)
    if _guest(envelope, payload):
        return _notification(
            envelope, GUEST, template, _guest_variables(payload, variables), recipient=payload.email
        )
    try:
        account_id = uuid.UUID(payload.account_id)
    except ValueError:
        log.error(
            "%s %s names no valid account (%r); no e-mail",
            envelope.event_type,
            envelope.event_id,
            payload.account_id,
        )
        return None
    recipient = payload.email if envelope.event_type == AccountEvent.REGISTERED else ""
    return _notification(envelope, account_id, template, variables, recipient=recipient)


def _notification(
    envelope: Envelope, account_id: uuid.UUID, template: str, variables: dict[str, Any], *, recipient: str
) -> NewNotification:
    return NewNotification(
        account_id=account_id,
        event_id=envelope.event_id,
        event_type=envelope.event_type,
        template=template,
        variables=variables,
        recipient=recipient,
        source_topic=source_topic(envelope.event_type),
        envelope=envelope.SerializeToString(),
    )


# -- webhook bodies ---------------------------------------------------------------------------


def _payload_dict(envelope: Envelope) -> dict[str, Any]:
    name = envelope.payload.TypeName()
    try:
        descriptor = descriptor_pool.Default().FindMessageTypeByName(name)
    except KeyError:
        log.warning("%s carries an unknown payload type %s", envelope.event_type, name)
        return {}
    message = message_factory.GetMessageClass(descriptor)()
    envelope.payload.Unpack(message)
    return json_format.MessageToDict(
        message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )


def webhook_body(envelope: Envelope) -> bytes:
    """The JSON a webhook receives: the event's identity and its payload as proto3 JSON."""
    occurred_at = (
        from_timestamp(envelope.occurred_at) if envelope.HasField("occurred_at") else datetime.now(UTC)
    )
    return orjson.dumps(
        {
            "id": envelope.event_id,
            "type": envelope.event_type,
            "occurred_at": occurred_at.isoformat().replace("+00:00", "Z"),
            "aggregate_id": envelope.aggregate_id,
            "data": _payload_dict(envelope),
        }
    )


# -- the consumer -----------------------------------------------------------------------------


def handler(service: NotificationService) -> Handler:
    """Records, in the inbox transaction, the e-mail and the webhook deliveries an event calls for;
    the follow-up wakes the delivery loops once that transaction has committed."""

    async def record(session: AsyncSession, envelope: Envelope) -> tuple[bool, bool]:
        mail = hooks = False
        if envelope.event_type in EMAIL_EVENTS:
            new = email_for(envelope)
            if new is not None:
                mail = await record_notification(session, new)
        if envelope.event_type in ADMIN_EMAIL_EVENTS:
            for alert in await admin_emails(envelope, service.directory):
                mail = await record_notification(session, alert) or mail
        if envelope.event_type in WEBHOOK_EVENTS and service.subscribed.wants(envelope.event_type):
            hooks = (
                await record_webhook_deliveries(
                    session,
                    event_id=envelope.event_id,
                    event_type=envelope.event_type,
                    body=webhook_body(envelope),
                )
                > 0
            )
        return mail, hooks

    async def handle(session: AsyncSession, envelope: Envelope) -> FollowUp | None:
        mail, hooks = await record(session, envelope)
        if envelope.event_type == OrderEvent.STATUS_CHANGED and (fact := derived_fact(envelope)) is not None:
            # The placing or milestone this change stands for, as its own fact (notification/facts.py).
            fact_mail, fact_hooks = await record(session, fact)
            mail, hooks = mail or fact_mail, hooks or fact_hooks
        if not (mail or hooks):
            return None

        async def wake() -> None:
            # After the commit: the delivery loops find the new rows at once instead of polling.
            service.wake(mail=mail, webhooks=hooks)

        return wake

    return handle


def handlers(service: NotificationService) -> dict[str, Handler]:
    """The consumer's handlers: every event type that calls for an e-mail or a webhook delivery,
    each handled by `handler(service)`."""
    return dict.fromkeys(EMAIL_EVENTS.keys() | ADMIN_EMAIL_EVENTS | WEBHOOK_EVENTS, handler(service))


# Make sure every payload a webhook may carry is in the descriptor pool.
_ = (catalog_events_pb2, payment_events_pb2, order_events_pb2, account_events_pb2)
