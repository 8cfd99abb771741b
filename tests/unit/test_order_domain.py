"""The order saga's decisions, one by one and over whole runs: every transition, every
compensation, and every late, duplicate or out-of-order reply."""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from order import domain
from order.domain import (
    AuthorizePayment,
    CancellationReason,
    CancelRequested,
    CommitStock,
    Compensation,
    DeadlinePassed,
    DeliverRequested,
    HistoryEntry,
    IllegalTransition,
    PaymentFailed,
    PaymentRefunded,
    PaymentSucceeded,
    PaymentVoided,
    RefundPayment,
    ReleaseStock,
    ReservationExpired,
    ReserveStock,
    Saga,
    ShipRequested,
    Status,
    Step,
    StockCommitted,
    StockRejected,
    StockReleased,
    StockReserved,
    VoidPayment,
)

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
POLICY = domain.Policy(
    step_deadline=timedelta(seconds=10), retry_budget=2, payment_retry_delay=timedelta(seconds=1)
)
LATER = NOW + timedelta(seconds=11)

REPLIES = [
    StockReserved(),
    StockRejected("p1 (insufficient stock)"),
    StockReleased(),
    StockCommitted(),
    ReservationExpired(),
    PaymentSucceeded("pay-1"),
    PaymentFailed(retryable=False, detail="declined"),
    PaymentFailed(retryable=True, detail="provider unavailable"),
    PaymentVoided("pay-1"),
    PaymentRefunded("pay-1"),
]
MANUAL = [CancelRequested(by="owner"), ShipRequested(by="admin"), DeliverRequested(by="admin")]


def decide(saga: Saga, event: domain.Event, now: datetime = NOW) -> domain.Outcome:
    return domain.decide(saga, event, now, POLICY)


def pending() -> Saga:
    return domain.place(NOW, POLICY).saga


def awaiting_payment() -> Saga:
    return decide(pending(), StockReserved()).saga


def committing() -> Saga:
    return decide(awaiting_payment(), PaymentSucceeded("pay-1")).saga


def confirmed() -> Saga:
    return decide(committing(), StockCommitted()).saga


def shipped() -> Saga:
    return decide(confirmed(), ShipRequested(by="admin")).saga


def delivered() -> Saga:
    return decide(shipped(), DeliverRequested(by="admin")).saga


def cancelled_from(saga: Saga) -> Saga:
    return decide(saga, CancelRequested(by="owner")).saga


def settled_cancelled(saga: Saga) -> Saga:
    """Cancelled with every compensation answered."""
    saga = cancelled_from(saga)
    for event in (StockReleased(), PaymentVoided("pay-1"), PaymentRefunded("pay-1")):
        saga = decide(saga, event).saga
    assert saga.step is None
    return saga


def run(events: list[domain.Event], start: Saga | None = None) -> tuple[Saga, list, list]:
    """Feed a sequence of events; returns the final state, every command and history entry."""
    saga = start or pending()
    commands: list = [ReserveStock()] if start is None else []
    history: list = [HistoryEntry(Status.PENDING, "order placed")] if start is None else []
    for event in events:
        outcome = decide(saga, event)
        saga = outcome.saga
        commands.extend(outcome.commands)
        history.extend(outcome.history)
    return saga, commands, history


# -- the happy path ------------------------------------------------------------------------------


def test_placing_an_order_makes_it_pending_and_reserves_stock():
    outcome = domain.place(NOW, POLICY)

    assert outcome.saga == Saga(
        status=Status.PENDING, step=Step.RESERVE_STOCK, attempts=1, deadline_at=NOW + POLICY.step_deadline
    )
    assert outcome.commands == (ReserveStock(),)
    assert outcome.history == (HistoryEntry(Status.PENDING, "order placed"),)


