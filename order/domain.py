"""The order saga as pure functions: `decide(saga, event, now, policy) -> Outcome`.

No I/O here. The caller loads the saga state of one order under a row lock, feeds it one
event (a reply from inventory or payment, a passed deadline, or a manual request), and
persists what comes back: the new state, the commands to send through the outbox, and the
history entries (the audit trail) of the status transitions made.

    PENDING ──ReserveStock + AuthorizePayment──► (both answered, in either order)
      │  StockReserved first ─► AWAITING_PAYMENT (the stock is held, the payment outstanding)
      ▼
    (reserved and paid) ──CommitStock──► (StockCommitted) CONFIRMED -> SHIPPED -> DELIVERED

Reserving the stock and authorising the payment are independent (an authorisation is
voidable), so both commands go out when the order is placed and the saga waits for both
answers in one step, RESERVE_AND_AUTHORIZE, remembering which have arrived (`awaiting`). An
order is CONFIRMED only once it is paid *and* its stock is committed, so a reservation that
expires while the payment is being taken can still cancel it (and void the payment).

Every forward step has a deadline: when it passes, the commands still unanswered are sent
again (every participant is idempotent by order id), and once the step's retry budget is
spent the saga cancels the order and compensates. Compensations (release the stock, void
or refund the payment) are re-sent until they are answered; they are never abandoned. A
cancellation during RESERVE_AND_AUTHORIZE always releases *and* voids: either command may
still be on its way, and both participants remember a compensation that arrives before the
command it undoes (a later ReserveStock holds nothing, a later AuthorizePayment charges
nothing). A reservation or a charge reported after the order was cancelled is compensated.

Replies are matched to the step the saga is in, not to one command: a late, duplicate or
out-of-order reply for another step changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum


class Status(StrEnum):
    PENDING = "PENDING"
    AWAITING_PAYMENT = "AWAITING_PAYMENT"
    CONFIRMED = "CONFIRMED"
    SHIPPED = "SHIPPED"
    DELIVERED = "DELIVERED"
    CANCELLED = "CANCELLED"


class CancellationReason(StrEnum):
    OUT_OF_STOCK = "OUT_OF_STOCK"
    PAYMENT_DECLINED = "PAYMENT_DECLINED"
    PAYMENT_UNAVAILABLE = "PAYMENT_UNAVAILABLE"
    EXPIRED = "EXPIRED"
    CUSTOMER_CANCELLED = "CUSTOMER_CANCELLED"
    ADMIN_CANCELLED = "ADMIN_CANCELLED"
    INVENTORY_UNAVAILABLE = "INVENTORY_UNAVAILABLE"


class Step(StrEnum):
    """What the saga waits for; None once it waits for nothing."""

    RESERVE_AND_AUTHORIZE = "RESERVE_AND_AUTHORIZE"
    COMMIT_STOCK = "COMMIT_STOCK"
    COMPENSATE = "COMPENSATE"


class Part(StrEnum):
    """The two commands of RESERVE_AND_AUTHORIZE, each answered on its own."""

    RESERVE_STOCK = "RESERVE_STOCK"
    AUTHORIZE_PAYMENT = "AUTHORIZE_PAYMENT"


class Compensation(StrEnum):
    RELEASE_STOCK = "RELEASE_STOCK"
    VOID_PAYMENT = "VOID_PAYMENT"
    REFUND_PAYMENT = "REFUND_PAYMENT"


# -- the saga state -------------------------------------------------------------------------


@dataclass(frozen=True)
class Saga:
    status: Status
    step: Step | None = None
    # Commands sent for the current step (the first send counts).
    attempts: int = 0
    deadline_at: datetime | None = None
    # Compensations sent and not yet answered (only while step is COMPENSATE).
    pending: frozenset[Compensation] = frozenset()
    # The commands of RESERVE_AND_AUTHORIZE not yet answered (only while in that step). A
    # payment that failed with a retryable error is still awaited: it is tried again.
    awaiting: frozenset[Part] = frozenset()
    cancellation_reason: CancellationReason | None = None
    payment_id: str = ""


@dataclass(frozen=True)
class Policy:
    """How patient the saga is; from the service's settings."""

    step_deadline: timedelta
    retry_budget: int
    payment_retry_delay: timedelta

    @property
    def max_sends(self) -> int:
        return 1 + self.retry_budget


