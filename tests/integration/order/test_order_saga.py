"""The saga against the real broker: the test plays catalog and payment and chooses every reply,
its order, its duplicates and its silence."""

from __future__ import annotations

import uuid

import grpc
import pytest
from prometheus_client import REGISTRY

from ecommerce.common.v1 import money_pb2
from ecommerce.events.v1 import envelope_pb2, order_events_pb2
from ecommerce.events.v1 import inventory_events_pb2 as inv
from ecommerce.events.v1 import payment_events_pb2 as pay
from ecommerce.order.v1 import order_pb2
from ecommerce.payment.v1 import payment_pb2
from servicekit.kafka import unpack
from tests.helpers import eventually
from tests.integration.order.helpers import create_request, rpc_error

pytestmark = pytest.mark.usefixtures("orders")


async def place(orders, *, quantity: int = 2, price_minor: int = 1500, token: str = "tok_visa"):
    product = orders.catalog.add(price_minor=price_minor)
    account_id, metadata = orders.token()
    order = (
        await orders.stub.CreateOrder(create_request([(product, quantity)], token=token), metadata=metadata)
    ).order
    return order.id, account_id, metadata


async def wait_status(orders, order_id: str, status: str, *, settled: bool = False) -> None:
    async def reached() -> bool:
        rows = await orders.execute("SELECT status, saga_step FROM orders WHERE id = :id", id=order_id)
        return bool(rows) and rows[0][0] == status and (not settled or rows[0][1] is None)

    await eventually(
        reached, timeout=15, what=f"order {order_id} {status}{' and settled' if settled else ''}"
    )


async def history(orders, order_id: str) -> list[tuple[str, str, str | None]]:
    return [
        tuple(row)
        for row in await orders.execute(
            "SELECT status, reason, changed_by FROM order_history WHERE order_id = :id ORDER BY id",
            id=order_id,
        )
    ]


async def handled(orders, envelope: envelope_pb2.EventEnvelope) -> None:
    """Wait until the service has taken a reply in (its inbox has it)."""
    await eventually(
        lambda: orders.scalar("SELECT count(*) FROM inbox WHERE event_id = :id", id=envelope.event_id),
        what=f"{envelope.event_type} {envelope.event_id} handled",
    )


async def reserved(orders, order_id: str) -> envelope_pb2.EventEnvelope:
    [command] = await orders.bus.wait_for(order_id, "inventory.reserve_stock")
    return await orders.bus.reply(
        "inventory.stock_reserved",
        order_id,
        inv.StockReserved(order_id=order_id, lines=unpack(command, inv.ReserveStock).lines),
        causation_id=command.event_id,
    )


async def paid(orders, order_id: str) -> envelope_pb2.EventEnvelope:
    [command] = await orders.bus.wait_for(order_id, "payment.authorize_payment")
    return await orders.bus.reply(
        "payment.succeeded",
        order_id,
        pay.PaymentSucceeded(payment_id="pay-" + order_id[:8], order_id=order_id),
        causation_id=command.event_id,
    )


async def committed(orders, order_id: str) -> envelope_pb2.EventEnvelope:
    [command] = await orders.bus.wait_for(order_id, "inventory.commit_stock")
    return await orders.bus.reply(
        "inventory.stock_committed",
        order_id,
        inv.StockCommitted(order_id=order_id),
        causation_id=command.event_id,
    )


async def confirmed_order(orders):
    order_id, account_id, metadata = await place(orders)
    # The stock first (the payment may come first too): PENDING, AWAITING_PAYMENT, CONFIRMED.
    await handled(orders, await reserved(orders, order_id))
    await paid(orders, order_id)
    await committed(orders, order_id)
    await wait_status(orders, order_id, "CONFIRMED")
    return order_id, account_id, metadata


async def settle_compensations(orders, order_id: str) -> None:
    """Answer every compensation the order waits for, as catalog and payment would."""
    answers = {
        "RELEASE_STOCK": (
            "inventory.release_stock",
            "inventory.stock_released",
            inv.StockReleased(order_id=order_id),
        ),
        "VOID_PAYMENT": ("payment.void_payment", "payment.voided", pay.PaymentVoided(order_id=order_id)),
        "REFUND_PAYMENT": (
            "payment.refund_payment",
            "payment.refunded",
            pay.PaymentRefunded(order_id=order_id),
        ),
    }
    pending = await orders.scalar("SELECT saga_pending FROM orders WHERE id = :id", id=order_id)
    for compensation in pending:
        command_type, reply_type, payload = answers[compensation]
        [command, *_] = await orders.bus.wait_for(order_id, command_type)
        await orders.bus.reply(reply_type, order_id, payload, causation_id=command.event_id)
    await wait_status(orders, order_id, "CANCELLED", settled=True)


