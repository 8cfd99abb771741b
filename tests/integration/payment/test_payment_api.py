"""The PaymentService RPCs: who may see and refund what, and every kind of bad input."""

from __future__ import annotations

import uuid

import grpc
import pytest

from ecommerce.events.v1 import envelope_pb2, payment_events_pb2
from ecommerce.payment.v1 import payment_pb2
from servicekit.kafka import unpack
from servicekit.rpc_status import parse_rpc_error
from servicekit.topics import PaymentEvent

pytestmark = pytest.mark.usefixtures("clean_payments")

BAD_IDS = [
    "",
    "not-a-uuid",
    "123",
    "{" + str(uuid.UUID(int=1)) + "}",
    str(uuid.UUID(int=1)).replace("-", ""),
    "00000000-0000-0000-0000-00000000000g",
    "' OR 1=1 --",
    "\x00" * 36,
    "é" * 36,
    "x" * 1_000_000,
]


async def rpc_error(awaitable) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await awaitable
    return caught.value


def violated_fields(error: grpc.aio.AioRpcError) -> list[str]:
    return [v.field for v in parse_rpc_error(error).violations]


async def a_payment(harness, token: str = "tok_visa") -> tuple[str, str, str]:
    """A payment of a new order of a new customer: (payment id, order id, account id)."""
    order_id, account_id = str(uuid.uuid4()), str(uuid.uuid4())
    await harness.pay(order_id, account_id, token)
    [(payment_id,)] = await harness.execute("SELECT id FROM payments WHERE order_id = :id", id=order_id)
    return str(payment_id), order_id, account_id


async def written(harness) -> tuple[int, int, int]:
    return (
        await harness.count("refunds"),
        await harness.count("outbox"),
        await harness.count("payments", "status = 'REFUNDED'"),
    )


# -- reading -------------------------------------------------------------------------------


async def test_a_customer_reads_their_own_payment(payment):
    payment_id, order_id, account_id = await a_payment(payment)

    response = await payment.stub.GetPayment(
        payment_pb2.GetPaymentRequest(payment_id=payment_id), metadata=payment.bearer(account_id)
    )

    got = response.payment
    assert (got.id, got.order_id, got.account_id, got.status) == (
        payment_id,
        order_id,
        account_id,
        payment_pb2.PAYMENT_STATUS_SUCCEEDED,
    )
    assert (got.amount.amount_minor, got.amount.currency, got.provider) == (4999, "EUR", "simulated")
    assert got.provider_reference.startswith("sim_ch_")
    assert got.failure_reason == payment_pb2.PAYMENT_FAILURE_REASON_UNSPECIFIED
    assert got.created_at.seconds > 0
    assert got.updated_at.seconds > 0


async def test_another_customers_payment_is_not_found_like_an_unknown_one(payment):
    payment_id, _, _ = await a_payment(payment)

    theirs = await rpc_error(
        payment.stub.GetPayment(
            payment_pb2.GetPaymentRequest(payment_id=payment_id), metadata=payment.bearer()
        )
    )
    unknown = await rpc_error(
        payment.stub.GetPayment(
            payment_pb2.GetPaymentRequest(payment_id=str(uuid.uuid4())), metadata=payment.admin()
        )
    )

    assert theirs.code() == unknown.code() == grpc.StatusCode.NOT_FOUND
    assert theirs.details() == unknown.details()


async def test_an_admin_reads_any_payment_and_a_failed_one_says_why(payment):
    payment_id, _, _ = await a_payment(payment, "tok_chargeDeclined")

    response = await payment.stub.GetPayment(
        payment_pb2.GetPaymentRequest(payment_id=payment_id), metadata=payment.admin()
    )

    assert response.payment.status == payment_pb2.PAYMENT_STATUS_FAILED
    assert response.payment.failure_reason == payment_pb2.PAYMENT_FAILURE_REASON_DECLINED
    assert response.payment.failure_message == "the card was declined"
    assert response.payment.provider_reference == ""


async def test_list_payments_shows_the_order_payment_to_its_owner_only(payment):
    payment_id, order_id, account_id = await a_payment(payment)
    request = payment_pb2.ListPaymentsRequest(order_id=order_id)

    own = await payment.stub.ListPayments(request, metadata=payment.bearer(account_id))
    other = await payment.stub.ListPayments(request, metadata=payment.bearer())
    admin = await payment.stub.ListPayments(request, metadata=payment.admin())
    unknown = await payment.stub.ListPayments(
        payment_pb2.ListPaymentsRequest(order_id=str(uuid.uuid4())), metadata=payment.admin()
    )

    assert [p.id for p in own.payments] == [payment_id]
    assert list(other.payments) == []
    assert [p.id for p in admin.payments] == [payment_id]
    assert list(unknown.payments) == []


