"""The gateway's `payment_by_order_id` DataLoader against the real payment server: every payment
lookup of one request becomes one BatchGetPaymentsByOrder call."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from decimal import Decimal

import grpc
import pytest
from starlette.requests import Request

from ecommerce.payment.v1 import payment_pb2_grpc
from gateway.context import Context
from gateway.schema.payment import PaymentStatus
from gateway.settings import GatewaySettings
from servicekit.context import Caller

pytestmark = pytest.mark.usefixtures("clean_payments")


class CountingInterceptor(grpc.aio.UnaryUnaryClientInterceptor):
    def __init__(self) -> None:
        self.methods: list[str] = []

    async def intercept_unary_unary(self, continuation, client_call_details, request):  # type: ignore[no-untyped-def]
        method = client_call_details.method
        self.methods.append(method.decode() if isinstance(method, bytes) else method)
        return await continuation(client_call_details, request)


@dataclass
class Services:
    payment: payment_pb2_grpc.PaymentServiceStub


async def request_context(
    harness, counter: CountingInterceptor, account_id: str
) -> tuple[Context, grpc.aio.Channel]:
    channel = grpc.aio.insecure_channel(harness.address, interceptors=[counter])
    token, _ = harness.keys.issuer.issue(account_id, "CUSTOMER")
    context = Context(
        request=Request({"type": "http", "method": "POST", "path": "/graphql", "headers": []}),
        response=None,
        settings=GatewaySettings(env="test"),
        services=Services(payment_pb2_grpc.PaymentServiceStub(channel)),  # type: ignore[arg-type]
        request_id="loader-test",
        caller=Caller(account_id=account_id, role="CUSTOMER", token=token),
        token=token,
    )
    return context, channel


async def test_payments_of_many_orders_in_one_request_take_one_batch_call(payment):
    account_id = str(uuid.uuid4())
    paid = [str(uuid.uuid4()) for _ in range(3)]
    for order_id in paid:
        await payment.pay(order_id, account_id)
    declined = str(uuid.uuid4())
    await payment.pay(declined, account_id, "tok_chargeDeclined")
    someone_elses = str(uuid.uuid4())
    await payment.pay(someone_elses, str(uuid.uuid4()))
    unpaid, malformed = str(uuid.uuid4()), "not-an-order"
    counter = CountingInterceptor()
    context, channel = await request_context(payment, counter, account_id)
    try:
        keys = [*paid, declined, someone_elses, unpaid, malformed, paid[0]]
        results = await asyncio.gather(*(context.loaders.payment_by_order_id.load(k) for k in keys))
    finally:
        await channel.close()

    assert counter.methods == ["/ecommerce.payment.v1.PaymentService/BatchGetPaymentsByOrder"]
    assert [r.order_id if r else None for r in results] == [*paid, declined, None, None, None, paid[0]]
    assert [r.status for r in results[:4]] == [PaymentStatus.SUCCEEDED] * 3 + [PaymentStatus.FAILED]
    assert (results[0].amount.amount, results[0].amount.currency) == (Decimal("49.99"), "EUR")
    assert results[3].failure_message == "the card was declined"