# -- the way through ------------------------------------------------------------------------------


async def test_the_happy_path_reserves_pays_commits_and_confirms(orders):
    order_id, account_id, _ = await place(orders, quantity=3, price_minor=1500)

    [authorize] = await orders.bus.wait_for(order_id, "payment.authorize_payment")
    stock_reply = await reserved(orders, order_id)
    await handled(orders, stock_reply)
    payment_reply = await paid(orders, order_id)
    [commit] = await orders.bus.wait_for(order_id, "inventory.commit_stock")
    await committed(orders, order_id)
    await wait_status(orders, order_id, "CONFIRMED", settled=True)

    command = unpack(authorize, pay.AuthorizePayment)
    assert (command.account_id, command.amount.amount_minor, command.amount.currency) == (
        account_id,
        4500,
        "EUR",
    )
    assert command.payment_token == "tok_visa"
    assert command.idempotency_key == f"order-{order_id}"
    # Both first commands went out with the order; the commit names the reply that completed the pair.
    assert (authorize.causation_id, commit.causation_id) == ("", payment_reply.event_id)
    assert [h[0] for h in await history(orders, order_id)] == ["PENDING", "AWAITING_PAYMENT", "CONFIRMED"]
    changes = await orders.bus.wait_for(order_id, "order.status_changed", count=3)
    confirmed = unpack(changes[-1], order_events_pb2.OrderStatusChanged)
    fact = confirmed.details
    assert (confirmed.new_status, confirmed.account_id) == (order_pb2.ORDER_STATUS_CONFIRMED, account_id)
    assert (fact.total.amount_minor, fact.payment_id) == (4500, "pay-" + order_id[:8])
    assert [(i.quantity, i.line_total.amount_minor) for i in fact.items] == [(3, 4500)]
    # The card token is kept only while it may be needed.
    assert await orders.scalar("SELECT payment_token FROM orders WHERE id = :id", id=order_id) is None


async def test_every_transition_publishes_a_status_change(orders):
    order_id, _, _ = await confirmed_order(orders)

    changes = await orders.bus.wait_for(order_id, "order.status_changed", count=3)

    pairs = [
        (
            unpack(c, order_events_pb2.OrderStatusChanged).old_status,
            unpack(c, order_events_pb2.OrderStatusChanged).new_status,
        )
        for c in changes
    ]
    assert pairs == [
        (order_pb2.ORDER_STATUS_UNSPECIFIED, order_pb2.ORDER_STATUS_PENDING),
        (order_pb2.ORDER_STATUS_PENDING, order_pb2.ORDER_STATUS_AWAITING_PAYMENT),
        (order_pb2.ORDER_STATUS_AWAITING_PAYMENT, order_pb2.ORDER_STATUS_CONFIRMED),
    ]


async def test_a_declined_payment_cancels_and_releases_the_stock_once(orders):
    order_id, _, _ = await place(orders)
    await handled(orders, await reserved(orders, order_id))
    [authorize] = await orders.bus.wait_for(order_id, "payment.authorize_payment")

    await orders.bus.reply(
        "payment.failed",
        order_id,
        pay.PaymentFailed(
            order_id=order_id, reason=payment_pb2.PAYMENT_FAILURE_REASON_DECLINED, retryable=False
        ),
        causation_id=authorize.event_id,
    )
    await wait_status(orders, order_id, "CANCELLED")
    await settle_compensations(orders, order_id)

    row = await orders.execute(
        "SELECT cancellation_reason, payment_token FROM orders WHERE id = :id", id=order_id
    )
    assert row == [("PAYMENT_DECLINED", None)]
    assert len(orders.bus.sent(order_id, "inventory.release_stock")) == 1
    assert orders.bus.sent(order_id, "payment.void_payment") == []
    *_, cancelled = await orders.bus.wait_for(order_id, "order.status_changed", count=3)
    fact = unpack(cancelled, order_events_pb2.OrderStatusChanged)
    assert fact.cancellation_reason == order_pb2.CANCELLATION_REASON_PAYMENT_DECLINED
    assert fact.old_status == order_pb2.ORDER_STATUS_AWAITING_PAYMENT
    assert fact.details.refund_expected is False