# -- commands the saga sends ------------------------------------------------------------------


@dataclass(frozen=True)
class ReserveStock:
    pass


@dataclass(frozen=True)
class CommitStock:
    pass


@dataclass(frozen=True)
class ReleaseStock:
    reason: str


@dataclass(frozen=True)
class AuthorizePayment:
    pass


@dataclass(frozen=True)
class VoidPayment:
    reason: str


@dataclass(frozen=True)
class RefundPayment:
    reason: str


Command = ReserveStock | CommitStock | ReleaseStock | AuthorizePayment | VoidPayment | RefundPayment


# -- events the saga reacts to -----------------------------------------------------------------


@dataclass(frozen=True)
class StockReserved:
    pass


@dataclass(frozen=True)
class StockRejected:
    detail: str = ""


@dataclass(frozen=True)
class StockReleased:
    pass


@dataclass(frozen=True)
class StockCommitted:
    pass


@dataclass(frozen=True)
class ReservationExpired:
    pass


@dataclass(frozen=True)
class PaymentSucceeded:
    payment_id: str = ""


@dataclass(frozen=True)
class PaymentFailed:
    retryable: bool
    detail: str = ""
    payment_id: str = ""


@dataclass(frozen=True)
class PaymentVoided:
    payment_id: str = ""


@dataclass(frozen=True)
class PaymentRefunded:
    payment_id: str = ""


@dataclass(frozen=True)
class DeadlinePassed:
    """The saga timer found the step's deadline behind it."""


@dataclass(frozen=True)
class CancelRequested:
    by: str
    # False for an ADMIN cancelling someone else's order.
    by_owner: bool = True
    note: str = ""


@dataclass(frozen=True)
class ShipRequested:
    by: str


@dataclass(frozen=True)
class DeliverRequested:
    by: str


Event = (
    StockReserved
    | StockRejected
    | StockReleased
    | StockCommitted
    | ReservationExpired
    | PaymentSucceeded
    | PaymentFailed
    | PaymentVoided
    | PaymentRefunded
    | DeadlinePassed
    | CancelRequested
    | ShipRequested
    | DeliverRequested
)


# -- what a decision produces ---------------------------------------------------------------------


@dataclass(frozen=True)
class HistoryEntry:
    status: Status
    reason: str
    changed_by: str = ""


@dataclass(frozen=True)
class Outcome:
    saga: Saga
    commands: tuple[Command, ...] = ()
    history: tuple[HistoryEntry, ...] = ()
    # Why nothing happened, for the log; empty when the event was acted on.
    ignored: str = ""


class IllegalTransition(Exception):
    """A manual request the order's status forbids (shipping a cancelled order)."""

    def __init__(self, status: Status, action: str) -> None:
        super().__init__(f"a {status.value} order cannot be {action}")
        self.status = status
        self.action = action


# -- the decisions ---------------------------------------------------------------------------------


def place(now: datetime, policy: Policy) -> Outcome:
    """A new order: PENDING, reserving its stock and authorising its payment at once."""
    saga = Saga(
        status=Status.PENDING,
        step=Step.RESERVE_AND_AUTHORIZE,
        attempts=1,
        deadline_at=now + policy.step_deadline,
        awaiting=frozenset(Part),
    )
    return Outcome(
        saga, (ReserveStock(), AuthorizePayment()), (HistoryEntry(Status.PENDING, "order placed"),)
    )


def decide(saga: Saga, event: Event, now: datetime, policy: Policy) -> Outcome:
    """The saga's answer to one event. Raises IllegalTransition only for manual requests."""
    match event:
        case CancelRequested():
            return _cancel_requested(saga, event, now, policy)
        case ShipRequested():
            return _manual(saga, Status.CONFIRMED, Status.SHIPPED, "shipped", event.by)
        case DeliverRequested():
            return _manual(saga, Status.SHIPPED, Status.DELIVERED, "delivered", event.by)
        case DeadlinePassed():
            return _deadline_passed(saga, now, policy)
    if saga.step is Step.RESERVE_AND_AUTHORIZE:
        return _reserving_and_authorizing(saga, event, now, policy)
    if saga.step is Step.COMMIT_STOCK:
        return _committing(saga, event, now, policy)
    if saga.step is Step.COMPENSATE:
        return _compensating(saga, event, now, policy)
    return _settled(saga, event, now, policy)


