"""Payments: refunds. The `Payment` of an order is a read model (`gateway.read_models`), loaded
through the `payment_by_order_id` DataLoader."""

from __future__ import annotations

from typing import Annotated

import strawberry

from ecommerce.payment.v1 import payment_pb2
from gateway.context import Info
from gateway.read_models import Payment, PaymentFailureReason, PaymentStatus

__all__ = ["Payment", "PaymentFailureReason", "PaymentMutation", "PaymentStatus"]


@strawberry.type
class PaymentMutation:
    @strawberry.mutation(
        description="Pay a SUCCEEDED payment back in full through the provider; a REFUNDED payment is "
        "returned unchanged. It does not cancel the order. ADMIN only. CONFLICT unless SUCCEEDED or "
        "REFUNDED; SERVICE_UNAVAILABLE while the provider is down."
    )
    async def refund_payment(
        self,
        info: Info,
        payment_id: Annotated[strawberry.ID, strawberry.argument(description="The payment to refund.")],
        reason: Annotated[
            str | None, strawberry.argument(description="A note for the audit trail, at most 500 characters.")
        ] = None,
    ) -> Payment:
        ctx = info.context
        ctx.require_admin()
        response = await ctx.call(
            ctx.services.payment.RefundPayment,
            payment_pb2.RefundPaymentRequest(payment_id=str(payment_id), reason=reason or ""),
        )
        return Payment.from_proto(response.payment)