async def test_out_of_stock_cancels_and_voids_the_authorisation_sent_with_the_order(orders):
    order_id, _, _ = await place(orders, quantity=5)
    [command] = await orders.bus.wait_for(order_id, "inventory.reserve_stock")

    await orders.bus.reply(
        "inventory.stock_rejected",
        order_id,
        inv.StockRejected(
            order_id=order_id,
            lines=[
                inv.RejectedStockLine(
                    product_id=unpack(command, inv.ReserveStock).lines[0].product_id,
                    requested=5,
                    available=2,
                    reason=inv.STOCK_REJECTION_REASON_INSUFFICIENT_STOCK,
                )
            ],
        ),
        causation_id=command.event_id,
    )
    await wait_status(orders, order_id, "CANCELLED")
    await settle_compensations(orders, order_id)

    assert (
        await orders.scalar("SELECT cancellation_reason FROM orders WHERE id = :id", id=order_id)
        == "OUT_OF_STOCK"
    )
    assert orders.bus.types(order_id, "payment.") == ["payment.authorize_payment", "payment.void_payment"]
    assert orders.bus.types(order_id, "inventory.") == ["inventory.reserve_stock"]
    assert orders.bus.types(order_id, "inventory.") == ["inventory.reserve_stock"]
    [_, (status, reason, _)] = await history(orders, order_id)
    assert status == "CANCELLED"
    assert "insufficient stock: 5 requested, 2 available" in reason


# -- duplicates and disorder ------------------------------------------------------------------------


async def test_every_reply_delivered_twice_has_one_effect(orders):
    order_id, _, _ = await place(orders)
    replies = [await reserved(orders, order_id)]
    await handled(orders, replies[0])
    replies.append(await paid(orders, order_id))
    replies.append(await committed(orders, order_id))
    await wait_status(orders, order_id, "CONFIRMED")

    for envelope in replies:
        topic = "inventory.events" if envelope.event_type.startswith("inventory.") else "payment.events"
        await orders.bus.deliver(topic, envelope)
    # Markers delivered after the duplicates on each topic: once they are handled, so are those.
    await handled(
        orders,
        await orders.bus.reply("inventory.stock_released", order_id, inv.StockReleased(order_id=order_id)),
    )
    await handled(
        orders, await orders.bus.reply("payment.refunded", order_id, pay.PaymentRefunded(order_id=order_id))
    )

    assert [h[0] for h in await history(orders, order_id)] == ["PENDING", "AWAITING_PAYMENT", "CONFIRMED"]
    commands = orders.bus.types(order_id, "inventory.commands") + orders.bus.types(
        order_id, "payment.commands"
    )
    assert sorted(commands) == [
        "inventory.commit_stock",
        "inventory.reserve_stock",
        "payment.authorize_payment",
    ]
    # 3 commands and one message per transition (3 status changes, the last with the details).
    assert await orders.scalar("SELECT count(*) FROM outbox WHERE key = :id", id=order_id) == 6


async def test_the_same_outcome_republished_under_a_new_event_id_is_ignored(orders):
    order_id, _, _ = await place(orders)
    await reserved(orders, order_id)
    await orders.bus.wait_for(order_id, "payment.authorize_payment")

    # The catalog answers a re-sent ReserveStock with the outcome it had the first time.
    await handled(
        orders,
        await orders.bus.reply("inventory.stock_reserved", order_id, inv.StockReserved(order_id=order_id)),
    )

    assert len(orders.bus.sent(order_id, "payment.authorize_payment")) == 1
    assert [h[0] for h in await history(orders, order_id)] == ["PENDING", "AWAITING_PAYMENT"]


async def test_a_payment_answered_before_the_stock_is_kept_and_a_commit_reply_too_early_is_ignored(orders):
    order_id, _, _ = await place(orders)
    await handled(
        orders,
        await orders.bus.reply("inventory.stock_committed", order_id, inv.StockCommitted(order_id=order_id)),
    )
    await handled(orders, await paid(orders, order_id))
    saga = await orders.execute(
        "SELECT status, saga_step, saga_pending FROM orders WHERE id = :id", id=order_id
    )
    assert saga == [("PENDING", "RESERVE_AND_AUTHORIZE", ["RESERVE_STOCK"])]

    await reserved(orders, order_id)
    await committed(orders, order_id)

    await wait_status(orders, order_id, "CONFIRMED")
    assert len(orders.bus.sent(order_id, "inventory.commit_stock")) == 1
    assert [h[0] for h in await history(orders, order_id)] == ["PENDING", "CONFIRMED"]