def test_stock_reserved_moves_to_awaiting_payment_and_authorizes_the_payment():
    outcome = decide(pending(), StockReserved())

    assert outcome.saga.status is Status.AWAITING_PAYMENT
    assert outcome.saga.step is Step.AUTHORIZE_PAYMENT
    assert outcome.saga.attempts == 1
    assert outcome.saga.deadline_at == NOW + POLICY.step_deadline
    assert outcome.commands == (AuthorizePayment(),)
    assert outcome.history == (HistoryEntry(Status.AWAITING_PAYMENT, "stock reserved"),)


def test_payment_succeeded_commits_the_stock_without_confirming_yet():
    outcome = decide(awaiting_payment(), PaymentSucceeded("pay-1"))

    assert outcome.saga.status is Status.AWAITING_PAYMENT
    assert outcome.saga.step is Step.COMMIT_STOCK
    assert outcome.saga.payment_id == "pay-1"
    assert outcome.commands == (CommitStock(),)
    assert outcome.history == ()


def test_stock_committed_confirms_the_order_and_ends_the_saga():
    outcome = decide(committing(), StockCommitted())

    assert outcome.saga == Saga(status=Status.CONFIRMED, payment_id="pay-1")
    assert outcome.commands == ()
    assert outcome.history == (HistoryEntry(Status.CONFIRMED, "payment succeeded and stock committed"),)


def test_the_whole_happy_path_has_the_history_pending_awaiting_payment_confirmed():
    saga, commands, history = run([StockReserved(), PaymentSucceeded("pay-1"), StockCommitted()])

    assert saga.status is Status.CONFIRMED
    assert commands == [ReserveStock(), AuthorizePayment(), CommitStock()]
    assert [h.status for h in history] == [Status.PENDING, Status.AWAITING_PAYMENT, Status.CONFIRMED]


def test_a_confirmed_order_is_shipped_then_delivered_by_an_admin():
    ship = decide(confirmed(), ShipRequested(by="admin-1"))
    deliver = decide(ship.saga, DeliverRequested(by="admin-1"))

    assert ship.saga.status is Status.SHIPPED
    assert ship.history == (HistoryEntry(Status.SHIPPED, "shipped", "admin-1"),)
    assert deliver.saga.status is Status.DELIVERED
    assert deliver.history == (HistoryEntry(Status.DELIVERED, "delivered", "admin-1"),)
    assert ship.commands == deliver.commands == ()


# -- failures and compensations -------------------------------------------------------------------------


def test_stock_rejected_cancels_as_out_of_stock_with_nothing_to_compensate():
    outcome = decide(pending(), StockRejected("p1 (insufficient stock)"))

    assert outcome.saga == Saga(status=Status.CANCELLED, cancellation_reason=CancellationReason.OUT_OF_STOCK)
    assert outcome.commands == ()
    assert outcome.history == (HistoryEntry(Status.CANCELLED, "out of stock: p1 (insufficient stock)"),)


def test_a_declined_payment_cancels_and_releases_the_stock():
    outcome = decide(
        awaiting_payment(), PaymentFailed(retryable=False, detail="declined", payment_id="pay-9")
    )

    assert outcome.saga.status is Status.CANCELLED
    assert outcome.saga.cancellation_reason is CancellationReason.PAYMENT_DECLINED
    assert outcome.saga.step is Step.COMPENSATE
    assert outcome.saga.pending == {Compensation.RELEASE_STOCK}
    assert outcome.saga.payment_id == "pay-9"
    assert outcome.commands == (ReleaseStock("payment declined: declined"),)
    assert outcome.history == (HistoryEntry(Status.CANCELLED, "payment declined: declined"),)


def test_the_stock_release_ends_the_compensation():
    declined = decide(awaiting_payment(), PaymentFailed(retryable=False)).saga

    outcome = decide(declined, StockReleased())

    assert outcome.saga.step is None
    assert outcome.saga.pending == frozenset()
    assert outcome.saga.deadline_at is None
    assert outcome.saga.status is Status.CANCELLED
    assert outcome.commands == outcome.history == ()


