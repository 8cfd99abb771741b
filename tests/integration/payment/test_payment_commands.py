"""The saga's payment commands through the real broker: authorize, retries, the breaker, refund, void."""

from __future__ import annotations

import uuid

import pytest

from ecommerce.events.v1 import payment_events_pb2
from ecommerce.payment.v1 import payment_pb2
from servicekit.db import transaction
from servicekit.kafka import new_envelope, unpack
from servicekit.messages import Cause
from servicekit.topics import PaymentCommand, PaymentEvent
from tests.helpers import eventually
from tests.integration.payment.conftest import authorize_command

pytestmark = pytest.mark.usefixtures("clean_payments")


def new_order() -> str:
    return str(uuid.uuid4())


def key(order_id: str) -> str:
    return f"order-{order_id}"


def succeeded(envelope) -> payment_events_pb2.PaymentSucceeded:
    assert envelope.event_type == PaymentEvent.SUCCEEDED, envelope.event_type
    return unpack(envelope, payment_events_pb2.PaymentSucceeded)  # type: ignore[return-value]


def failed(envelope) -> payment_events_pb2.PaymentFailed:
    assert envelope.event_type == PaymentEvent.FAILED, envelope.event_type
    return unpack(envelope, payment_events_pb2.PaymentFailed)  # type: ignore[return-value]


async def payment_row(harness, order_id: str) -> tuple:
    rows = await harness.execute(
        "SELECT status, failure_reason, attempts, provider_reference, idempotency_key "
        "FROM payments WHERE order_id = :id",
        id=order_id,
    )
    assert len(rows) == 1, rows
    return tuple(rows[0])


async def charges(harness, order_id: str) -> list[str]:
    """The simulated provider's successful charges under the order's idempotency key."""
    entries = await harness.app.provider.ledger(key(order_id))
    return [e.reference for e in entries if (e.operation, e.outcome) == ("authorize", "succeeded")]


async def breaker(harness) -> payment_pb2.GetBreakerStateResponse:
    return await harness.stub.GetBreakerState(payment_pb2.GetBreakerStateRequest(), metadata=harness.admin())


# -- authorize -----------------------------------------------------------------------------


async def test_tok_visa_charges_once_and_answers_payment_succeeded_keyed_by_order(payment):
    order_id, account_id = new_order(), str(uuid.uuid4())

    sent = await payment.send(
        PaymentCommand.AUTHORIZE_PAYMENT,
        order_id,
        authorize_command(order_id, "tok_visa", account_id=account_id),
    )
    reply = await payment.reply_to(sent)

    body = succeeded(reply)
    assert (reply.aggregate_id, reply.causation_id, reply.correlation_id) == (
        order_id,
        sent.event_id,
        order_id,
    )
    assert (body.order_id, body.account_id, body.amount.amount_minor, body.amount.currency) == (
        order_id,
        account_id,
        4999,
        "EUR",
    )
    assert body.provider == "simulated"
    assert await charges(payment, order_id) == [body.provider_reference]
    assert await payment_row(payment, order_id) == (
        "SUCCEEDED",
        None,
        1,
        body.provider_reference,
        key(order_id),
    )
    assert payment.app.provider.calls_for(key(order_id)) == 1


async def test_a_duplicate_delivery_makes_one_payment_and_one_charge(payment):
    order_id = new_order()
    command = authorize_command(order_id, "tok_visa")
    first = new_envelope(
        event_type=PaymentCommand.AUTHORIZE_PAYMENT, aggregate_id=order_id, producer="order", payload=command
    )
    duplicates_before = payment.app.consumer.duplicates

    await payment.send_envelope(first)
    await payment.send_envelope(first)
    resent = await payment.send(PaymentCommand.AUTHORIZE_PAYMENT, order_id, command)

    first_reply = succeeded(await payment.reply_to(first))
    resent_reply = succeeded(await payment.reply_to(resent))
    await eventually(
        lambda: _true(payment.app.consumer.duplicates == duplicates_before + 1), what="the duplicate dropped"
    )
    assert first_reply.payment_id == resent_reply.payment_id
    assert first_reply.provider_reference == resent_reply.provider_reference
    assert await payment.count("payments", "order_id = :id", id=order_id) == 1
    assert len(await charges(payment, order_id)) == 1
    assert payment.app.provider.calls_for(key(order_id)) == 1
    assert len(payment.replies.answering(first.event_id)) == 1
    assert await payment.count("outbox", "key = :id", id=order_id) == 2