async def test_replies_for_unknown_orders_and_unreadable_messages_do_not_stop_the_saga(orders):
    await orders.bus.reply("inventory.stock_reserved", str(uuid.uuid4()), inv.StockReserved())
    await orders.bus.producer.send_and_wait("inventory.events", b"\xff not an envelope", key=b"poison")
    order_id, _, _ = await place(orders)

    await reserved(orders, order_id)

    await wait_status(orders, order_id, "AWAITING_PAYMENT")


# -- deadlines and retry budgets ---------------------------------------------------------------------


async def test_a_silent_step_is_resent_then_compensated_after_its_budget(orders):
    order_id, _, _ = await place(orders)
    await orders.bus.wait_for(order_id, "inventory.reserve_stock")

    for sends in (2, 3):
        await orders.expire_step(order_id)
        commands = await orders.bus.wait_for(order_id, "inventory.reserve_stock", count=sends)
        assert len({c.event_id for c in commands}) == sends
    await orders.expire_step(order_id)

    await wait_status(orders, order_id, "CANCELLED")
    assert await orders.scalar("SELECT cancellation_reason FROM orders WHERE id = :id", id=order_id) == (
        "INVENTORY_UNAVAILABLE"
    )
    # The reservation may have been made with its answer lost: it is released.
    await orders.bus.wait_for(order_id, "inventory.release_stock")


async def test_a_retryable_payment_failure_is_retried_with_the_same_key_then_given_up(orders):
    order_id, _, _ = await place(orders, token="tok_unavailable")
    await reserved(orders, order_id)
    unavailable = pay.PaymentFailed(
        order_id=order_id, reason=payment_pb2.PAYMENT_FAILURE_REASON_PROVIDER_UNAVAILABLE, retryable=True
    )

    for sends in (1, 2, 3):
        await orders.bus.wait_for(order_id, "payment.authorize_payment", count=sends)
        await handled(orders, await orders.bus.reply("payment.failed", order_id, unavailable))
        if sends < 3:
            assert (
                await orders.scalar("SELECT status FROM orders WHERE id = :id", id=order_id)
                == "AWAITING_PAYMENT"
            )
            await orders.expire_step(order_id)

    await wait_status(orders, order_id, "CANCELLED")
    keys = {
        unpack(c, pay.AuthorizePayment).idempotency_key
        for c in orders.bus.sent(order_id, "payment.authorize_payment")
    }
    assert keys == {f"order-{order_id}"}
    assert (
        await orders.scalar("SELECT cancellation_reason FROM orders WHERE id = :id", id=order_id)
        == "PAYMENT_UNAVAILABLE"
    )
    await orders.bus.wait_for(order_id, "inventory.release_stock")
    await orders.bus.wait_for(order_id, "payment.void_payment")


async def test_a_reservation_expiring_during_payment_cancels_and_voids_the_payment(orders):
    order_id, _, _ = await place(orders)
    await reserved(orders, order_id)
    await orders.bus.wait_for(order_id, "payment.authorize_payment")

    await orders.bus.reply(
        "inventory.reservation_expired", order_id, inv.ReservationExpired(order_id=order_id)
    )

    await wait_status(orders, order_id, "CANCELLED")
    assert (
        await orders.scalar("SELECT cancellation_reason FROM orders WHERE id = :id", id=order_id) == "EXPIRED"
    )
    await orders.bus.wait_for(order_id, "payment.void_payment")
    assert orders.bus.sent(order_id, "inventory.release_stock") == []


async def test_unanswered_compensations_are_sent_again(orders):
    order_id, _, metadata = await place(orders)
    await orders.stub.CancelOrder(order_pb2.CancelOrderRequest(order_id=order_id), metadata=metadata)
    await orders.bus.wait_for(order_id, "inventory.release_stock")

    await orders.expire_step(order_id)

    await orders.bus.wait_for(order_id, "inventory.release_stock", count=2)
    await settle_compensations(orders, order_id)