def test_a_retryable_payment_failure_waits_and_the_timer_sends_the_payment_again():
    failed = decide(awaiting_payment(), PaymentFailed(retryable=True))

    assert failed.saga.status is Status.AWAITING_PAYMENT
    assert failed.saga.deadline_at == NOW + POLICY.payment_retry_delay
    assert failed.commands == failed.history == ()

    resent = decide(failed.saga, DeadlinePassed(), NOW + POLICY.payment_retry_delay)
    assert resent.commands == (AuthorizePayment(),)
    assert resent.saga.attempts == 2


def test_the_pause_after_retryable_failures_doubles():
    saga = awaiting_payment()
    saga = decide(decide(saga, PaymentFailed(retryable=True)).saga, DeadlinePassed(), LATER).saga

    outcome = decide(saga, PaymentFailed(retryable=True), LATER)

    assert outcome.saga.deadline_at == LATER + 2 * POLICY.payment_retry_delay


def test_retryable_failures_past_the_budget_cancel_as_payment_unavailable_and_void():
    saga = awaiting_payment()
    for _ in range(POLICY.retry_budget):
        saga = decide(saga, PaymentFailed(retryable=True)).saga
        saga = decide(saga, DeadlinePassed(), saga.deadline_at).saga  # type: ignore[arg-type]
    assert saga.attempts == POLICY.max_sends

    outcome = decide(saga, PaymentFailed(retryable=True))

    assert outcome.saga.cancellation_reason is CancellationReason.PAYMENT_UNAVAILABLE
    assert outcome.saga.pending == {Compensation.RELEASE_STOCK, Compensation.VOID_PAYMENT}
    reason = f"payment unavailable after {POLICY.max_sends} attempts"
    assert outcome.commands == (ReleaseStock(reason), VoidPayment(reason))


def test_a_reservation_expiring_before_payment_cancels_as_expired_and_voids():
    outcome = decide(awaiting_payment(), ReservationExpired())

    assert outcome.saga.cancellation_reason is CancellationReason.EXPIRED
    assert outcome.saga.pending == {Compensation.VOID_PAYMENT}
    assert outcome.commands == (VoidPayment("stock reservation expired before payment"),)


@pytest.mark.parametrize("answer", [ReservationExpired(), StockReleased()])
def test_commit_answered_with_an_expired_reservation_cancels_and_voids_the_payment(answer):
    outcome = decide(committing(), answer)

    assert outcome.saga.status is Status.CANCELLED
    assert outcome.saga.cancellation_reason is CancellationReason.EXPIRED
    assert outcome.saga.pending == {Compensation.VOID_PAYMENT}
    assert outcome.commands == (VoidPayment("stock reservation expired before it was committed"),)
    assert outcome.saga.payment_id == "pay-1"


def test_an_expiry_reported_while_reserving_cancels_with_nothing_to_release():
    outcome = decide(pending(), ReservationExpired())

    assert outcome.saga == Saga(status=Status.CANCELLED, cancellation_reason=CancellationReason.EXPIRED)
    assert outcome.commands == ()


# -- deadlines ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "command"),
    [(pending, ReserveStock()), (awaiting_payment, AuthorizePayment()), (committing, CommitStock())],
)
def test_a_passed_deadline_resends_the_step_command(state, command):
    outcome = decide(state(), DeadlinePassed(), LATER)

    assert outcome.commands == (command,)
    assert outcome.saga.attempts == 2
    assert outcome.saga.deadline_at == LATER + POLICY.step_deadline
    assert outcome.saga.status is state().status
    assert outcome.history == ()


@pytest.mark.parametrize("state", [pending, awaiting_payment, committing, lambda: cancelled_from(pending())])
def test_a_deadline_not_yet_passed_changes_nothing(state):
    saga = state()

    outcome = decide(saga, DeadlinePassed(), saga.deadline_at - timedelta(seconds=1))

    assert outcome.saga == saga
    assert outcome.commands == ()
    assert outcome.ignored


@pytest.mark.parametrize("state", [confirmed, shipped, delivered, lambda: settled_cancelled(pending())])
def test_a_deadline_tick_on_a_settled_order_changes_nothing(state):
    outcome = decide(state(), DeadlinePassed(), LATER)

    assert outcome.saga == state()
    assert outcome.commands == outcome.history == ()