async def test_tok_charge_declined_fails_at_once_and_is_never_retried(payment):
    order_id = new_order()

    reply = failed(await payment.authorize(order_id, "tok_chargeDeclined"))
    again = failed(await payment.authorize(order_id, "tok_chargeDeclined"))

    assert (reply.reason, reply.retryable) == (payment_pb2.PAYMENT_FAILURE_REASON_DECLINED, False)
    assert reply.message
    assert (again.reason, again.payment_id) == (reply.reason, reply.payment_id)
    assert payment.app.provider.calls_for(key(order_id)) == 1
    assert await payment_row(payment, order_id) == ("FAILED", "DECLINED", 1, None, key(order_id))
    assert await charges(payment, order_id) == []


async def test_an_unknown_token_fails_as_invalid_token_and_is_not_retried(payment):
    order_id = new_order()

    reply = failed(await payment.authorize(order_id, "tok_nobody_knows"))

    assert (reply.reason, reply.retryable) == (payment_pb2.PAYMENT_FAILURE_REASON_INVALID_TOKEN, False)
    assert payment.app.provider.calls_for(key(order_id)) == 1


async def test_an_empty_token_fails_without_calling_the_provider(payment):
    order_id = new_order()

    reply = failed(await payment.authorize(order_id, ""))

    assert (reply.reason, reply.retryable) == (payment_pb2.PAYMENT_FAILURE_REASON_INVALID_TOKEN, False)
    assert payment.app.provider.calls_for(key(order_id)) == 0
    assert await payment_row(payment, order_id) == ("FAILED", "INVALID_TOKEN", 0, None, key(order_id))


async def test_tok_unavailable_is_retried_with_backoff_then_fails_as_retryable(payment):
    order_id = new_order()

    reply = failed(await payment.authorize(order_id, "tok_unavailable"))

    assert (reply.reason, reply.retryable) == (payment_pb2.PAYMENT_FAILURE_REASON_PROVIDER_UNAVAILABLE, True)
    assert payment.app.provider.calls_for(key(order_id)) == payment.settings.retry_attempts == 2
    assert await payment_row(payment, order_id) == ("FAILED", "PROVIDER_UNAVAILABLE", 2, None, key(order_id))
    assert await charges(payment, order_id) == []
    state = await breaker(payment)
    assert (state.state, state.consecutive_failures) == (payment_pb2.BREAKER_STATE_CLOSED, 2)