def _ignore(saga: Saga, event: Event, why: str = "") -> Outcome:
    return Outcome(saga, ignored=why or f"{type(event).__name__} does not apply to step {saga.step}")


def _reserving_and_authorizing(saga: Saga, event: Event, now: datetime, policy: Policy) -> Outcome:
    match event:
        case StockReserved() if Part.RESERVE_STOCK in saga.awaiting:
            return _answered(saga, Part.RESERVE_STOCK, now, policy)
        case PaymentSucceeded() if Part.AUTHORIZE_PAYMENT in saga.awaiting:
            paid = replace(saga, payment_id=event.payment_id or saga.payment_id)
            return _answered(paid, Part.AUTHORIZE_PAYMENT, now, policy)
        case StockRejected() if Part.RESERVE_STOCK in saga.awaiting:
            # Nothing was reserved; the authorisation, made or still to come, is voided.
            detail = f"out of stock: {event.detail}" if event.detail else "out of stock"
            return _cancel(
                saga,
                CancellationReason.OUT_OF_STOCK,
                detail,
                now,
                policy,
                compensate=(Compensation.VOID_PAYMENT,),
            )
        case ReservationExpired():
            # Reserved and already expired (the payment was slow, or the answer lost): the
            # units are back, only the payment is undone.
            return _cancel(
                saga,
                CancellationReason.EXPIRED,
                "stock reservation expired before payment",
                now,
                policy,
                compensate=(Compensation.VOID_PAYMENT,),
            )
        case PaymentFailed(retryable=False) if Part.AUTHORIZE_PAYMENT in saga.awaiting:
            detail = f"payment declined: {event.detail}" if event.detail else "payment declined"
            # The charge did not happen; the stock, held or still to be, is given back.
            return _cancel(
                saga,
                CancellationReason.PAYMENT_DECLINED,
                detail,
                now,
                policy,
                compensate=(Compensation.RELEASE_STOCK,),
                payment_id=event.payment_id,
            )
        case PaymentFailed(retryable=True) if Part.AUTHORIZE_PAYMENT in saga.awaiting:
            if saga.attempts >= policy.max_sends:
                return _payment_unavailable(saga, now, policy)
            # Try again after a pause that grows with each attempt; the timer sends it (with
            # the reservation, if that is still unanswered too).
            delay = policy.payment_retry_delay * (2 ** (saga.attempts - 1))
            deadline = min(saga.deadline_at, now + delay) if saga.deadline_at else now + delay
            return Outcome(
                replace(saga, deadline_at=deadline, payment_id=event.payment_id or saga.payment_id)
            )
    return _ignore(saga, event)


def _answered(saga: Saga, part: Part, now: datetime, policy: Policy) -> Outcome:
    """One of the two commands answered OK: wait for the other, or commit once both are."""
    awaiting = saga.awaiting - {part}
    if awaiting == {Part.AUTHORIZE_PAYMENT}:
        new = replace(saga, awaiting=awaiting, status=Status.AWAITING_PAYMENT)
        return Outcome(new, (), (HistoryEntry(Status.AWAITING_PAYMENT, "stock reserved"),))
    if awaiting:
        # Paid; the reservation is still to be answered. The status stays PENDING.
        return Outcome(replace(saga, awaiting=awaiting))
    new = replace(
        saga,
        step=Step.COMMIT_STOCK,
        attempts=1,
        deadline_at=now + policy.step_deadline,
        awaiting=frozenset(),
    )
    return Outcome(new, (CommitStock(),))


def _committing(saga: Saga, event: Event, now: datetime, policy: Policy) -> Outcome:
    match event:
        case StockCommitted():
            new = replace(saga, status=Status.CONFIRMED, step=None, attempts=0, deadline_at=None)
            return Outcome(
                new,
                (),
                (HistoryEntry(Status.CONFIRMED, "payment succeeded and stock committed"),),
            )
        case ReservationExpired() | StockReleased():
            # CommitStock came too late: the units are no longer held, so the payment goes back.
            return _cancel(
                saga,
                CancellationReason.EXPIRED,
                "stock reservation expired before it was committed",
                now,
                policy,
                compensate=(Compensation.VOID_PAYMENT,),
            )
    return _ignore(saga, event)