def exhaust(saga: Saga) -> Saga:
    now = NOW
    while saga.attempts < POLICY.max_sends:
        now = saga.deadline_at  # type: ignore[assignment]
        saga = decide(saga, DeadlinePassed(), now).saga
    return saga


@pytest.mark.parametrize(
    ("state", "reason", "compensations"),
    [
        (pending, CancellationReason.INVENTORY_UNAVAILABLE, {Compensation.RELEASE_STOCK}),
        (
            awaiting_payment,
            CancellationReason.PAYMENT_UNAVAILABLE,
            {Compensation.RELEASE_STOCK, Compensation.VOID_PAYMENT},
        ),
        (
            committing,
            CancellationReason.INVENTORY_UNAVAILABLE,
            {Compensation.RELEASE_STOCK, Compensation.VOID_PAYMENT},
        ),
    ],
)
def test_past_the_retry_budget_a_step_compensates(state, reason, compensations):
    saga = exhaust(state())
    assert saga.attempts == POLICY.max_sends

    outcome = decide(saga, DeadlinePassed(), saga.deadline_at)  # type: ignore[arg-type]

    assert outcome.saga.status is Status.CANCELLED
    assert outcome.saga.cancellation_reason is reason
    assert outcome.saga.pending == compensations
    assert outcome.saga.step is Step.COMPENSATE
    assert {type(c) for c in outcome.commands} == {
        {Compensation.RELEASE_STOCK: ReleaseStock, Compensation.VOID_PAYMENT: VoidPayment}[c]
        for c in compensations
    }
    assert [h.status for h in outcome.history] == [Status.CANCELLED]


def test_unanswered_compensations_are_resent_with_a_growing_pause_and_never_abandoned():
    saga = cancelled_from(awaiting_payment())
    pauses = []
    for _ in range(8):
        now = saga.deadline_at
        outcome = decide(saga, DeadlinePassed(), now)  # type: ignore[arg-type]
        assert outcome.commands == (
            ReleaseStock("order cancelled (CUSTOMER_CANCELLED)"),
            VoidPayment("order cancelled (CUSTOMER_CANCELLED)"),
        )
        saga = outcome.saga
        pauses.append(saga.deadline_at - now)  # type: ignore[operator]

    step = POLICY.step_deadline
    assert pauses == [2 * step, 4 * step, 8 * step, 8 * step, 8 * step, 8 * step, 8 * step, 8 * step]
    assert saga.status is Status.CANCELLED
    assert saga.step is Step.COMPENSATE


def test_only_the_compensations_still_pending_are_resent():
    saga = decide(cancelled_from(awaiting_payment()), PaymentVoided("pay-1")).saga

    outcome = decide(saga, DeadlinePassed(), saga.deadline_at)  # type: ignore[arg-type]

    assert outcome.commands == (ReleaseStock("order cancelled (CUSTOMER_CANCELLED)"),)


# -- cancelling --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "compensations"),
    [
        (pending, {Compensation.RELEASE_STOCK}),
        (awaiting_payment, {Compensation.RELEASE_STOCK, Compensation.VOID_PAYMENT}),
        (committing, {Compensation.RELEASE_STOCK, Compensation.VOID_PAYMENT}),
        (confirmed, {Compensation.RELEASE_STOCK, Compensation.REFUND_PAYMENT}),
    ],
)
def test_cancelling_compensates_what_the_order_holds(state, compensations):
    outcome = decide(state(), CancelRequested(by="acc-1", note="changed my mind"))

    assert outcome.saga.status is Status.CANCELLED
    assert outcome.saga.cancellation_reason is CancellationReason.CUSTOMER_CANCELLED
    assert outcome.saga.pending == compensations
    text = "cancelled by the customer: changed my mind"
    expected = {
        Compensation.RELEASE_STOCK: ReleaseStock(text),
        Compensation.VOID_PAYMENT: VoidPayment(text),
        Compensation.REFUND_PAYMENT: RefundPayment(text),
    }
    assert set(outcome.commands) == {expected[c] for c in compensations}
    assert outcome.history == (HistoryEntry(Status.CANCELLED, text, "acc-1"),)


