"""PaymentService servicer: proto in, use case, proto out. Errors are mapped by the interceptor."""

from __future__ import annotations

import grpc

from ecommerce.payment.v1 import payment_pb2, payment_pb2_grpc
from payment import convert
from payment.service import PaymentService
from servicekit.context import current_caller
from servicekit.grpc_server import Registration

SERVICE_NAME = payment_pb2.DESCRIPTOR.services_by_name["PaymentService"].full_name


class PaymentServicer(payment_pb2_grpc.PaymentServiceServicer):
    def __init__(self, service: PaymentService) -> None:
        self.service = service

    async def GetPayment(
        self, request: payment_pb2.GetPaymentRequest, context: grpc.aio.ServicerContext
    ) -> payment_pb2.GetPaymentResponse:
        payment = await self.service.get_payment(current_caller(), payment_id=request.payment_id)
        return payment_pb2.GetPaymentResponse(payment=convert.payment_to_proto(payment))

    async def ListPayments(
        self, request: payment_pb2.ListPaymentsRequest, context: grpc.aio.ServicerContext
    ) -> payment_pb2.ListPaymentsResponse:
        payments = await self.service.list_payments(current_caller(), order_id=request.order_id)
        return payment_pb2.ListPaymentsResponse(payments=[convert.payment_to_proto(p) for p in payments])

    async def BatchGetPaymentsByOrder(
        self, request: payment_pb2.BatchGetPaymentsByOrderRequest, context: grpc.aio.ServicerContext
    ) -> payment_pb2.BatchGetPaymentsByOrderResponse:
        payments = await self.service.batch_by_order(current_caller(), order_ids=list(request.order_ids))
        return payment_pb2.BatchGetPaymentsByOrderResponse(
            payments=[convert.payment_to_proto(p) for p in payments]
        )

    async def RefundPayment(
        self, request: payment_pb2.RefundPaymentRequest, context: grpc.aio.ServicerContext
    ) -> payment_pb2.RefundPaymentResponse:
        payment = await self.service.refund_payment(
            current_caller(), payment_id=request.payment_id, reason=request.reason
        )
        return payment_pb2.RefundPaymentResponse(payment=convert.payment_to_proto(payment))

    async def ValidatePaymentToken(
        self, request: payment_pb2.ValidatePaymentTokenRequest, context: grpc.aio.ServicerContext
    ) -> payment_pb2.ValidatePaymentTokenResponse:
        problem = self.service.validate_token(current_caller(), token=request.payment_token)
        return payment_pb2.ValidatePaymentTokenResponse(valid=problem is None, message=problem or "")

    async def GetBreakerState(
        self, request: payment_pb2.GetBreakerStateRequest, context: grpc.aio.ServicerContext
    ) -> payment_pb2.GetBreakerStateResponse:
        breaker = self.service.breaker_state(current_caller())
        return convert.breaker_to_proto(self.service.provider.name, breaker)


def registration(servicer: PaymentServicer) -> Registration:
    return (payment_pb2_grpc.add_PaymentServiceServicer_to_server, servicer)