def _compensating(saga: Saga, event: Event, now: datetime, policy: Policy) -> Outcome:
    answered: Compensation | None = None
    match event:
        case StockReleased() | ReservationExpired():
            answered = Compensation.RELEASE_STOCK
        case PaymentVoided():
            answered = Compensation.VOID_PAYMENT
        case PaymentRefunded():
            answered = Compensation.REFUND_PAYMENT
        case PaymentSucceeded() | StockReserved():
            return _late_hold(saga, event, now, policy)
    if answered is None or answered not in saga.pending:
        return _ignore(saga, event, f"{type(event).__name__} answers no pending compensation")
    pending = saga.pending - {answered}
    payment_id = saga.payment_id or getattr(event, "payment_id", "")
    if pending:
        return Outcome(replace(saga, pending=pending, payment_id=payment_id))
    return Outcome(
        replace(saga, step=None, attempts=0, deadline_at=None, pending=frozenset(), payment_id=payment_id)
    )


def _settled(saga: Saga, event: Event, now: datetime, policy: Policy) -> Outcome:
    """No step in flight: CONFIRMED, SHIPPED, DELIVERED, or a CANCELLED order fully compensated."""
    if saga.status is Status.CANCELLED and isinstance(event, PaymentSucceeded | StockReserved):
        return _late_hold(saga, event, now, policy)
    return _ignore(saga, event, f"{type(event).__name__} arrived after the saga settled ({saga.status})")


def _late_hold(saga: Saga, event: PaymentSucceeded | StockReserved, now: datetime, policy: Policy) -> Outcome:
    """A charge or a reservation reported for a cancelled order. One already being (or known to
    have been) undone is left to that; any other must not stay held, so it is undone."""
    needed: Compensation
    command: Command
    if isinstance(event, PaymentSucceeded):
        if saga.pending & {Compensation.VOID_PAYMENT, Compensation.REFUND_PAYMENT} or saga.payment_id:
            return _ignore(saga, event, "the payment of this cancelled order is already compensated")
        needed, command = (
            Compensation.VOID_PAYMENT,
            VoidPayment("payment succeeded after the order was cancelled"),
        )
        payment_id = event.payment_id
    else:
        if Compensation.RELEASE_STOCK in saga.pending:
            return _ignore(saga, event, "the stock of this cancelled order is already being released")
        # Releasing is idempotent: stock already given back is answered as released again.
        needed, command = (
            Compensation.RELEASE_STOCK,
            ReleaseStock("stock reserved after the order was cancelled"),
        )
        payment_id = saga.payment_id
    if saga.step is Step.COMPENSATE:
        new = replace(saga, pending=saga.pending | {needed}, payment_id=payment_id)
    else:
        new = replace(
            saga,
            step=Step.COMPENSATE,
            pending=frozenset({needed}),
            payment_id=payment_id,
            attempts=1,
            deadline_at=now + policy.step_deadline,
        )
    return Outcome(new, (command,))


def _deadline_passed(saga: Saga, now: datetime, policy: Policy) -> Outcome:
    if saga.step is None or saga.deadline_at is None or saga.deadline_at > now:
        return _ignore(saga, DeadlinePassed(), "no deadline has passed")
    if saga.step is Step.COMPENSATE:
        # Compensations are never given up; the pause grows to at most 8 deadlines.
        attempts = saga.attempts + 1
        pause = policy.step_deadline * min(2 ** (attempts - 1), 8)
        return Outcome(
            replace(saga, attempts=attempts, deadline_at=now + pause),
            _compensation_commands(saga.pending, _compensation_reason(saga)),
        )
    if saga.attempts >= policy.max_sends:
        if saga.step is Step.COMMIT_STOCK:
            return _cancel(
                saga,
                CancellationReason.INVENTORY_UNAVAILABLE,
                f"stock not committed after {saga.attempts} attempts",
                now,
                policy,
                compensate=(Compensation.RELEASE_STOCK, Compensation.VOID_PAYMENT),
            )
        if Part.RESERVE_STOCK in saga.awaiting:
            return _cancel(
                saga,
                CancellationReason.INVENTORY_UNAVAILABLE,
                f"no answer from inventory after {saga.attempts} attempts",
                now,
                policy,
                # It may have been reserved (and paid) with the answers lost.
                compensate=(Compensation.RELEASE_STOCK, Compensation.VOID_PAYMENT),
            )
        return _payment_unavailable(saga, now, policy)
    commands: tuple[Command, ...]
    if saga.step is Step.COMMIT_STOCK:
        commands = (CommitStock(),)
    else:
        # Only what is still unanswered, in the order of the first send.
        commands = tuple(
            command
            for part, command in (
                (Part.RESERVE_STOCK, ReserveStock()),
                (Part.AUTHORIZE_PAYMENT, AuthorizePayment()),
            )
            if part in saga.awaiting
        )
    return Outcome(
        replace(saga, attempts=saga.attempts + 1, deadline_at=now + policy.step_deadline), commands
    )