async def test_tok_timeout_times_out_retries_opens_the_breaker_fails_fast_and_closes_after_the_cool_down(
    payment,
):
    slow, slower, waiting = new_order(), new_order(), new_order()
    admin = payment.admin()

    # The payment is committed as PENDING before the provider is called, outside any transaction.
    sent = await payment.send(PaymentCommand.AUTHORIZE_PAYMENT, slow, authorize_command(slow, "tok_timeout"))

    async def pending() -> bool:
        listed = await payment.stub.ListPayments(
            payment_pb2.ListPaymentsRequest(order_id=slow), metadata=admin
        )
        return [p.status for p in listed.payments] == [payment_pb2.PAYMENT_STATUS_PENDING]

    await eventually(pending, what="a PENDING payment while the provider hangs")
    first = failed(await payment.reply_to(sent))
    assert (first.reason, first.retryable) == (payment_pb2.PAYMENT_FAILURE_REASON_PROVIDER_TIMEOUT, True)
    assert payment.app.provider.calls_for(key(slow)) == 2
    assert (await breaker(payment)).state == payment_pb2.BREAKER_STATE_CLOSED

    # The third timeout in a row opens the breaker; the retry after it fails fast.
    second = failed(await payment.authorize(slower, "tok_timeout"))
    assert (second.reason, second.retryable) == (
        payment_pb2.PAYMENT_FAILURE_REASON_PROVIDER_UNAVAILABLE,
        True,
    )
    assert payment.app.provider.calls_for(key(slower)) == 1
    state = await breaker(payment)
    assert (state.state, state.consecutive_failures, state.failure_threshold) == (
        payment_pb2.BREAKER_STATE_OPEN,
        3,
        3,
    )
    assert state.HasField("opened_at")

    # While open, even a good card fails fast as PAYMENT_UNAVAILABLE without reaching the provider.
    third = failed(await payment.authorize(waiting, "tok_visa"))
    assert (third.reason, third.retryable) == (payment_pb2.PAYMENT_FAILURE_REASON_PROVIDER_UNAVAILABLE, True)
    assert payment.app.provider.calls_for(key(waiting)) == 0
    assert await payment_row(payment, waiting) == ("FAILED", "PROVIDER_UNAVAILABLE", 0, None, key(waiting))

    # After the cool-down a trial goes through: the saga's re-sent command succeeds and closes it.
    async def half_open() -> bool:
        return (await breaker(payment)).state == payment_pb2.BREAKER_STATE_HALF_OPEN

    await eventually(half_open, timeout=15, what="the breaker half-open after its cool-down")
    retried = succeeded(await payment.authorize(waiting, "tok_visa"))
    assert retried.payment_id == third.payment_id
    state = await breaker(payment)
    assert (state.state, state.consecutive_failures) == (payment_pb2.BREAKER_STATE_CLOSED, 0)
    assert await charges(payment, waiting) == [retried.provider_reference]
    assert await payment_row(payment, waiting) == (
        "SUCCEEDED",
        None,
        1,
        retried.provider_reference,
        key(waiting),
    )


async def test_a_retryable_failure_is_tried_again_when_the_saga_resends_with_the_same_key(payment):
    order_id = new_order()
    failed(await payment.authorize(order_id, "tok_unavailable"))

    reply = succeeded(await payment.authorize(order_id, "tok_visa"))

    assert await charges(payment, order_id) == [reply.provider_reference]
    assert await payment_row(payment, order_id) == (
        "SUCCEEDED",
        None,
        3,
        reply.provider_reference,
        key(order_id),
    )


async def test_after_a_success_a_resent_command_republishes_it_without_calling_the_provider(payment):
    order_id = new_order()
    first = succeeded(await payment.authorize(order_id, "tok_visa"))

    again = succeeded(await payment.authorize(order_id, "tok_chargeDeclined"))

    assert (again.payment_id, again.provider_reference) == (first.payment_id, first.provider_reference)
    assert payment.app.provider.calls_for(key(order_id)) == 1


async def test_a_crash_between_the_charge_and_its_record_is_resumed_with_the_same_key_and_charges_once(
    payment,
):
    order_id, account_id = new_order(), str(uuid.uuid4())
    service = payment.app.service
    # The first delivery recorded the attempt, the provider charged, and the process died before
    # writing the outcome: the payment is PENDING and the provider holds a charge under its key.
    async with transaction(payment.app.runtime.sessions) as session:
        lost_follow_up = await service.authorize_order(
            session,
            order_id=order_id,
            account_id=account_id,
            amount_minor=4999,
            currency="EUR",
            token="tok_visa",
            idempotency_key=key(order_id),
            cause=Cause(str(uuid.uuid4()), order_id),
        )
    assert lost_follow_up is not None
    first_charge = await payment.app.provider.authorize(
        token="tok_visa", amount_minor=4999, currency="EUR", idempotency_key=key(order_id)
    )
    assert (await payment_row(payment, order_id))[0] == "PENDING"

    reply = succeeded(await payment.authorize(order_id, "tok_visa", account_id=account_id))

    assert reply.provider_reference == first_charge
    assert await charges(payment, order_id) == [first_charge]
    assert await payment_row(payment, order_id) == ("SUCCEEDED", None, 1, first_charge, key(order_id))


