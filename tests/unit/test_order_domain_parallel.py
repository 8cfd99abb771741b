"""RESERVE_AND_AUTHORIZE: the reservation and the authorisation in flight together, their replies
in every order, failures on either side, and compensations that overtake the command they undo.

The last tests run the saga against small models of the two participants that behave as
`catalog/inventory.py` and `payment/commands.py` do (idempotent per order, a compensation that
arrives first is remembered), delivering every message in every order the topics allow, and
check that whatever happens no stock stays held and no charge stands for a cancelled order."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, replace

import pytest

from order import domain
from order.domain import (
    AuthorizePayment,
    CancellationReason,
    CancelRequested,
    CommitStock,
    Compensation,
    DeadlinePassed,
    Part,
    PaymentFailed,
    PaymentRefunded,
    PaymentSucceeded,
    PaymentVoided,
    RefundPayment,
    ReleaseStock,
    ReservationExpired,
    ReserveStock,
    Status,
    Step,
    StockCommitted,
    StockRejected,
    StockReleased,
    StockReserved,
    VoidPayment,
)
from order.saga import saga_columns
from tests.unit.order_sagas import NOW, POLICY, awaiting_payment, decide, paid, pending, run


@pytest.mark.parametrize(
    "replies", list(itertools.permutations([StockReserved(), PaymentSucceeded("pay-1")]))
)
def test_both_answers_in_either_order_commit_the_stock_once(replies):
    saga, commands, _ = run([*replies, *replies])

    assert saga.step is Step.COMMIT_STOCK
    assert saga.awaiting == frozenset()
    assert saga.payment_id == "pay-1"
    assert commands.count(CommitStock()) == 1


def test_a_reservation_rejected_after_the_payment_voids_the_payment_it_knows():
    saga, commands, _ = run([PaymentSucceeded("pay-1"), StockRejected()])

    assert saga.cancellation_reason is CancellationReason.OUT_OF_STOCK
    assert saga.payment_id == "pay-1"
    assert commands[-1] == VoidPayment("out of stock")


def test_a_payment_succeeding_after_the_stock_was_rejected_is_left_to_the_void_already_sent():
    saga, commands, _ = run([StockRejected(), PaymentSucceeded("pay-1"), PaymentVoided("pay-1")])

    assert commands == [ReserveStock(), AuthorizePayment(), VoidPayment("out of stock")]
    assert saga.step is None
    assert saga.payment_id == "pay-1"


def test_a_reservation_arriving_after_a_declined_payment_is_left_to_the_release_already_sent():
    saga, commands, _ = run([PaymentFailed(retryable=False), StockReserved(), StockReleased()])

    assert saga.cancellation_reason is CancellationReason.PAYMENT_DECLINED
    assert commands == [ReserveStock(), AuthorizePayment(), ReleaseStock("payment declined")]
    assert saga.step is None


def test_a_void_answered_before_the_authorisation_ends_the_compensation():
    # The payment service refuses an AuthorizePayment arriving after the void: answered as voided.
    saga, _, _ = run([StockRejected(), PaymentVoided("")])

    assert saga.step is None
    assert saga.status is Status.CANCELLED


def test_a_retryable_payment_failure_while_the_stock_is_unanswered_resends_both_early():
    failed = decide(pending(), PaymentFailed(retryable=True))

    assert failed.saga.awaiting == set(Part)
    assert failed.saga.deadline_at == NOW + POLICY.payment_retry_delay
    resent = decide(failed.saga, DeadlinePassed(), NOW + POLICY.payment_retry_delay)
    assert resent.commands == (ReserveStock(), AuthorizePayment())


def test_a_retryable_failure_never_postpones_the_reservations_deadline():
    saga = pending()  # its deadline: NOW + step_deadline
    later = NOW + POLICY.step_deadline - POLICY.payment_retry_delay / 2

    outcome = decide(saga, PaymentFailed(retryable=True), later)

    assert outcome.saga.deadline_at == saga.deadline_at


@pytest.mark.parametrize(("state", "kept"), [(pending, True), (awaiting_payment, True), (paid, False)])
def test_the_card_token_is_kept_only_while_the_payment_is_awaited(state, kept):
    assert ("payment_token" not in saga_columns(state())) == kept


# -- the saga against models of its participants ------------------------------------------------------


@dataclass(frozen=True)
class World:
    saga: domain.Saga
    to_inventory: tuple[domain.Command, ...] = ()
    to_payment: tuple[domain.Command, ...] = ()
    from_inventory: tuple[domain.Event, ...] = ()
    from_payment: tuple[domain.Event, ...] = ()
    stock: str = "NONE"  # NONE, RESERVED, REJECTED, RELEASED, COMMITTED, EXPIRED
    payment: str = "NONE"  # NONE, SUCCEEDED, FAILED, VOIDED, REFUNDED
    void_marker: bool = False
    # Things that may happen once, at any moment.
    cancel_left: bool = True
    expiry_left: bool = True
    deadline_left: bool = True


def _inventory(world: World, in_stock: bool) -> World:
    command, rest = world.to_inventory[0], world.to_inventory[1:]
    stock = world.stock
    reply: domain.Event | None = None
    replay: dict[str, domain.Event] = {
        "REJECTED": StockRejected(),
        "RELEASED": StockReleased(),
        "EXPIRED": ReservationExpired(),
        "RESERVED": StockReserved(),
        "COMMITTED": StockReserved(),
    }
    match command:
        case ReserveStock() if stock == "NONE":
            stock, reply = ("RESERVED", StockReserved()) if in_stock else ("REJECTED", StockRejected())
        case ReserveStock():
            reply = replay[stock]
        case CommitStock() if stock in ("RESERVED", "COMMITTED"):
            stock, reply = "COMMITTED", StockCommitted()
        case CommitStock():
            reply = StockReleased() if stock == "NONE" else replay[stock]
        case ReleaseStock():
            stock = "RELEASED" if stock in ("NONE", "RESERVED", "COMMITTED") else stock
            reply = StockReleased()
    assert reply is not None
    return replace(world, to_inventory=rest, stock=stock, from_inventory=(*world.from_inventory, reply))


def _payment(world: World, accepted: bool) -> World:
    command, rest = world.to_payment[0], world.to_payment[1:]
    status, marker = world.payment, world.void_marker
    reply: domain.Event | None = None
    match command:
        case AuthorizePayment() if marker and status in ("NONE", "FAILED", "VOIDED"):
            reply = PaymentVoided("")
        case AuthorizePayment() if status == "NONE":
            status = "SUCCEEDED" if accepted else "FAILED"
            reply = PaymentSucceeded("pay-1") if accepted else PaymentFailed(retryable=False)
        case AuthorizePayment():
            answers: dict[str, domain.Event] = {
                "SUCCEEDED": PaymentSucceeded("pay-1"),
                "FAILED": PaymentFailed(retryable=False),
            }
            reply = answers.get(status, PaymentVoided("pay-1"))
        case VoidPayment():
            marker = True
            status = "VOIDED" if status == "SUCCEEDED" else status
            reply = PaymentVoided("pay-1" if status == "VOIDED" else "")
        case RefundPayment() if status in ("SUCCEEDED", "REFUNDED"):
            status, reply = "REFUNDED", PaymentRefunded("pay-1")
    assert reply is not None, command
    return replace(
        world, to_payment=rest, payment=status, void_marker=marker, from_payment=(*world.from_payment, reply)
    )


def _apply(world: World, event: domain.Event) -> World:
    now = world.saga.deadline_at if isinstance(event, DeadlinePassed) else NOW
    outcome = decide(world.saga, event, now or NOW)
    inventory = tuple(c for c in outcome.commands if isinstance(c, ReserveStock | CommitStock | ReleaseStock))
    payment = tuple(c for c in outcome.commands if c not in inventory)
    return replace(
        world,
        saga=outcome.saga,
        to_inventory=(*world.to_inventory, *inventory),
        to_payment=(*world.to_payment, *payment),
    )


def _next(world: World, in_stock: bool, accepted: bool) -> list[World]:
    following = []
    if world.to_inventory:
        following.append(_inventory(world, in_stock))
    if world.to_payment:
        following.append(_payment(world, accepted))
    if world.from_inventory:
        following.append(
            _apply(replace(world, from_inventory=world.from_inventory[1:]), world.from_inventory[0])
        )
    if world.from_payment:
        following.append(_apply(replace(world, from_payment=world.from_payment[1:]), world.from_payment[0]))
    if world.cancel_left and world.saga.status is not Status.CANCELLED:
        following.append(_apply(replace(world, cancel_left=False), CancelRequested(by="owner")))
    if world.expiry_left and world.stock == "RESERVED":
        expired = replace(world, stock="EXPIRED", expiry_left=False)
        following.append(replace(expired, from_inventory=(*world.from_inventory, ReservationExpired())))
    if world.deadline_left and world.saga.step is not None:
        following.append(_apply(replace(world, deadline_left=False), DeadlinePassed()))
    return following


def _outcomes(in_stock: bool, accepted: bool) -> set[World]:
    start = World(pending(), to_inventory=(ReserveStock(),), to_payment=(AuthorizePayment(),))
    seen, frontier, quiet = {start}, [start], set()
    while frontier:
        world = frontier.pop()
        following = _next(world, in_stock, accepted)
        if not (world.to_inventory or world.to_payment or world.from_inventory or world.from_payment):
            quiet.add(world)
        for new in following:
            if new not in seen:
                seen.add(new)
                frontier.append(new)
    return quiet


@pytest.mark.parametrize(("in_stock", "accepted"), list(itertools.product([True, False], repeat=2)))
def test_in_every_order_of_delivery_nothing_stays_held_or_charged_for_a_cancelled_order(in_stock, accepted):
    quiet = _outcomes(in_stock, accepted)

    statuses = set()
    for world in quiet:
        saga = world.saga
        if saga.step is not None:
            continue  # a step still waits for its deadline (which the exploration used up)
        statuses.add(saga.status)
        if saga.status is Status.CONFIRMED:
            assert (world.stock, world.payment) == ("COMMITTED", "SUCCEEDED"), world
        else:
            assert saga.status is Status.CANCELLED, world
            assert world.stock not in ("RESERVED", "COMMITTED"), world
            assert world.payment != "SUCCEEDED", world
            assert Compensation.VOID_PAYMENT not in saga.pending
    # Confirmed only when both succeed; every combination can be cancelled.
    assert (Status.CONFIRMED in statuses) == (in_stock and accepted)
    assert Status.CANCELLED in statuses