def test_an_admin_cancelling_someone_elses_order_is_recorded_as_such():
    outcome = decide(confirmed(), CancelRequested(by="admin-1", by_owner=False))

    assert outcome.saga.cancellation_reason is CancellationReason.ADMIN_CANCELLED
    assert outcome.history == (HistoryEntry(Status.CANCELLED, "cancelled by an administrator", "admin-1"),)


@pytest.mark.parametrize("state", [shipped, delivered])
def test_a_shipped_or_delivered_order_cannot_be_cancelled(state):
    with pytest.raises(IllegalTransition) as raised:
        decide(state(), CancelRequested(by="acc-1"))

    assert raised.value.status is state().status


def test_cancelling_a_cancelled_order_changes_nothing():
    saga = cancelled_from(pending())

    outcome = decide(saga, CancelRequested(by="acc-1"))

    assert outcome.saga == saga
    assert outcome.commands == outcome.history == ()


def test_refund_after_cancelling_a_confirmed_order_ends_the_compensation_once_both_are_answered():
    saga = cancelled_from(confirmed())

    refunded = decide(saga, PaymentRefunded("pay-1"))
    released = decide(refunded.saga, StockReleased())

    assert refunded.saga.pending == {Compensation.RELEASE_STOCK}
    assert refunded.saga.step is Step.COMPENSATE
    assert released.saga.step is None
    assert released.saga.status is Status.CANCELLED
    assert refunded.commands == released.commands == ()


def test_an_expiry_reported_for_a_cancelled_order_counts_as_its_stock_release():
    saga = cancelled_from(awaiting_payment())

    outcome = decide(saga, ReservationExpired())

    assert outcome.saga.pending == {Compensation.VOID_PAYMENT}


# -- manual transitions from the wrong status ----------------------------------------------------------------

ALL_STATES = {
    "pending": pending,
    "awaiting_payment": awaiting_payment,
    "committing": committing,
    "confirmed": confirmed,
    "shipped": shipped,
    "delivered": delivered,
    "cancelled_compensating": lambda: cancelled_from(awaiting_payment()),
    "cancelled_settled": lambda: settled_cancelled(confirmed()),
    "out_of_stock": lambda: decide(pending(), StockRejected()).saga,
}


@pytest.mark.parametrize("name", sorted(set(ALL_STATES) - {"confirmed", "shipped"}))
def test_shipping_is_allowed_only_from_confirmed(name):
    with pytest.raises(IllegalTransition):
        decide(ALL_STATES[name](), ShipRequested(by="admin"))


@pytest.mark.parametrize("name", sorted(set(ALL_STATES) - {"shipped", "delivered"}))
def test_delivering_is_allowed_only_from_shipped(name):
    with pytest.raises(IllegalTransition):
        decide(ALL_STATES[name](), DeliverRequested(by="admin"))


def test_shipping_a_shipped_order_and_delivering_a_delivered_one_change_nothing():
    assert decide(shipped(), ShipRequested(by="admin")).saga == shipped()
    assert decide(delivered(), DeliverRequested(by="admin")).saga == delivered()
    assert decide(shipped(), ShipRequested(by="admin")).history == ()


# -- late, duplicate and out-of-order replies ----------------------------------------------------------------

# The replies each state acts on; every other reply must change nothing.
ACTED_ON = {
    "pending": {"StockReserved", "StockRejected", "ReservationExpired"},
    "awaiting_payment": {"PaymentSucceeded", "PaymentFailed", "ReservationExpired"},
    "committing": {"StockCommitted", "ReservationExpired", "StockReleased"},
    "confirmed": set(),
    "shipped": set(),
    "delivered": set(),
    # Pending: release and void (answered by StockReleased / ReservationExpired and PaymentVoided).
    "cancelled_compensating": {"StockReleased", "ReservationExpired", "PaymentVoided"},
    "cancelled_settled": set(),
    # A charge nobody asked for on a cancelled order is voided.
    "out_of_stock": {"PaymentSucceeded"},
}