async def test_a_poison_command_is_dead_lettered_and_the_partition_keeps_flowing(payment):
    dead_before = payment.app.consumer.dead_lettered
    poison = authorize_command(new_order())
    poison.order_id = "'; DROP TABLE payments; --"

    await payment.send(PaymentCommand.AUTHORIZE_PAYMENT, "poison", poison)
    order_id = new_order()
    reply = succeeded(await payment.authorize(order_id, "tok_visa"))

    await eventually(
        lambda: _true(payment.app.consumer.dead_lettered == dead_before + 1), what="the poison dead-lettered"
    )
    assert reply.order_id == order_id
    assert await payment.count("payments") == 1


@pytest.mark.parametrize(
    ("amount_minor", "currency"),
    [(0, "EUR"), (-100, "EUR"), (100, "XYZ"), (100, "eur"), (100, "")],
)
async def test_an_authorize_command_with_a_bad_amount_writes_nothing_and_is_dead_lettered(
    payment, amount_minor, currency
):
    dead_before = payment.app.consumer.dead_lettered
    order_id = new_order()

    await payment.send(
        PaymentCommand.AUTHORIZE_PAYMENT,
        order_id,
        authorize_command(order_id, amount_minor=amount_minor, currency=currency),
    )

    await eventually(
        lambda: _true(payment.app.consumer.dead_lettered == dead_before + 1), what="the command dead-lettered"
    )
    assert await payment.count("payments") == 0
    assert payment.replies.of_order(order_id) == []


# -- refund and void -----------------------------------------------------------------------


async def test_refund_command_pays_a_succeeded_payment_back_once(payment):
    order_id = new_order()
    charged = succeeded(await payment.authorize(order_id, "tok_visa"))
    command = payment_events_pb2.RefundPayment(order_id=order_id, reason="order cancelled by customer")

    first = await payment.reply_to(await payment.send(PaymentCommand.REFUND_PAYMENT, order_id, command))
    again = await payment.reply_to(await payment.send(PaymentCommand.REFUND_PAYMENT, order_id, command))

    assert (first.event_type, again.event_type) == (PaymentEvent.REFUNDED, PaymentEvent.REFUNDED)
    body = unpack(first, payment_events_pb2.PaymentRefunded)
    assert (body.payment_id, body.amount.amount_minor, body.reason, body.refunded_by) == (
        charged.payment_id,
        4999,
        "order cancelled by customer",
        "",
    )
    assert (await payment_row(payment, order_id))[0] == "REFUNDED"
    assert await payment.count("refunds") == 1
    assert payment.app.provider.calls_for(key(order_id), "refund") == 1


async def test_void_before_authorize_answers_voided_and_the_late_authorize_never_charges(payment):
    order_id = new_order()

    voided = await payment.reply_to(
        await payment.send(
            PaymentCommand.VOID_PAYMENT, order_id, payment_events_pb2.VoidPayment(order_id=order_id)
        )
    )
    late = await payment.authorize(order_id, "tok_visa")

    assert (voided.event_type, late.event_type) == (PaymentEvent.VOIDED, PaymentEvent.VOIDED)
    assert unpack(voided, payment_events_pb2.PaymentVoided).payment_id == ""
    assert payment.app.provider.calls_for(key(order_id)) == 0
    assert await payment.count("payments") == 0


async def test_void_after_success_reverses_the_charge(payment):
    order_id = new_order()
    charged = succeeded(await payment.authorize(order_id, "tok_visa"))

    reply = await payment.reply_to(
        await payment.send(
            PaymentCommand.VOID_PAYMENT,
            order_id,
            payment_events_pb2.VoidPayment(order_id=order_id, reason="cancelled"),
        )
    )

    body = unpack(reply, payment_events_pb2.PaymentVoided)
    assert (reply.event_type, body.payment_id, body.amount.amount_minor) == (
        PaymentEvent.VOIDED,
        charged.payment_id,
        4999,
    )
    assert (await payment_row(payment, order_id))[0] == "VOIDED"
    assert [e.operation for e in await payment.app.provider.ledger(key(order_id))] == ["authorize", "void"]


async def _true(value: bool) -> bool:
    return value
