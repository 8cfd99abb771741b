"""PaymentService servicer: proto in, use case, proto out. Errors are mapped by the interceptor."""

from __future__ import annotations

from datetime import datetime, timedelta

from google.protobuf import timestamp_pb2

from ecommerce.common.v1 import money_pb2
from ecommerce.payment.v1 import payment_pb2, payment_pb2_grpc
from payment import models
from payment.messages import FAILURE_REASON_TO_PROTO
from payment.service import PaymentService
from servicekit.context import current_caller
from servicekit.resilience import BreakerState

SERVICE_NAME = payment_pb2.DESCRIPTOR.services_by_name["PaymentService"].full_name

STATUS_TO_PROTO = {
    models.PENDING: payment_pb2.PAYMENT_STATUS_PENDING,
    models.SUCCEEDED: payment_pb2.PAYMENT_STATUS_SUCCEEDED,
    models.FAILED: payment_pb2.PAYMENT_STATUS_FAILED,
    models.REFUNDED: payment_pb2.PAYMENT_STATUS_REFUNDED,
    models.VOIDED: payment_pb2.PAYMENT_STATUS_VOIDED,
}
BREAKER_TO_PROTO = {
    BreakerState.CLOSED: payment_pb2.BREAKER_STATE_CLOSED,
    BreakerState.OPEN: payment_pb2.BREAKER_STATE_OPEN,
    BreakerState.HALF_OPEN: payment_pb2.BREAKER_STATE_HALF_OPEN,
}


def _timestamp(value: datetime) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(value)
    return stamp


def payment_to_proto(payment: models.Payment) -> payment_pb2.Payment:
    return payment_pb2.Payment(
        id=str(payment.id),
        order_id=str(payment.order_id),
        account_id=str(payment.account_id),
        status=STATUS_TO_PROTO[payment.status],
        amount=money_pb2.Money(amount_minor=payment.amount_minor, currency=payment.currency),
        provider=payment.provider,
        provider_reference=payment.provider_reference or "",
        failure_reason=FAILURE_REASON_TO_PROTO.get(
            payment.failure_reason or "", payment_pb2.PAYMENT_FAILURE_REASON_UNSPECIFIED
        ),
        failure_message=payment.failure_message or "",
        created_at=_timestamp(payment.created_at),
        updated_at=_timestamp(payment.updated_at),
    )


class PaymentServicer(payment_pb2_grpc.PaymentServiceServicer):
    def __init__(self, service: PaymentService) -> None:
        self.service = service

    async def GetPayment(self, request, context):  # type: ignore[no-untyped-def]
        payment = await self.service.get_payment(current_caller(), payment_id=request.payment_id)
        return payment_pb2.GetPaymentResponse(payment=payment_to_proto(payment))

    async def ListPayments(self, request, context):  # type: ignore[no-untyped-def]
        payments = await self.service.list_payments(current_caller(), order_id=request.order_id)
        return payment_pb2.ListPaymentsResponse(payments=[payment_to_proto(p) for p in payments])

    async def BatchGetPaymentsByOrder(self, request, context):  # type: ignore[no-untyped-def]
        payments = await self.service.batch_by_order(current_caller(), order_ids=list(request.order_ids))
        return payment_pb2.BatchGetPaymentsByOrderResponse(payments=[payment_to_proto(p) for p in payments])

    async def RefundPayment(self, request, context):  # type: ignore[no-untyped-def]
        payment = await self.service.refund_payment(
            current_caller(), payment_id=request.payment_id, reason=request.reason
        )
        return payment_pb2.RefundPaymentResponse(payment=payment_to_proto(payment))

    async def ValidatePaymentToken(self, request, context):  # type: ignore[no-untyped-def]
        problem = self.service.validate_token(current_caller(), token=request.payment_token)
        return payment_pb2.ValidatePaymentTokenResponse(valid=problem is None, message=problem or "")

    async def GetBreakerState(self, request, context):  # type: ignore[no-untyped-def]
        breaker = self.service.breaker_state(current_caller())
        response = payment_pb2.GetBreakerStateResponse(
            provider=self.service.provider.name,
            state=BREAKER_TO_PROTO[breaker.state],
            consecutive_failures=breaker.consecutive_failures,
            failure_threshold=breaker.failure_threshold,
        )
        response.cool_down.FromTimedelta(timedelta(seconds=breaker.cool_down))
        if breaker.opened_at is not None:
            response.opened_at.CopyFrom(_timestamp(breaker.opened_at))
        return response


def registration(servicer: PaymentServicer) -> tuple:
    return (payment_pb2_grpc.add_PaymentServiceServicer_to_server, servicer)