def _payment_unavailable(saga: Saga, now: datetime, policy: Policy) -> Outcome:
    # An attempt may still succeed late at the provider: void it along with releasing the stock.
    return _cancel(
        saga,
        CancellationReason.PAYMENT_UNAVAILABLE,
        f"payment unavailable after {saga.attempts} attempts",
        now,
        policy,
        compensate=(Compensation.RELEASE_STOCK, Compensation.VOID_PAYMENT),
    )


def _cancel_requested(saga: Saga, event: CancelRequested, now: datetime, policy: Policy) -> Outcome:
    if saga.status is Status.CANCELLED:
        return _ignore(saga, event, "already cancelled")
    if saga.status in (Status.SHIPPED, Status.DELIVERED):
        raise IllegalTransition(saga.status, "cancelled")
    if event.by_owner:
        reason, text = CancellationReason.CUSTOMER_CANCELLED, "cancelled by the customer"
    else:
        reason, text = CancellationReason.ADMIN_CANCELLED, "cancelled by an administrator"
    if event.note:
        text = f"{text}: {event.note}"
    compensate: tuple[Compensation, ...]
    if saga.status is Status.CONFIRMED:  # paid and committed
        compensate = (Compensation.RELEASE_STOCK, Compensation.REFUND_PAYMENT)
    else:
        # PENDING or AWAITING_PAYMENT: both commands went out with the order, and either may
        # still be under way; releasing and voiding are answered even when nothing is held.
        compensate = (Compensation.RELEASE_STOCK, Compensation.VOID_PAYMENT)
    return _cancel(saga, reason, text, now, policy, compensate=compensate, changed_by=event.by)


def _cancel(
    saga: Saga,
    reason: CancellationReason,
    text: str,
    now: datetime,
    policy: Policy,
    *,
    compensate: tuple[Compensation, ...],
    changed_by: str = "",
    payment_id: str = "",
) -> Outcome:
    pending = frozenset(compensate)
    new = replace(
        saga,
        status=Status.CANCELLED,
        cancellation_reason=reason,
        step=Step.COMPENSATE if pending else None,
        attempts=1 if pending else 0,
        deadline_at=now + policy.step_deadline if pending else None,
        pending=pending,
        awaiting=frozenset(),
        payment_id=saga.payment_id or payment_id,
    )
    return Outcome(
        new,
        _compensation_commands(pending, text),
        (HistoryEntry(Status.CANCELLED, text, changed_by),),
    )


def _compensation_commands(pending: frozenset[Compensation], reason: str) -> tuple[Command, ...]:
    commands: list[Command] = []
    # A fixed order, so that re-sends look like the first send.
    if Compensation.RELEASE_STOCK in pending:
        commands.append(ReleaseStock(reason))
    if Compensation.VOID_PAYMENT in pending:
        commands.append(VoidPayment(reason))
    if Compensation.REFUND_PAYMENT in pending:
        commands.append(RefundPayment(reason))
    return tuple(commands)


def _compensation_reason(saga: Saga) -> str:
    return f"order cancelled ({saga.cancellation_reason})" if saga.cancellation_reason else "order cancelled"


def _manual(saga: Saga, source: Status, target: Status, verb: str, by: str) -> Outcome:
    if saga.status is target:
        return Outcome(saga, ignored=f"already {target}")
    if saga.status is not source:
        raise IllegalTransition(saga.status, verb)
    return Outcome(replace(saga, status=target), (), (HistoryEntry(target, verb, by),))