async def test_sagas_in_flight_resume_after_a_restart(orders):
    waiting_for_reply, _, _ = await place(orders)
    silent, _, _ = await place(orders)
    await orders.bus.wait_for(silent, "inventory.reserve_stock")
    await orders.bus.wait_for(waiting_for_reply, "inventory.reserve_stock")
    await handled(
        orders, await orders.bus.reply("inventory.stock_released", str(uuid.uuid4()), inv.StockReleased())
    )

    await orders.stop_service()
    try:
        # Meanwhile a reply arrives, and the other order's deadline passes.
        await reserved(orders, waiting_for_reply)
        await orders.execute("UPDATE orders SET saga_deadline_at = now() WHERE id = :id", id=silent)
    finally:
        await orders.start_service()

    # The embedded broker numbers a group's first generation 0, and aiokafka leaves a group on
    # close only from generation 1: the new consumer waits out the old member's session first.
    await orders.bus.wait_for(waiting_for_reply, "payment.authorize_payment", timeout=60)
    await orders.bus.wait_for(silent, "inventory.reserve_stock", count=2)
    await wait_status(orders, waiting_for_reply, "AWAITING_PAYMENT")


# -- cancelling, shipping, delivering -------------------------------------------------------------------


async def test_cancelling_a_pending_order_releases_its_stock_and_voids_its_payment(orders):
    order_id, account_id, metadata = await place(orders)

    response = await orders.stub.CancelOrder(
        order_pb2.CancelOrderRequest(order_id=order_id, note="ordered by mistake"), metadata=metadata
    )
    await settle_compensations(orders, order_id)

    assert response.order.status == order_pb2.ORDER_STATUS_CANCELLED
    assert response.order.cancellation_reason == order_pb2.CANCELLATION_REASON_CUSTOMER_CANCELLED
    assert (await history(orders, order_id))[-1] == (
        "CANCELLED",
        "cancelled by the customer: ordered by mistake",
        account_id,
    )
    # The authorisation went out with the order: it is voided, whether it was made yet or not.
    assert orders.bus.types(order_id, "payment.") == ["payment.authorize_payment", "payment.void_payment"]


async def test_cancelling_while_paying_releases_the_stock_and_voids_the_payment(orders):
    order_id, _, metadata = await place(orders)
    await reserved(orders, order_id)
    await orders.bus.wait_for(order_id, "payment.authorize_payment")

    await orders.stub.CancelOrder(order_pb2.CancelOrderRequest(order_id=order_id), metadata=metadata)

    await orders.bus.wait_for(order_id, "inventory.release_stock")
    await orders.bus.wait_for(order_id, "payment.void_payment")
    # The authorization answered late is left to the void already sent.
    await paid(orders, order_id)
    await settle_compensations(orders, order_id)
    assert len(orders.bus.sent(order_id, "payment.void_payment")) == 1
    assert orders.bus.sent(order_id, "inventory.commit_stock") == []


async def test_an_admin_cancelling_a_confirmed_order_refunds_and_releases(orders):
    order_id, _, _ = await confirmed_order(orders)
    admin_id, admin = orders.token(role="ADMIN")

    response = await orders.stub.CancelOrder(order_pb2.CancelOrderRequest(order_id=order_id), metadata=admin)

    assert response.order.cancellation_reason == order_pb2.CANCELLATION_REASON_ADMIN_CANCELLED
    [refund] = await orders.bus.wait_for(order_id, "payment.refund_payment")
    await orders.bus.wait_for(order_id, "inventory.release_stock")
    changes = await orders.bus.wait_for(order_id, "order.status_changed", count=4)
    cancelled = unpack(changes[-1], order_events_pb2.OrderStatusChanged)
    assert cancelled.new_status == order_pb2.ORDER_STATUS_CANCELLED
    assert cancelled.details.refund_expected is True
    assert unpack(refund, pay.RefundPayment).order_id == order_id
    await settle_compensations(orders, order_id)
    assert (await history(orders, order_id))[-1][2] == admin_id


async def test_cancelling_twice_changes_nothing_the_second_time(orders):
    order_id, _, metadata = await place(orders)
    first = await orders.stub.CancelOrder(order_pb2.CancelOrderRequest(order_id=order_id), metadata=metadata)

    second = await orders.stub.CancelOrder(order_pb2.CancelOrderRequest(order_id=order_id), metadata=metadata)

    assert second.order == first.order
    assert (
        await orders.scalar(
            "SELECT count(*) FROM outbox WHERE key = :id AND event_type = 'inventory.release_stock'",
            id=order_id,
        )
        == 1
    )


