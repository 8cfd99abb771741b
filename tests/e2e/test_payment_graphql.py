"""Payments through HTTP GraphQL: the ADMIN refund, who may not refund, and bad input.

A payment is made as the saga makes it: an AuthorizePayment command on payment.commands,
answered by the payment process of the platform.
"""

from __future__ import annotations

import uuid

import grpc
import pytest

from ecommerce.common.v1 import money_pb2
from ecommerce.events.v1 import payment_events_pb2
from ecommerce.payment.v1 import payment_pb2, payment_pb2_grpc
from servicekit.kafka import create_producer, new_envelope
from tests.e2e.test_account_graphql import admin_session, codes, first_error, sign_up
from tests.helpers import eventually

pytestmark = pytest.mark.e2e

REFUND = """
mutation Refund($id: ID!, $reason: String) {
  refundPayment(paymentId: $id, reason: $reason) {
    id orderId status amount { amount currency } provider providerReference failureReason createdAt
  }
}"""


async def pay(gateway, account_id: str, admin_token: str, token: str = "tok_visa") -> payment_pb2.Payment:
    """Charge a new order of `account_id` through the broker; returns the payment once settled."""
    order_id = str(uuid.uuid4())
    command = payment_events_pb2.AuthorizePayment(
        order_id=order_id,
        account_id=account_id,
        amount=money_pb2.Money(amount_minor=4999, currency="EUR"),
        payment_token=token,
        idempotency_key=f"order-{order_id}",
    )
    envelope = new_envelope(
        event_type="payment.authorize_payment", aggregate_id=order_id, producer="order", payload=command
    )
    producer = create_producer(
        gateway.platform.infra.kafka_bootstrap_servers, idempotent=False, client_id="payment-e2e"
    )
    await producer.start()
    try:
        await producer.send_and_wait(
            "payment.commands", value=envelope.SerializeToString(), key=order_id.encode()
        )
    finally:
        await producer.stop()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.platform.ports['payment']}") as channel:
        stub = payment_pb2_grpc.PaymentServiceStub(channel)

        async def settled() -> payment_pb2.Payment | None:
            listed = await stub.ListPayments(
                payment_pb2.ListPaymentsRequest(order_id=order_id),
                metadata=[("authorization", f"Bearer {admin_token}")],
            )
            done = [p for p in listed.payments if p.status != payment_pb2.PAYMENT_STATUS_PENDING]
            return done[0] if done else None

        return await eventually(settled, timeout=30, what="the payment settled")


async def status_of(gateway, payment_id: str, admin_token: str) -> int:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.platform.ports['payment']}") as channel:
        response = await payment_pb2_grpc.PaymentServiceStub(channel).GetPayment(
            payment_pb2.GetPaymentRequest(payment_id=payment_id),
            metadata=[("authorization", f"Bearer {admin_token}")],
        )
    return response.payment.status


@pytest.fixture(scope="module")
async def people(gateway) -> dict:
    admin = await admin_session(gateway)
    customer = await sign_up(gateway)
    return {
        "admin": admin["accessToken"],
        "customer": customer["accessToken"],
        "customer_id": customer["account"]["id"],
    }


async def test_an_admin_refunds_a_succeeded_payment(gateway, people):
    charged = await pay(gateway, people["customer_id"], people["admin"])

    body = await gateway.post(REFUND, {"id": charged.id, "reason": "goodwill"}, token=people["admin"])

    assert "errors" not in body, body
    refunded = body["data"]["refundPayment"]
    assert (refunded["id"], refunded["orderId"], refunded["status"]) == (
        charged.id,
        charged.order_id,
        "REFUNDED",
    )
    assert refunded["amount"] == {"amount": "49.99", "currency": "EUR"}
    assert (refunded["provider"], refunded["failureReason"]) == ("simulated", None)
    assert refunded["providerReference"] == charged.provider_reference


@pytest.mark.parametrize(("who", "code"), [("customer", "FORBIDDEN"), (None, "UNAUTHENTICATED")])
async def test_only_an_admin_may_refund_and_nothing_changes_otherwise(gateway, people, who, code):
    charged = await pay(gateway, people["customer_id"], people["admin"])

    body = await gateway.post(REFUND, {"id": charged.id}, token=people[who] if who else None)

    assert codes(body) == [code]
    assert body["data"] is None
    assert await status_of(gateway, charged.id, people["admin"]) == payment_pb2.PAYMENT_STATUS_SUCCEEDED


async def test_refunding_a_declined_payment_is_a_conflict(gateway, people):
    declined = await pay(gateway, people["customer_id"], people["admin"], "tok_chargeDeclined")

    body = await gateway.post(REFUND, {"id": declined.id}, token=people["admin"])

    assert codes(body) == ["CONFLICT"]
    assert await status_of(gateway, declined.id, people["admin"]) == payment_pb2.PAYMENT_STATUS_FAILED


@pytest.mark.parametrize(
    ("variables", "code", "field"),
    [
        ({"id": "not-a-uuid"}, "BAD_USER_INPUT", "paymentId"),
        ({"id": ""}, "BAD_USER_INPUT", "paymentId"),
        ({"id": "x" * 100_000}, "BAD_USER_INPUT", "paymentId"),
        ({"id": str(uuid.UUID(int=5)), "reason": "r" * 501}, "BAD_USER_INPUT", "reason"),
        ({"id": str(uuid.UUID(int=5)), "reason": "<script>\u0000</script>"}, "BAD_USER_INPUT", "reason"),
        ({"id": str(uuid.uuid4())}, "NOT_FOUND", None),
    ],
)
async def test_refund_answers_bad_input_with_its_code_and_field(gateway, people, variables, code, field):
    body = await gateway.post(REFUND, variables, token=people["admin"])

    error = first_error(body)
    assert codes(body) == [code]
    assert error["extensions"].get("field") == field