@pytest.mark.parametrize(
    ("name", "reply"), list(itertools.product(sorted(ALL_STATES), REPLIES)), ids=lambda v: str(v)[:40]
)
def test_every_reply_a_state_does_not_wait_for_changes_nothing(name, reply):
    saga = ALL_STATES[name]()

    outcome = decide(saga, reply)

    if type(reply).__name__ in ACTED_ON[name]:
        assert outcome.saga != saga or outcome.commands, f"{name} should act on {reply}"
        assert not outcome.ignored
    else:
        assert outcome.saga == saga
        assert outcome.commands == outcome.history == ()
        assert outcome.ignored


@pytest.mark.parametrize("name", sorted(ALL_STATES))
@pytest.mark.parametrize("reply", REPLIES, ids=lambda v: type(v).__name__)
def test_a_reply_delivered_twice_changes_nothing_the_second_time(name, reply):
    first = decide(ALL_STATES[name](), reply)

    second = decide(first.saga, reply)

    assert second.saga == first.saga
    assert second.commands == second.history == ()


def test_duplicate_replies_along_the_whole_saga_give_the_same_result_as_single_ones():
    replies = [StockReserved(), PaymentSucceeded("pay-1"), StockCommitted()]
    doubled = [r for reply in replies for r in (reply, reply)]

    single = run(replies)
    twice = run(doubled)

    assert twice == single


def test_a_reply_overtaken_by_the_next_step_is_ignored():
    saga, commands, history = run(
        [
            StockReserved(),
            PaymentSucceeded("pay-1"),
            StockReserved(),
            PaymentSucceeded("pay-1"),
            StockCommitted(),
        ]
    )

    assert saga.status is Status.CONFIRMED
    assert commands == [ReserveStock(), AuthorizePayment(), CommitStock()]
    assert [h.status for h in history] == [Status.PENDING, Status.AWAITING_PAYMENT, Status.CONFIRMED]


def test_a_payment_reply_arriving_before_the_stock_reply_is_ignored():
    saga, commands, _ = run([PaymentSucceeded("pay-1"), StockReserved()])

    assert saga.status is Status.AWAITING_PAYMENT
    assert saga.step is Step.AUTHORIZE_PAYMENT
    assert commands == [ReserveStock(), AuthorizePayment()]


def test_a_late_success_after_a_failure_is_ignored_once_the_order_is_cancelled_and_released():
    saga, commands, _ = run(
        [
            StockReserved(),
            PaymentFailed(retryable=False, payment_id="pay-1"),
            StockReleased(),
            PaymentSucceeded("pay-1"),
        ]
    )

    # The payment is known (it failed); nothing more is sent.
    assert saga == Saga(
        status=Status.CANCELLED, cancellation_reason=CancellationReason.PAYMENT_DECLINED, payment_id="pay-1"
    )
    assert commands == [ReserveStock(), AuthorizePayment(), ReleaseStock("payment declined")]


def test_a_charge_reported_for_an_order_that_never_asked_for_one_is_voided():
    out_of_stock = decide(pending(), StockRejected()).saga

    outcome = decide(out_of_stock, PaymentSucceeded("pay-7"))
    voided = decide(outcome.saga, PaymentVoided("pay-7"))

    assert outcome.commands == (VoidPayment("payment succeeded after the order was cancelled"),)
    assert outcome.saga.pending == {Compensation.VOID_PAYMENT}
    assert outcome.saga.deadline_at == NOW + POLICY.step_deadline
    assert voided.saga.step is None
    assert voided.saga.status is Status.CANCELLED


def test_a_late_success_for_an_order_cancelled_while_paying_is_left_to_the_void_already_sent():
    saga = cancelled_from(awaiting_payment())

    outcome = decide(saga, PaymentSucceeded("pay-1"))

    assert outcome.saga == saga
    assert outcome.commands == ()