async def test_a_confirmed_order_ships_and_is_delivered_but_then_cannot_be_cancelled(orders):
    order_id, _, metadata = await confirmed_order(orders)
    admin_id, admin = orders.token(role="ADMIN")

    shipped = await orders.stub.ShipOrder(order_pb2.ShipOrderRequest(order_id=order_id), metadata=admin)
    cancel_shipped, _ = await rpc_error(
        orders.stub.CancelOrder(order_pb2.CancelOrderRequest(order_id=order_id), metadata=metadata)
    )
    again = await orders.stub.ShipOrder(order_pb2.ShipOrderRequest(order_id=order_id), metadata=admin)
    delivered = await orders.stub.DeliverOrder(
        order_pb2.DeliverOrderRequest(order_id=order_id), metadata=admin
    )

    assert shipped.order.status == again.order.status == order_pb2.ORDER_STATUS_SHIPPED
    assert cancel_shipped == grpc.StatusCode.FAILED_PRECONDITION
    assert delivered.order.status == order_pb2.ORDER_STATUS_DELIVERED
    assert [h[0] for h in await history(orders, order_id)][-2:] == ["SHIPPED", "DELIVERED"]
    assert (await history(orders, order_id))[-1][2] == admin_id
    *_, ship, deliver = await orders.bus.wait_for(order_id, "order.status_changed", count=5)
    fact = unpack(deliver, order_events_pb2.OrderStatusChanged)
    assert unpack(ship, order_events_pb2.OrderStatusChanged).new_status == order_pb2.ORDER_STATUS_SHIPPED
    assert fact.new_status == order_pb2.ORDER_STATUS_DELIVERED
    assert fact.details.total == money_pb2.Money(amount_minor=3000, currency="EUR")


async def test_the_saga_reports_step_durations_retries_and_outcomes(orders):
    watched = {
        "reserved": (
            "ecommerce_saga_step_duration_seconds_count",
            {"step": "reserve_stock", "outcome": "ok"},
        ),
        "declined": (
            "ecommerce_saga_step_duration_seconds_count",
            {"step": "authorize_payment", "outcome": "declined"},
        ),
        "retried": ("ecommerce_saga_step_retries_total", {"step": "authorize_payment"}),
        "cancelled": ("ecommerce_saga_outcomes_total", {"outcome": "payment_declined"}),
    }

    def samples() -> dict[str, float]:
        return {
            key: REGISTRY.get_sample_value(name, labels) or 0.0 for key, (name, labels) in watched.items()
        }

    before = samples()
    order_id, _, _ = await place(orders)
    await reserved(orders, order_id)
    await orders.bus.wait_for(order_id, "payment.authorize_payment")
    await orders.expire_step(order_id)
    [_, again] = await orders.bus.wait_for(order_id, "payment.authorize_payment", count=2)

    await orders.bus.reply(
        "payment.failed",
        order_id,
        pay.PaymentFailed(order_id=order_id, retryable=False),
        causation_id=again.event_id,
    )
    await wait_status(orders, order_id, "CANCELLED")

    after = samples()
    assert {key: after[key] - before[key] for key in watched} == {
        "reserved": 1,
        "declined": 1,
        "retried": 1,
        "cancelled": 1,
    }


async def test_a_saga_that_cannot_resume_does_not_hold_up_the_others(orders):
    broken, _, _ = await place(orders)
    healthy, _, _ = await place(orders)
    await reserved(orders, broken)
    await orders.bus.wait_for(broken, "payment.authorize_payment")
    await orders.bus.wait_for(healthy, "inventory.reserve_stock")
    # Its card token is gone: AuthorizePayment cannot be sent again.
    await orders.execute("UPDATE orders SET payment_token = NULL WHERE id = :id", id=broken)

    await orders.execute(
        "UPDATE orders SET saga_deadline_at = now() - interval '1 second' WHERE id IN (:a, :b)",
        a=broken,
        b=healthy,
    )

    await orders.bus.wait_for(healthy, "inventory.reserve_stock", count=2)

    async def postponed() -> bool:
        return bool(
            await orders.scalar("SELECT saga_deadline_at > now() FROM orders WHERE id = :id", id=broken)
        )

    await eventually(postponed, what="the broken saga postponed")
    assert len(orders.bus.sent(broken, "payment.authorize_payment")) == 1
    assert await orders.scalar("SELECT saga_attempts FROM orders WHERE id = :id", id=broken) == 1
