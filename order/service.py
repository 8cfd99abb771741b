"""Order use cases: placing an order (idempotently), reading and listing orders, the manual
transitions, and running the saga: replies from the participants and the step timer.

Every change of an order is one transaction that holds the order's row lock and writes the new
saga state, its history entries, the commands to send and the facts about the order (outbox).
"""

from __future__ import annotations

import hashlib
import logging
import unicodedata
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import orjson
from babel import Locale
from sqlalchemy import Select, event, func, select, tuple_, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import selectinload

from order import domain, messages
from order.models import Order, OrderHistory, OrderItem
from order.peers import ProductInfo
from servicekit import metrics
from servicekit.auth import require_admin, require_caller
from servicekit.context import Caller
from servicekit.cursor import CursorCodec
from servicekit.db import snapshot, transaction
from servicekit.errors import AlreadyExists, Conflict, InvalidArgument, NotFound, PermissionDenied, Violations
from servicekit.outbox import Outbox

log = logging.getLogger(__name__)

MAX_IDEMPOTENCY_KEY_LENGTH = 255
MAX_PAYMENT_TOKEN_LENGTH = 255
MAX_NOTE_LENGTH = 500
DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100
IDEMPOTENCY_CONSTRAINT = "uq_orders_account_id_idempotency_key"
# (field, required, max length) of a shipping address.
ADDRESS_FIELDS = (
    ("name", True, 100),
    ("line1", True, 200),
    ("line2", False, 200),
    ("city", True, 100),
    ("region", False, 100),
    ("postal_code", True, 20),
    ("country", True, 2),
)
# Codes CLDR lists that are not countries one ships to.
_NOT_COUNTRIES = {"EU", "EZ", "UN", "QO", "XA", "XB", "ZZ"}
COUNTRIES = frozenset(
    code
    for code in Locale("en").territories
    if len(code) == 2 and code.isalpha() and code not in _NOT_COUNTRIES
)


class ProductSource(Protocol):
    async def products(self, caller: Caller, ids: list[str]) -> dict[str, ProductInfo]: ...


class PaymentTokens(Protocol):
    async def validate_token(self, caller: Caller, token: str) -> tuple[bool, str]: ...


@dataclass(frozen=True)
class LineRequest:
    product_id: str
    quantity: int


@dataclass(frozen=True)
class PlaceOrder:
    items: Sequence[LineRequest]
    payment_token: str
    shipping_address: dict[str, str]
    idempotency_key: str = ""


@dataclass(frozen=True)
class Placed:
    order: Order
    # True when an earlier request with the same idempotency key created it.
    replay: bool


@dataclass(frozen=True)
class OrderPage:
    orders: list[Order]
    cursors: list[str]
    has_next_page: bool
    total_count: int


@dataclass(frozen=True)
class _MergedLine:
    index: int  # of its first occurrence in the request, for error messages
    product_id: uuid.UUID
    quantity: int