async def test_batch_by_order_answers_each_order_once_and_leaves_out_other_customers(payment):
    mine_1, order_1, account_id = await a_payment(payment)
    order_2 = str(uuid.uuid4())
    await payment.pay(order_2, account_id)
    _, theirs, _ = await a_payment(payment)
    no_payment = str(uuid.uuid4())
    request = payment_pb2.BatchGetPaymentsByOrderRequest(
        order_ids=[order_1, order_2, order_1, theirs, no_payment]
    )

    own = await payment.stub.BatchGetPaymentsByOrder(request, metadata=payment.bearer(account_id))
    admin = await payment.stub.BatchGetPaymentsByOrder(request, metadata=payment.admin())

    assert sorted(p.order_id for p in own.payments) == sorted([order_1, order_2])
    assert mine_1 in [p.id for p in own.payments]
    assert sorted(p.order_id for p in admin.payments) == sorted([order_1, order_2, theirs])


async def test_batch_by_order_takes_at_most_a_hundred_ids(payment):
    ids = [str(uuid.uuid4()) for _ in range(101)]

    at_limit = await payment.stub.BatchGetPaymentsByOrder(
        payment_pb2.BatchGetPaymentsByOrderRequest(order_ids=ids[:100]), metadata=payment.admin()
    )
    error = await rpc_error(
        payment.stub.BatchGetPaymentsByOrder(
            payment_pb2.BatchGetPaymentsByOrderRequest(order_ids=ids), metadata=payment.admin()
        )
    )

    assert list(at_limit.payments) == []
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert violated_fields(error) == ["order_ids"]


@pytest.mark.parametrize("bad", BAD_IDS[:9])
async def test_batch_by_order_names_a_malformed_id(payment, bad):
    error = await rpc_error(
        payment.stub.BatchGetPaymentsByOrder(
            payment_pb2.BatchGetPaymentsByOrderRequest(order_ids=[str(uuid.uuid4()), bad]),
            metadata=payment.admin(),
        )
    )

    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert violated_fields(error) == ["order_ids[1]"]


@pytest.mark.parametrize("bad", BAD_IDS)
async def test_get_and_list_refuse_a_malformed_id_naming_the_field(payment, bad):
    get = await rpc_error(
        payment.stub.GetPayment(payment_pb2.GetPaymentRequest(payment_id=bad), metadata=payment.admin())
    )
    listed = await rpc_error(
        payment.stub.ListPayments(payment_pb2.ListPaymentsRequest(order_id=bad), metadata=payment.admin())
    )

    assert (get.code(), listed.code()) == (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.INVALID_ARGUMENT)
    assert (violated_fields(get), violated_fields(listed)) == (["payment_id"], ["order_id"])


@pytest.mark.parametrize(
    ("method", "request_"),
    [
        ("GetPayment", payment_pb2.GetPaymentRequest(payment_id=str(uuid.UUID(int=7)))),
        ("ListPayments", payment_pb2.ListPaymentsRequest(order_id=str(uuid.UUID(int=7)))),
        (
            "BatchGetPaymentsByOrder",
            payment_pb2.BatchGetPaymentsByOrderRequest(order_ids=[str(uuid.UUID(int=7))]),
        ),
        ("RefundPayment", payment_pb2.RefundPaymentRequest(payment_id=str(uuid.UUID(int=7)))),
        ("ValidatePaymentToken", payment_pb2.ValidatePaymentTokenRequest(payment_token="tok_visa")),
        ("GetBreakerState", payment_pb2.GetBreakerStateRequest()),
    ],
)
@pytest.mark.parametrize("authorization", [None, "Bearer not-a-jwt", "Basic dXNlcjpwYXNz"])
async def test_every_rpc_refuses_a_caller_without_a_valid_token(payment, method, request_, authorization):
    metadata = [("authorization", authorization)] if authorization else None

    error = await rpc_error(getattr(payment.stub, method)(request_, metadata=metadata))

    assert error.code() == grpc.StatusCode.UNAUTHENTICATED


# -- refunds -------------------------------------------------------------------------------


async def test_an_admin_refunds_a_succeeded_payment_once_and_it_is_published(payment):
    payment_id, order_id, _ = await a_payment(payment)
    admin_id = str(uuid.uuid4())
    admin = payment.bearer(admin_id, "ADMIN")
    request = payment_pb2.RefundPaymentRequest(payment_id=payment_id, reason="goodwill")

    first = await payment.stub.RefundPayment(request, metadata=admin)
    again = await payment.stub.RefundPayment(request, metadata=admin)

    assert first.payment.status == again.payment.status == payment_pb2.PAYMENT_STATUS_REFUNDED
    assert await payment.count("refunds") == 1
    rows = await payment.execute(
        "SELECT event_type, payload FROM outbox WHERE key = :id AND event_type = :type",
        id=order_id,
        type=PaymentEvent.REFUNDED,
    )
    assert len(rows) == 1
    body = unpack(envelope_pb2.EventEnvelope.FromString(rows[0][1]), payment_events_pb2.PaymentRefunded)
    assert (body.payment_id, body.reason, body.refunded_by, body.amount.amount_minor) == (
        payment_id,
        "goodwill",
        admin_id,
        4999,
    )
    assert payment.app.provider.calls_for(f"order-{order_id}", "refund") == 1


