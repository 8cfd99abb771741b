"""The order saga as pure functions: `decide(saga, event, now, policy) -> Outcome`.

No I/O here. The caller loads the saga state of one order under a row lock, feeds it one
event (a reply from inventory or payment, a passed deadline, or a manual request), and
persists what comes back: the new state, the commands to send through the outbox, and the
history entries (the audit trail) of the status transitions made.

    PENDING --ReserveStock--> (StockReserved) AWAITING_PAYMENT --AuthorizePayment-->
      (PaymentSucceeded) --CommitStock--> (StockCommitted) CONFIRMED -> SHIPPED -> DELIVERED

An order is CONFIRMED only once it is paid *and* its stock is committed, so a reservation
that expires while the payment is being taken can still cancel it (and void the payment).
Every forward step has a deadline: when it passes without an answer the command is sent
again (every participant is idempotent by order id), and once the step's retry budget is
spent the saga cancels the order and compensates. Compensations (release the stock, void
or refund the payment) are re-sent until they are answered; they are never abandoned.

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

    RESERVE_STOCK = "RESERVE_STOCK"
    AUTHORIZE_PAYMENT = "AUTHORIZE_PAYMENT"
    COMMIT_STOCK = "COMMIT_STOCK"
    COMPENSATE = "COMPENSATE"


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
    """A new order: PENDING, and reserve its stock."""
    saga = Saga(
        status=Status.PENDING,
        step=Step.RESERVE_STOCK,
        attempts=1,
        deadline_at=now + policy.step_deadline,
    )
    return Outcome(saga, (ReserveStock(),), (HistoryEntry(Status.PENDING, "order placed"),))


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
    if saga.step is Step.RESERVE_STOCK:
        return _reserving(saga, event, now, policy)
    if saga.step is Step.AUTHORIZE_PAYMENT:
        return _authorizing(saga, event, now, policy)
    if saga.step is Step.COMMIT_STOCK:
        return _committing(saga, event, now, policy)
    if saga.step is Step.COMPENSATE:
        return _compensating(saga, event, now, policy)
    return _settled(saga, event, now, policy)


def _ignore(saga: Saga, event: Event, why: str = "") -> Outcome:
    return Outcome(saga, ignored=why or f"{type(event).__name__} does not apply to step {saga.step}")


def _advance(saga: Saga, step: Step, now: datetime, policy: Policy) -> Saga:
    """The next forward step, with its first command counted and its deadline set."""
    return replace(saga, step=step, attempts=1, deadline_at=now + policy.step_deadline)


def _reserving(saga: Saga, event: Event, now: datetime, policy: Policy) -> Outcome:
    match event:
        case StockReserved():
            new = replace(_advance(saga, Step.AUTHORIZE_PAYMENT, now, policy), status=Status.AWAITING_PAYMENT)
            return Outcome(
                new,
                (AuthorizePayment(),),
                (HistoryEntry(Status.AWAITING_PAYMENT, "stock reserved"),),
            )
        case StockRejected():
            # Nothing was reserved: there is nothing to compensate.
            detail = f"out of stock: {event.detail}" if event.detail else "out of stock"
            return _cancel(saga, CancellationReason.OUT_OF_STOCK, detail, now, policy, compensate=())
        case ReservationExpired():
            # Reserved and already expired (the reply was lost): the units are back.
            return _cancel(
                saga, CancellationReason.EXPIRED, "stock reservation expired", now, policy, compensate=()
            )
    return _ignore(saga, event)


def _authorizing(saga: Saga, event: Event, now: datetime, policy: Policy) -> Outcome:
    match event:
        case PaymentSucceeded():
            new = replace(
                _advance(saga, Step.COMMIT_STOCK, now, policy), payment_id=event.payment_id or saga.payment_id
            )
            return Outcome(new, (CommitStock(),))
        case PaymentFailed(retryable=False):
            detail = f"payment declined: {event.detail}" if event.detail else "payment declined"
            # The charge did not happen; only the stock is given back.
            return _cancel(
                saga,
                CancellationReason.PAYMENT_DECLINED,
                detail,
                now,
                policy,
                compensate=(Compensation.RELEASE_STOCK,),
                payment_id=event.payment_id,
            )
        case PaymentFailed(retryable=True):
            if saga.attempts >= policy.max_sends:
                return _payment_unavailable(saga, now, policy)
            # Try again after a pause that grows with each attempt; the timer sends it.
            delay = policy.payment_retry_delay * (2 ** (saga.attempts - 1))
            return Outcome(
                replace(saga, deadline_at=now + delay, payment_id=event.payment_id or saga.payment_id)
            )
        case ReservationExpired():
            return _cancel(
                saga,
                CancellationReason.EXPIRED,
                "stock reservation expired before payment",
                now,
                policy,
                compensate=(Compensation.VOID_PAYMENT,),
            )
    return _ignore(saga, event)


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
        case PaymentSucceeded():
            return _late_payment(saga, event, now, policy)
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
    if saga.status is Status.CANCELLED and isinstance(event, PaymentSucceeded):
        return _late_payment(saga, event, now, policy)
    return _ignore(saga, event, f"{type(event).__name__} arrived after the saga settled ({saga.status})")


def _late_payment(saga: Saga, event: PaymentSucceeded, now: datetime, policy: Policy) -> Outcome:
    """A charge reported for a cancelled order. A known payment is already being (or has been)
    paid back; an unknown one must not stay charged, so it is voided."""
    if saga.pending & {Compensation.VOID_PAYMENT, Compensation.REFUND_PAYMENT} or saga.payment_id:
        return _ignore(saga, event, "the payment of this cancelled order is already compensated")
    if saga.step is Step.COMPENSATE:
        new = replace(saga, pending=saga.pending | {Compensation.VOID_PAYMENT}, payment_id=event.payment_id)
    else:
        new = replace(
            saga,
            step=Step.COMPENSATE,
            pending=frozenset({Compensation.VOID_PAYMENT}),
            payment_id=event.payment_id,
            attempts=1,
            deadline_at=now + policy.step_deadline,
        )
    return Outcome(new, (VoidPayment("payment succeeded after the order was cancelled"),))


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
        if saga.step is Step.RESERVE_STOCK:
            return _cancel(
                saga,
                CancellationReason.INVENTORY_UNAVAILABLE,
                f"no answer from inventory after {saga.attempts} attempts",
                now,
                policy,
                # It may have been reserved with the answer lost.
                compensate=(Compensation.RELEASE_STOCK,),
            )
        if saga.step is Step.AUTHORIZE_PAYMENT:
            return _payment_unavailable(saga, now, policy)
        return _cancel(
            saga,
            CancellationReason.INVENTORY_UNAVAILABLE,
            f"stock not committed after {saga.attempts} attempts",
            now,
            policy,
            compensate=(Compensation.RELEASE_STOCK, Compensation.VOID_PAYMENT),
        )
    resend: dict[Step, Command] = {
        Step.RESERVE_STOCK: ReserveStock(),
        Step.AUTHORIZE_PAYMENT: AuthorizePayment(),
        Step.COMMIT_STOCK: CommitStock(),
    }
    command = resend[saga.step]
    return Outcome(
        replace(saga, attempts=saga.attempts + 1, deadline_at=now + policy.step_deadline), (command,)
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
    if saga.status is Status.PENDING:
        # The reservation may be under way; releasing is answered even when nothing is held.
        compensate = (Compensation.RELEASE_STOCK,)
    elif saga.status is Status.AWAITING_PAYMENT:
        compensate = (Compensation.RELEASE_STOCK, Compensation.VOID_PAYMENT)
    else:  # CONFIRMED: paid and committed
        compensate = (Compensation.RELEASE_STOCK, Compensation.REFUND_PAYMENT)
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