def _has_control_characters(value: str) -> bool:
    return any(unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co") for ch in value)


def _parse_id(value: str, field: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except (ValueError, AttributeError, TypeError):
        raise InvalidArgument.field(field, "is not a valid id") from None


# -- metrics (servicekit.metrics defines them; the saga reports what it sees) -----------------------

_COMMAND_STEPS: dict[type, str] = {
    domain.ReserveStock: "reserve_stock",
    domain.AuthorizePayment: "authorize_payment",
    domain.CommitStock: "commit_stock",
    domain.ReleaseStock: "release_stock",
    domain.VoidPayment: "void_payment",
    domain.RefundPayment: "refund_payment",
}
_COMPENSATION_STEPS = {
    domain.Compensation.RELEASE_STOCK: "release_stock",
    domain.Compensation.VOID_PAYMENT: "void_payment",
    domain.Compensation.REFUND_PAYMENT: "refund_payment",
}


def _reply_outcome(event: domain.Event) -> str:
    """What a reply said, as the step-duration metric's outcome label."""
    match event:
        case domain.StockRejected():
            return "rejected"
        case domain.ReservationExpired():
            return "expired"
        case domain.PaymentFailed(retryable=False):
            return "declined"
        case domain.PaymentFailed():
            return "unavailable"
    return "ok"


def _answered_step(saga: domain.Saga, outcome: domain.Outcome, event: domain.Event) -> tuple[str, str] | None:
    """(step, outcome) when this event answered the command the saga was waiting for."""
    if outcome.ignored or isinstance(
        event, domain.DeadlinePassed | domain.CancelRequested | domain.ShipRequested | domain.DeliverRequested
    ):
        return None
    if saga.step is domain.Step.COMPENSATE:
        answered = saga.pending - outcome.saga.pending
        return (_COMPENSATION_STEPS[next(iter(answered))], "ok") if len(answered) == 1 else None
    if saga.step is None:
        return None
    if isinstance(event, domain.StockReleased) and saga.step is domain.Step.COMMIT_STOCK:
        return saga.step.value.lower(), "released"
    return saga.step.value.lower(), _reply_outcome(event)


def _after_commit(session: AsyncSession, action: Callable[[], None]) -> None:
    """Run `action` once the session's transaction has committed (never for a rolled-back one)."""
    actions: list[Callable[[], None]] | None = session.info.get("after_commit")
    if actions is None:
        actions = session.info["after_commit"] = []

        def run(*_: object) -> None:
            for act in session.info.pop("after_commit", []):
                act()

        def forget(*_: object) -> None:
            session.info.pop("after_commit", None)

        event.listen(session.sync_session, "after_commit", run, once=True)
        event.listen(session.sync_session, "after_soft_rollback", forget, once=True)
    actions.append(action)


def _account_of(caller: Caller) -> uuid.UUID:
    """The caller's account; a peer service calling as itself has none and owns no orders."""
    try:
        return uuid.UUID(caller.account_id)
    except ValueError:
        raise PermissionDenied("only an account can place or list its own orders") from None


def _count_transition(order: Order, old_status: str | None, entry: domain.HistoryEntry) -> None:
    if old_status is not None:
        metrics.ORDERS_BY_STATUS.labels(status=old_status).dec()
    metrics.ORDERS_BY_STATUS.labels(status=entry.status.value).inc()
    if entry.status is domain.Status.CONFIRMED:
        metrics.SAGA_OUTCOMES.labels(outcome="confirmed").inc()
    elif entry.status is domain.Status.CANCELLED and order.cancellation_reason:
        metrics.SAGA_OUTCOMES.labels(outcome=order.cancellation_reason.lower()).inc()


def saga_of(order: Order) -> domain.Saga:
    return domain.Saga(
        status=domain.Status(order.status),
        step=domain.Step(order.saga_step) if order.saga_step else None,
        attempts=order.saga_attempts,
        deadline_at=order.saga_deadline_at,
        pending=frozenset(domain.Compensation(p) for p in order.saga_pending or ()),
        cancellation_reason=domain.CancellationReason(order.cancellation_reason)
        if order.cancellation_reason
        else None,
        payment_id=order.payment_id or "",
    )


class OrderService:
    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        outbox: Outbox,
        catalog: ProductSource,
        payments: PaymentTokens,
        policy: domain.Policy,
        cursor_secret: str,
        max_lines: int = 50,
        max_quantity: int = 1000,
        tick_batch: int = 100,
    ) -> None:
        self.sessions = sessions
        self.outbox = outbox
        self.catalog = catalog
        self.payments = payments
        self.policy = policy
        self.max_lines = max_lines
        self.max_quantity = max_quantity
        self.tick_batch = tick_batch
        self.cursors = CursorCodec(cursor_secret, purpose="orders")

    # -- placing an order ---------------------------------------------------------------------------

    async def create_order(self, caller: Caller | None, request: PlaceOrder) -> Placed:
        caller = require_caller(caller)
        account_id = _account_of(caller)
        lines, address = self._validate(request)
        key = request.idempotency_key or None
        request_hash = self._request_hash(lines, request.payment_token, address) if key else None
        if key is not None:
            # A retry of a finished request answers at once, without asking the peers again.
            earlier = await self._by_key(account_id, key)
            if earlier is not None:
                return self._replay(earlier, request_hash)

        products = await self.catalog.products(caller, [str(line.product_id) for line in lines])
        priced = self._price(lines, products)
        valid, why = await self.payments.validate_token(caller, request.payment_token)
        if not valid:
            raise InvalidArgument.field("payment_token", why or "is not a valid payment token")

        order_id = uuid.uuid4()
        try:
            async with transaction(self.sessions) as session:
                order = Order(
                    id=order_id,
                    account_id=account_id,
                    currency=priced[0][1].currency,
                    total_minor=sum(product.price_minor * line.quantity for line, product in priced),
                    payment_token=request.payment_token,
                    shipping_address=address,
                    idempotency_key=key,
                    request_hash=request_hash,
                    saga_pending=[],
                )
                order.items = [
                    OrderItem(
                        line_no=number,
                        product_id=line.product_id,
                        sku=product.sku,
                        name=product.name,
                        unit_price_minor=product.price_minor,
                        quantity=line.quantity,
                        line_total_minor=product.price_minor * line.quantity,
                    )
                    for number, (line, product) in enumerate(priced, start=1)
                ]
                now = datetime.now(UTC)
                outcome = domain.place(now, self.policy)
                session.add(order)
                self._set_saga(order, outcome.saga)
                await session.flush()
                await session.refresh(order, ["created_at", "updated_at"])
                await self.outbox.add(session, messages.created(order))
                await self._record(session, order, None, outcome, now)
        except IntegrityError as exc:
            if key is None or IDEMPOTENCY_CONSTRAINT not in str(exc.orig):
                raise
            # Another request with this key committed first (this insert waited for it on the index).
            earlier = await self._by_key(account_id, key)
            if earlier is None:
                raise
            return self._replay(earlier, request_hash)
        log.info("order placed", extra={"order_id": str(order_id), "lines": len(priced)})
        return Placed(await self._load(order_id), replay=False)

    def _validate(self, request: PlaceOrder) -> tuple[list[_MergedLine], dict[str, str]]:
        violations = Violations()
        items = list(request.items)
        if not items:
            violations.add("items", "must contain at least one line")
        elif len(items) > self.max_lines:
            violations.add("items", f"must contain at most {self.max_lines} lines")
            items = []
        merged: dict[uuid.UUID, _MergedLine] = {}
        for index, item in enumerate(items):
            try:
                product_id = uuid.UUID(item.product_id)
            except (ValueError, AttributeError, TypeError):
                violations.add(f"items[{index}].product_id", "is not a valid product id")
                continue
            if not 1 <= item.quantity <= self.max_quantity:
                violations.add(f"items[{index}].quantity", f"must be between 1 and {self.max_quantity}")
                continue
            # The same product twice is one line with the quantities added up.
            first = merged.get(product_id)
            if first is None:
                merged[product_id] = _MergedLine(index, product_id, item.quantity)
                continue
            total = first.quantity + item.quantity
            if total > self.max_quantity:
                violations.add(
                    f"items[{index}].quantity",
                    f"the lines for this product add up to {total}, more than {self.max_quantity}",
                )
            merged[product_id] = _MergedLine(first.index, product_id, total)

        token = request.payment_token
        if not token.strip():
            violations.add("payment_token", "is required")
        elif len(token) > MAX_PAYMENT_TOKEN_LENGTH or _has_control_characters(token):
            violations.add("payment_token", "is not a valid payment token")

        address = self._validate_address(request.shipping_address, violations)

        key = request.idempotency_key
        if len(key) > MAX_IDEMPOTENCY_KEY_LENGTH:
            violations.add("idempotency_key", f"must be at most {MAX_IDEMPOTENCY_KEY_LENGTH} characters")
        elif _has_control_characters(key):
            violations.add("idempotency_key", "must not contain control characters")
        violations.raise_if_any()
        return list(merged.values()), address

    @staticmethod
    def _validate_address(raw: dict[str, str], violations: Violations) -> dict[str, str]:
        address: dict[str, str] = {}
        for name, required, limit in ADDRESS_FIELDS:
            field = f"shipping_address.{name}"
            value = unicodedata.normalize("NFC", (raw.get(name) or "").strip())
            if name == "country":
                value = value.upper()
            if required and not value:
                violations.add(field, "is required")
            elif len(value) > limit:
                violations.add(field, f"must be at most {limit} characters")
            elif _has_control_characters(value):
                violations.add(field, "must not contain control characters")
            elif name == "country" and value not in COUNTRIES:
                violations.add(field, "must be an ISO 3166-1 alpha-2 country code, e.g. DE")
            address[name] = value
        return address

    @staticmethod
    def _request_hash(lines: list[_MergedLine], token: str, address: dict[str, str]) -> str:
        """The payload's fingerprint: what must match for a key's retry to be the same request."""
        canonical = {
            "items": sorted([str(line.product_id), line.quantity] for line in lines),
            "payment_token": token,
            "shipping_address": address,
        }
        return hashlib.sha256(orjson.dumps(canonical, option=orjson.OPT_SORT_KEYS)).hexdigest()

    @staticmethod
    def _price(
        lines: list[_MergedLine], products: dict[str, ProductInfo]
    ) -> list[tuple[_MergedLine, ProductInfo]]:
        violations = Violations()
        priced: list[tuple[_MergedLine, ProductInfo]] = []
        for line in lines:
            product = products.get(str(line.product_id))
            field = f"items[{line.index}].product_id"
            if product is None:
                violations.add(field, "no such product")
            elif product.archived:
                violations.add(field, "this product is no longer sold")
            else:
                priced.append((line, product))
        violations.raise_if_any()
        currencies = {product.currency for _, product in priced}
        if len(currencies) > 1:
            raise InvalidArgument.field(
                "items", f"the products are priced in {len(currencies)} currencies; one order takes one"
            )
        return priced

    async def _by_key(self, account_id: uuid.UUID, key: str) -> Order | None:
        async with snapshot(self.sessions) as session:
            return await session.scalar(
                self._full().where(Order.account_id == account_id, Order.idempotency_key == key)
            )

    @staticmethod
    def _replay(earlier: Order, request_hash: str | None) -> Placed:
        if earlier.request_hash != request_hash:
            raise AlreadyExists(
                "this idempotency key was already used for a different order", field="idempotency_key"
            )
        return Placed(earlier, replay=True)

    # -- reading -----------------------------------------------------------------------------------

    async def get_order(self, caller: Caller | None, *, order_id: str) -> Order:
        caller = require_caller(caller)
        return await self._visible(caller, order_id)

    async def list_my_orders(self, caller: Caller | None, *, page_size: int, page_token: str) -> OrderPage:
        account_id = _account_of(require_caller(caller))
        return await self._page(filters={"a": str(account_id)}, page_size=page_size, page_token=page_token)

    async def list_orders(
        self, caller: Caller | None, *, status: str, account_id: str, page_size: int, page_token: str
    ) -> OrderPage:
        require_admin(caller)
        filters: dict[str, str] = {}
        if status:
            try:
                filters["s"] = domain.Status(status).value
            except ValueError:
                raise InvalidArgument.field("status", "is not a known order status") from None
        if account_id:
            filters["a"] = str(_parse_id(account_id, "account_id"))
        return await self._page(filters=filters, page_size=page_size, page_token=page_token)

    async def _page(self, *, filters: dict[str, str], page_size: int, page_token: str) -> OrderPage:
        page_size = page_size or DEFAULT_PAGE_SIZE
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise InvalidArgument.field("page_size", f"must be between 1 and {MAX_PAGE_SIZE}")
        conditions: list[Any] = []
        if "a" in filters:
            conditions.append(Order.account_id == uuid.UUID(filters["a"]))
        if "s" in filters:
            conditions.append(Order.status == filters["s"])
        query = self._full().where(*conditions).order_by(Order.created_at.desc(), Order.id.desc())
        if page_token:
            position = self.cursors.decode(page_token, field="page_token")
            try:
                if position.get("f") != filters:
                    raise ValueError("cursor of another listing")
                after = (datetime.fromisoformat(position["c"]), uuid.UUID(position["i"]))
            except (KeyError, TypeError, ValueError):
                raise InvalidArgument.field("page_token", "is not a valid cursor for this listing") from None
            query = query.where(tuple_(Order.created_at, Order.id) < after)
        async with snapshot(self.sessions) as session:
            rows = list((await session.scalars(query.limit(page_size + 1))).all())
            total = await session.scalar(select(func.count()).select_from(Order).where(*conditions)) or 0
        has_next_page = len(rows) > page_size
        rows = rows[:page_size]
        cursors = [
            self.cursors.encode({"c": o.created_at.isoformat(), "i": str(o.id), "f": filters}) for o in rows
        ]
        return OrderPage(rows, cursors, has_next_page, total)

    # -- manual transitions ---------------------------------------------------------------------------

    async def cancel_order(self, caller: Caller | None, *, order_id: str, note: str = "") -> Order:
        caller = require_caller(caller)
        note = note.strip()
        if len(note) > MAX_NOTE_LENGTH or _has_control_characters(note):
            raise InvalidArgument.field("note", f"must be at most {MAX_NOTE_LENGTH} printable characters")
        order_uuid = _parse_id(order_id, "order_id")
        async with transaction(self.sessions) as session:
            order = await self._lock(session, order_uuid)
            if order is None or (not caller.is_admin and str(order.account_id) != caller.account_id):
                raise NotFound("order not found")
            by_owner = str(order.account_id) == caller.account_id
            event = domain.CancelRequested(by=caller.account_id, by_owner=by_owner, note=note)
            await self._decide(session, order, event)
        return await self._load(order_uuid)

    async def ship_order(self, caller: Caller | None, *, order_id: str) -> Order:
        caller = require_admin(caller)
        return await self._admin_transition(order_id, domain.ShipRequested(by=caller.account_id))

    async def deliver_order(self, caller: Caller | None, *, order_id: str) -> Order:
        caller = require_admin(caller)
        return await self._admin_transition(order_id, domain.DeliverRequested(by=caller.account_id))

    async def _admin_transition(self, order_id: str, event: domain.Event) -> Order:
        order_uuid = _parse_id(order_id, "order_id")
        async with transaction(self.sessions) as session:
            order = await self._lock(session, order_uuid)
            if order is None:
                raise NotFound("order not found")
            await self._decide(session, order, event)
        return await self._load(order_uuid)

    # -- the saga ------------------------------------------------------------------------------------

    async def handle_reply(
        self, session: AsyncSession, order_id: str, event: domain.Event, event_id: str
    ) -> None:
        """A participant's reply, in the consumer's transaction (with its inbox row)."""
        try:
            order_uuid = uuid.UUID(order_id)
        except ValueError:
            log.warning("reply %s names no valid order id: %r", event_id, order_id)
            return
        order = await self._lock(session, order_uuid)
        if order is None:
            log.warning("reply %s for unknown order %s ignored", event_id, order_id)
            return
        await self._decide(session, order, event, causation_id=event_id)

    async def resume_due_sagas(self) -> int:
        """One timer pass: every saga whose step deadline passed re-sends or compensates.

        Rows locked by a reply being handled are skipped and seen on the next pass; this is
        also how sagas in flight resume after a restart. Returns how many were handled.
        """
        now = datetime.now(UTC)
        async with transaction(self.sessions) as session:
            due = (
                await session.scalars(
                    select(Order)
                    .where(Order.saga_step.is_not(None), Order.saga_deadline_at <= now)
                    .order_by(Order.saga_deadline_at)
                    .limit(self.tick_batch)
                    .with_for_update(skip_locked=True)
                    .options(selectinload(Order.items))
                )
            ).all()
            for order in due:
                order_id = order.id
                log.info(
                    "saga step deadline passed",
                    extra={
                        "order_id": str(order_id),
                        "step": order.saga_step,
                        "attempts": order.saga_attempts,
                    },
                )
                try:
                    async with session.begin_nested():
                        await self._decide(session, order, domain.DeadlinePassed(), now=now)
                except Exception:
                    # One order that cannot go on must not hold up every saga behind it.
                    log.exception("the saga of order %s could not resume; trying again later", order_id)
                    await session.execute(
                        update(Order)
                        .where(Order.id == order_id)
                        .values(saga_deadline_at=now + self.policy.step_deadline)
                    )
        return len(due)

    async def refresh_gauges(self) -> None:
        """Count the orders by status and find the oldest saga still under way, for the gauges."""
        async with self.sessions() as session:
            counts = dict(
                (await session.execute(select(Order.status, func.count()).group_by(Order.status))).all()
            )
            oldest = await session.scalar(
                select(func.min(Order.created_at)).where(
                    Order.status.in_((domain.Status.PENDING.value, domain.Status.AWAITING_PAYMENT.value))
                )
            )
        for status in domain.Status:
            metrics.ORDERS_BY_STATUS.labels(status=status.value).set(counts.get(status.value, 0))
        age = (datetime.now(UTC) - oldest).total_seconds() if oldest is not None else 0.0
        metrics.SAGA_OLDEST_IN_FLIGHT.set(max(0.0, age))

    async def _decide(
        self,
        session: AsyncSession,
        order: Order,
        event: domain.Event,
        *,
        causation_id: str = "",
        now: datetime | None = None,
    ) -> None:
        now = now or datetime.now(UTC)
        saga = saga_of(order)
        try:
            outcome = domain.decide(saga, event, now, self.policy)
        except domain.IllegalTransition as exc:
            raise Conflict(str(exc), reason="ILLEGAL_TRANSITION") from None
        if outcome.ignored:
            log.info(
                "saga event ignored: %s",
                outcome.ignored,
                extra={"order_id": str(order.id), "status": order.status},
            )
        if outcome.saga == saga and not outcome.commands:
            return
        old_status = order.status
        answered = _answered_step(saga, outcome, event)
        if answered is not None and order.saga_sent_at is not None:
            elapsed = max(0.0, (now - order.saga_sent_at).total_seconds())
            _after_commit(session, lambda: metrics.SAGA_STEP_DURATION.labels(*answered).observe(elapsed))
        if isinstance(event, domain.DeadlinePassed) and not outcome.history:
            for cmd in outcome.commands:
                step = _COMMAND_STEPS[type(cmd)]
                _after_commit(session, lambda step=step: metrics.SAGA_STEP_RETRIES.labels(step=step).inc())
        self._set_saga(order, outcome.saga)
        await self._record(session, order, old_status, outcome, now, causation_id=causation_id)

    @staticmethod
    def _set_saga(order: Order, saga: domain.Saga) -> None:
        order.status = saga.status.value
        order.cancellation_reason = saga.cancellation_reason.value if saga.cancellation_reason else None
        order.saga_step = saga.step.value if saga.step else None
        order.saga_attempts = saga.attempts
        order.saga_deadline_at = saga.deadline_at
        order.saga_pending = sorted(p.value for p in saga.pending)
        order.payment_id = saga.payment_id or None
        if saga.step not in (domain.Step.RESERVE_STOCK, domain.Step.AUTHORIZE_PAYMENT):
            # The card token is needed only to (re-)send AuthorizePayment.
            order.payment_token = None

    async def _record(
        self,
        session: AsyncSession,
        order: Order,
        old_status: str | None,
        outcome: domain.Outcome,
        now: datetime,
        *,
        causation_id: str = "",
    ) -> None:
        for cmd in outcome.commands:
            await self.outbox.add(session, messages.command(order, cmd, causation_id=causation_id))
        if outcome.commands:
            order.saga_sent_at = now
        previous = old_status
        for entry in outcome.history:
            session.add(
                OrderHistory(
                    order_id=order.id,
                    status=entry.status.value,
                    reason=entry.reason,
                    changed_by=entry.changed_by or None,
                )
            )
            for message in messages.transition(order, previous, entry, now, causation_id=causation_id):
                await self.outbox.add(session, message)
            _after_commit(session, lambda old=previous, entry=entry: _count_transition(order, old, entry))
            previous = entry.status.value
        if outcome.history:
            log.info(
                "order status changed",
                extra={"order_id": str(order.id), "old_status": old_status, "new_status": order.status},
            )

    # -- helpers ---------------------------------------------------------------------------------------

    @staticmethod
    def _full() -> Select[tuple[Order]]:
        return select(Order).options(selectinload(Order.items), selectinload(Order.history))

    async def _lock(self, session: AsyncSession, order_id: uuid.UUID) -> Order | None:
        return await session.scalar(
            select(Order)
            .where(Order.id == order_id)
            .with_for_update()
            .options(selectinload(Order.items))
            .execution_options(populate_existing=True)
        )

    async def _load(self, order_id: uuid.UUID) -> Order:
        # One snapshot for the order, its items and its history: a status always with its history.
        async with snapshot(self.sessions) as session:
            order = await session.scalar(self._full().where(Order.id == order_id))
        if order is None:
            raise NotFound("order not found")
        return order

    async def _visible(self, caller: Caller, order_id: str) -> Order:
        """The order if the caller may see it; another account's order is NOT_FOUND, like an unknown id."""
        order = await self._load(_parse_id(order_id, "order_id"))
        if not caller.is_admin and str(order.account_id) != caller.account_id:
            raise NotFound("order not found")
        return order


def policy_from(step_deadline: float, retry_budget: int, payment_retry_delay: float) -> domain.Policy:
    return domain.Policy(
        step_deadline=timedelta(seconds=step_deadline),
        retry_budget=retry_budget,
        payment_retry_delay=timedelta(seconds=payment_retry_delay),
    )