async def test_a_customer_may_not_refund_even_their_own_payment_and_nothing_is_written(payment):
    payment_id, _, account_id = await a_payment(payment)
    before = await written(payment)

    error = await rpc_error(
        payment.stub.RefundPayment(
            payment_pb2.RefundPaymentRequest(payment_id=payment_id), metadata=payment.bearer(account_id)
        )
    )

    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    assert await written(payment) == before
    assert payment.app.provider.calls_for(f"order-{payment_id}", "refund") == 0


async def test_refunding_a_failed_payment_is_a_failed_precondition_and_writes_nothing(payment):
    payment_id, _, _ = await a_payment(payment, "tok_chargeDeclined")
    before = await written(payment)

    error = await rpc_error(
        payment.stub.RefundPayment(
            payment_pb2.RefundPaymentRequest(payment_id=payment_id), metadata=payment.admin()
        )
    )

    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert await written(payment) == before


async def test_refunding_an_unknown_payment_is_not_found(payment):
    error = await rpc_error(
        payment.stub.RefundPayment(
            payment_pb2.RefundPaymentRequest(payment_id=str(uuid.uuid4())), metadata=payment.admin()
        )
    )

    assert error.code() == grpc.StatusCode.NOT_FOUND


async def test_while_the_breaker_is_open_a_refund_is_unavailable_and_writes_nothing(payment):
    payment_id, _, _ = await a_payment(payment)
    breaker = payment.app.service.breaker
    for _ in range(breaker.failure_threshold):
        breaker.record_failure()
    before = await written(payment)

    error = await rpc_error(
        payment.stub.RefundPayment(
            payment_pb2.RefundPaymentRequest(payment_id=payment_id), metadata=payment.admin()
        )
    )

    assert error.code() == grpc.StatusCode.UNAVAILABLE
    assert await written(payment) == before


@pytest.mark.parametrize(
    ("payment_id", "reason", "fields"),
    [
        ("", "", ["payment_id"]),
        ("nope", "", ["payment_id"]),
        ("x" * 1_000_000, "", ["payment_id"]),
        (None, "r" * 501, ["reason"]),
        (None, "refund\x00now", ["reason"]),
        ("nope", "r" * 1_000_000, ["payment_id", "reason"]),
    ],
)
async def test_refund_refuses_bad_input_naming_the_fields_and_writes_nothing(
    payment, payment_id, reason, fields
):
    existing, _, _ = await a_payment(payment)
    before = await written(payment)

    error = await rpc_error(
        payment.stub.RefundPayment(
            payment_pb2.RefundPaymentRequest(
                payment_id=existing if payment_id is None else payment_id, reason=reason
            ),
            metadata=payment.admin(),
        )
    )

    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert violated_fields(error) == fields
    assert await written(payment) == before


# -- tokens and the breaker ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("token", "valid"),
    [("tok_visa", True), ("tok_chargeDeclined", True), ("tok_timeout", True), ("tok_stolen", False)],
)
async def test_validate_payment_token_says_whether_the_provider_accepts_it_without_charging(
    payment, token, valid
):
    response = await payment.stub.ValidatePaymentToken(
        payment_pb2.ValidatePaymentTokenRequest(payment_token=token), metadata=payment.bearer()
    )

    assert response.valid is valid
    assert bool(response.message) is not valid
    assert len(payment.app.provider.calls) == 0


@pytest.mark.parametrize(
    "token", ["", "t" * 256, "t" * 1_000_000, "tok_visa\x00", " tok_visa", "tok\u202evisa"]
)
async def test_validate_payment_token_refuses_malformed_tokens(payment, token):
    error = await rpc_error(
        payment.stub.ValidatePaymentToken(
            payment_pb2.ValidatePaymentTokenRequest(payment_token=token), metadata=payment.bearer()
        )
    )

    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert violated_fields(error) == ["payment_token"]


async def test_the_breaker_state_is_for_admins(payment):
    customer = await rpc_error(
        payment.stub.GetBreakerState(payment_pb2.GetBreakerStateRequest(), metadata=payment.bearer())
    )
    state = await payment.stub.GetBreakerState(payment_pb2.GetBreakerStateRequest(), metadata=payment.admin())

    assert customer.code() == grpc.StatusCode.PERMISSION_DENIED
    assert (state.provider, state.state, state.consecutive_failures, state.failure_threshold) == (
        "simulated",
        payment_pb2.BREAKER_STATE_CLOSED,
        0,
        3,
    )
    assert state.cool_down.ToTimedelta().total_seconds() == 1.0
    assert not state.HasField("opened_at")