def test_a_late_stock_reservation_for_a_cancelled_order_is_left_to_the_release_already_sent():
    saga = cancelled_from(pending())

    outcome = decide(saga, StockReserved())

    assert outcome.saga == saga
    assert outcome.commands == ()


def test_an_admin_refund_of_a_confirmed_order_does_not_change_the_order():
    outcome = decide(confirmed(), PaymentRefunded("pay-1"))

    assert outcome.saga == confirmed()
    assert outcome.ignored


# -- invariants over every reachable state and every event -------------------------------------------------


def reachable_states(depth: int = 5) -> set[Saga]:
    """Every state reachable from a new order by up to `depth` events, with deadlines allowed to pass."""
    events = [*REPLIES, *MANUAL, CancelRequested(by="admin", by_owner=False), DeadlinePassed()]
    seen = {pending()}
    frontier = {pending()}
    for _ in range(depth):
        following = set()
        for saga in frontier:
            for event in events:
                now = saga.deadline_at if isinstance(event, DeadlinePassed) and saga.deadline_at else NOW
                try:
                    following.add(decide(saga, event, now).saga)
                except IllegalTransition:
                    continue
        frontier = following - seen
        seen |= following
    return seen


STATES = sorted(reachable_states(), key=repr)


def test_the_reachable_states_cover_every_status_and_step():
    assert {s.status for s in STATES} == set(Status)
    assert {s.step for s in STATES} == {*Step, None}


@pytest.mark.parametrize("event", [*REPLIES, *MANUAL, DeadlinePassed()], ids=lambda e: type(e).__name__)
def test_invariants_hold_for_every_reachable_state(event):
    for saga in STATES:
        now = saga.deadline_at if isinstance(event, DeadlinePassed) and saga.deadline_at else NOW
        try:
            outcome = decide(saga, event, now)
        except IllegalTransition:
            assert isinstance(event, (CancelRequested, ShipRequested, DeliverRequested))
            continue
        new = outcome.saga
        # A saga in flight always has a deadline; a settled one has none.
        assert (new.step is None) == (new.deadline_at is None), (saga, event)
        # Compensations are pending only while compensating, and only for cancelled orders.
        assert bool(new.pending) == (new.step is Step.COMPENSATE), (saga, event)
        assert (new.status is Status.CANCELLED) == (new.cancellation_reason is not None)
        # A cancelled order stays cancelled; nothing comes back from SHIPPED or DELIVERED but forward.
        if saga.status is Status.CANCELLED:
            assert new.status is Status.CANCELLED
        if saga.status is Status.DELIVERED:
            assert new == saga
        # One status change at most, and its history entry names the status entered.
        assert len(outcome.history) <= 1
        if outcome.history:
            assert outcome.history[0].status is new.status != saga.status
        else:
            assert new.status is saga.status
        # Forward commands only from forward steps; a payment is never refunded and voided at once.
        kinds = {type(c) for c in outcome.commands}
        if new.status is Status.CANCELLED:
            assert not kinds & {ReserveStock, AuthorizePayment, CommitStock}
        assert not {RefundPayment, VoidPayment} <= kinds


def test_a_payment_is_refunded_only_for_an_order_that_was_confirmed():
    for saga in STATES:
        for event in [*REPLIES, *MANUAL, DeadlinePassed()]:
            now = saga.deadline_at if isinstance(event, DeadlinePassed) and saga.deadline_at else NOW
            try:
                outcome = decide(saga, event, now)
            except IllegalTransition:
                continue
            if any(isinstance(c, RefundPayment) for c in outcome.commands):
                assert saga.status is Status.CONFIRMED or Compensation.REFUND_PAYMENT in saga.pending


def test_the_payment_id_once_known_is_kept():
    saga = replace(committing(), payment_id="pay-1")
    for event in [CancelRequested(by="x"), StockReleased(), PaymentVoided("")]:
        saga = decide(saga, event).saga
    assert saga.payment_id == "pay-1"
