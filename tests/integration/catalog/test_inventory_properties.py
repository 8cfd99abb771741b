"""The inventory keeps its books under any sequence of saga commands, expiries and stock adjustments.

A Hypothesis state machine drives the real `Inventory` and `AdjustStock` against PostgreSQL, with a
plain Python model of what the stock should be, and checks the books after every step.

Hypothesis runs state machines synchronously, while the session's servers and connection pools live
on the session's event loop. So the machine runs in a worker thread (`asyncio.to_thread`) and hands
each step's coroutine to that loop, which is free to run it while the thread waits for the result.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

import grpc
import pytest
from hypothesis import Phase, settings
from hypothesis import strategies as st
from hypothesis.internal.conjecture import engine
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from catalog.models import COMMITTED, EXPIRED, REJECTED, RELEASED, RESERVED
from ecommerce.catalog.v1 import catalog_pb2
from servicekit.rpc_status import parse_rpc_error
from tests.helpers import eventually
from tests.integration.catalog.commands import (
    COMMIT,
    RELEASE,
    RESERVE,
    commit_command,
    payload,
    release_command,
    reserve_command,
)

pytestmark = [
    pytest.mark.usefixtures("clean_catalog"),
    # Hypothesis notes any change of the global `random` state while it draws. Here the service's
    # Kafka clients shuffle partitions with it on the loop's thread meanwhile; our strategies don't.
    pytest.mark.filterwarnings("ignore:Do not use the `random` module inside strategies"),
]
T = TypeVar("T")

PRODUCTS = 3
ORDERS = 8
STEP_TIMEOUT = 30.0

# About half a minute of `make test` on two cores; each example starts from new products and
# orders. The rest (seed, verbosity, derandomize) comes from the loaded profile. No example
# database: the examples hold random ids that mean nothing to a later run. Every example costs
# real transactions, so a failure is shrunk for one bug only and not explained further.
BUDGET = settings(
    max_examples=20,
    stateful_step_count=25,
    deadline=None,
    database=None,
    report_multiple_bugs=False,
    phases=(Phase.explicit, Phase.generate, Phase.shrink),
)

PRODUCT = st.integers(0, PRODUCTS - 1)
# The saga re-sends a command on timeout, and a redelivery may overlap the first delivery.
COPIES = st.integers(1, 3)
LINES = st.lists(st.tuples(PRODUCT, st.integers(1, 3)), min_size=1, max_size=3)
# What a sender outside the contract could put in a line: never reserved, whatever its neighbours.
BAD_QUANTITY = st.sampled_from([0, -1, -3, 2**31 - 1])

# A repeated reserve answers with how the first one ended; held or sold is "reserved".
ANSWER_TO_RESERVE = {
    REJECTED: "inventory.stock_rejected",
    RELEASED: "inventory.stock_released",
    EXPIRED: "inventory.reservation_expired",
}
ANSWER_TO_COMMIT = {
    None: "inventory.stock_released",
    RESERVED: "inventory.stock_committed",
    COMMITTED: "inventory.stock_committed",
    RELEASED: "inventory.stock_released",
    EXPIRED: "inventory.reservation_expired",
    REJECTED: "inventory.stock_rejected",
}


@dataclass
class ExpectedOrder:
    status: str
    # Product index -> units the order holds (or held).
    lines: dict[int, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Books:
    """What the catalog says, per product index, and the stored state of this example's orders."""

    available: list[int]
    reserved: list[int]
    held: list[int]  # the sum of this example's RESERVED reservation lines
    sold: list[int]  # the sum of its COMMITTED lines
    orders: dict[str, ExpectedOrder]
    line_statuses: dict[str, set[str]]


async def _gather(*coroutines: Coroutine[Any, Any, T]) -> list[T]:
    return list(await asyncio.gather(*coroutines))


class InventoryMachine(RuleBasedStateMachine):
    def __init__(self, catalog, category: catalog_pb2.Category, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self.catalog = catalog
        self.category = category
        self.loop = loop
        self.admin = catalog.admin
        self.orders = [str(uuid.uuid4()) for _ in range(ORDERS)]
        self.unknown_product = str(uuid.uuid4())
        self.products: list[str] = []
        # The model: what each product can still sell, the units ever put on the shelf (initial
        # stock and accepted adjustments), and each order as the inventory should remember it.
        self.available: list[int] = []
        self.supplied: list[int] = []
        self.expected: dict[str, ExpectedOrder] = {}
        self.answered: Counter[str] = Counter()
        self._books: Books | None = None

    # -- driving the session's loop from Hypothesis's thread ---------------------------------------

    def run(self, call: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
        """`call(*args, **kwargs)` on the session's loop (a gRPC call must also start there)."""

        async def on_the_loop() -> T:
            return await call(*args, **kwargs)

        future = asyncio.run_coroutine_threadsafe(on_the_loop(), self.loop)
        try:
            return future.result(STEP_TIMEOUT)
        except TimeoutError:
            future.cancel()
            raise

    def send(self, event_type: str, command: Any, order_id: str, copies: int, together: bool) -> None:
        """The same command `copies` times, one after another or all at once."""
        handle = self.catalog.handle
        if together:
            self.run(_gather, *(handle(event_type, command, order_id) for _ in range(copies)))
        else:
            for _ in range(copies):
                self.run(handle, event_type, command, order_id)
        self._books = None

    def new_answers(self, order_id: str) -> list[str]:
        """The types of the answers written for an order since the last look (and the books, read
        at the same time for the checks that follow)."""
        answers, self._books = self.run(self._answers_and_books, order_id)
        fresh = [a.event_type for a in answers[self.answered[order_id] :]]
        self.answered[order_id] = len(answers)
        return fresh

    def books(self) -> Books:
        if self._books is None:
            self._books = self.run(self._read_books)
        return self._books

    async def _answers_and_books(self, order_id: str) -> tuple[list[Any], Books]:
        answers, books = await asyncio.gather(self.catalog.answers(order_id), self._read_books())
        return answers, books

    async def _read_books(self) -> Books:
        stock, rows = await asyncio.gather(
            self.catalog.stub.GetStock(
                catalog_pb2.GetStockRequest(product_ids=self.products), metadata=self.admin
            ),
            self.catalog.execute(
                "SELECT o.order_id, o.status, r.product_id, r.quantity, r.status FROM stock_orders o "
                "LEFT JOIN reservations r ON r.order_id = o.order_id WHERE o.order_id = ANY(:ids)",
                ids=[uuid.UUID(o) for o in self.orders],
            ),
        )
        levels = stock.levels
        assert [level.product_id for level in levels] == self.products
        index = {uuid.UUID(p): i for i, p in enumerate(self.products)}
        held, sold = [0] * PRODUCTS, [0] * PRODUCTS
        orders: dict[str, ExpectedOrder] = {}
        line_statuses: dict[str, set[str]] = {}
        for order_id, status, product_id, quantity, line_status in rows:
            order = orders.setdefault(str(order_id), ExpectedOrder(status))
            statuses = line_statuses.setdefault(str(order_id), set())
            if product_id is None:
                continue
            i = index[product_id]
            order.lines[i] = quantity
            statuses.add(line_status)
            if line_status == RESERVED:
                held[i] += quantity
            elif line_status == COMMITTED:
                sold[i] += quantity
        return Books(
            available=[level.available for level in levels],
            reserved=[level.reserved for level in levels],
            held=held,
            sold=sold,
            orders=orders,
            line_statuses=line_statuses,
        )

    def pick(self, data: st.DataObject, *wanted: str | None, unknown: bool = True) -> str:
        """An order, most often one in a wanted state, else one the inventory knows, or a new one:
        every command may meet every order, but most should meet one they can change."""
        preferred = [i for i, o in enumerate(self.orders) if self.status(o) in wanted]
        known = [i for i, o in enumerate(self.orders) if o in self.expected]
        new = [i for i, o in enumerate(self.orders) if o not in self.expected][: int(unknown)]
        choice = data.draw(st.sampled_from(preferred * 3 + known + new), label="order")
        return self.orders[choice]

    def status(self, order_id: str) -> str | None:
        expected = self.expected.get(order_id)
        return expected.status if expected else None

    def credit(self, lines: dict[int, int]) -> None:
        for i, quantity in lines.items():
            self.available[i] += quantity

    # -- rules ----------------------------------------------------------------------------------------

    @initialize(stocks=st.lists(st.integers(0, 12), min_size=PRODUCTS, max_size=PRODUCTS))
    def stock_the_shelves(self, stocks: list[int]) -> None:
        created = self.run(_gather, *(self.catalog.product(self.category, stock=s) for s in stocks))
        self.products = [p.id for p in created]
        self.available = list(stocks)
        self.supplied = list(stocks)

    @rule(data=st.data(), lines=LINES, copies=COPIES, together=st.booleans())
    def reserve(self, data: st.DataObject, lines: list[tuple[int, int]], copies: int, together: bool) -> None:
        order_id = self.pick(data, None)
        wanted: Counter[int] = Counter()
        for i, quantity in lines:
            wanted[i] += quantity
        before = self.books()
        first = order_id not in self.expected
        if first:
            fits = all(quantity <= self.available[i] for i, quantity in wanted.items())
            self.expected[order_id] = ExpectedOrder(
                RESERVED if fits else REJECTED, dict(wanted) if fits else {}
            )
            if fits:
                for i, quantity in wanted.items():
                    self.available[i] -= quantity

        self.send(
            RESERVE,
            reserve_command(order_id, [(self.products[i], q) for i, q in lines]),
            order_id,
            copies,
            together,
        )

        status = self.expected[order_id].status
        answer = ANSWER_TO_RESERVE.get(status, "inventory.stock_reserved")
        assert self.new_answers(order_id) == [answer] * copies
        after = self.books()
        taken = [before.available[i] - after.available[i] for i in range(PRODUCTS)]
        if first and status == RESERVED:
            # All of it: every line taken in full, and nothing else.
            assert taken == [wanted[i] for i in range(PRODUCTS)]
        else:
            # A refused or repeated reserve changes nothing.
            assert taken == [0] * PRODUCTS
            assert (after.reserved, after.sold) == (before.reserved, before.sold)

    @rule(data=st.data(), good=LINES, bad_product=st.booleans(), quantity=BAD_QUANTITY, copies=COPIES)
    def reserve_with_a_bad_line(
        self, data: st.DataObject, good: list[tuple[int, int]], bad_product: bool, quantity: int, copies: int
    ) -> None:
        """A line for an unknown product, or with a quantity below one (or beyond any stock) next to
        valid lines, perhaps for the same product: the whole order is refused."""
        order_id = self.pick(data)
        if bad_product:
            bad = (self.unknown_product, max(quantity, 1))
        else:
            bad = (self.products[good[0][0]], quantity)
        lines = [(self.products[i], q) for i, q in good] + [bad]
        before = self.books()
        if order_id not in self.expected:
            self.expected[order_id] = ExpectedOrder(REJECTED)

        self.send(RESERVE, reserve_command(order_id, lines), order_id, copies, together=False)

        status = self.expected[order_id].status
        answer = ANSWER_TO_RESERVE.get(status, "inventory.stock_reserved")
        assert self.new_answers(order_id) == [answer] * copies
        after = self.books()
        assert (after.available, after.reserved, after.sold) == (
            before.available,
            before.reserved,
            before.sold,
        )

    @rule(data=st.data(), copies=COPIES, together=st.booleans())
    def release(self, data: st.DataObject, copies: int, together: bool) -> None:
        order_id = self.pick(data, RESERVED, COMMITTED)
        expected = self.expected.get(order_id)
        if expected is None:
            # Remembered, so that a late ReserveStock holds nothing.
            self.expected[order_id] = ExpectedOrder(RELEASED)
        elif expected.status in (RESERVED, COMMITTED):
            self.credit(expected.lines)
            expected.status = RELEASED

        self.send(RELEASE, release_command(order_id, "payment declined"), order_id, copies, together)

        assert self.new_answers(order_id) == ["inventory.stock_released"] * copies

    @rule(data=st.data(), copies=COPIES, together=st.booleans())
    def commit(self, data: st.DataObject, copies: int, together: bool) -> None:
        order_id = self.pick(data, RESERVED)
        expected = self.expected.get(order_id)
        answer = ANSWER_TO_COMMIT[expected.status if expected else None]
        if expected is not None and expected.status == RESERVED:
            expected.status = COMMITTED

        self.send(COMMIT, commit_command(order_id), order_id, copies, together)

        assert self.new_answers(order_id) == [answer] * copies

    @precondition(lambda self: self.expected)
    @rule(data=st.data())
    def expire(self, data: st.DataObject) -> None:
        """The order's deadline passes (moved into the past in the database) and the sweeper runs."""
        order_id = self.pick(data, RESERVED, unknown=False)
        expected = self.expected[order_id]
        for table in ("stock_orders", "reservations"):
            self.run(
                self.catalog.execute,
                f"UPDATE {table} SET expires_at = now() - interval '1 second' "
                "WHERE order_id = :id AND expires_at IS NOT NULL",
                id=uuid.UUID(order_id),
            )
        inventory = self.catalog.app.inventory

        async def swept() -> bool:
            # The service's own sweeper may hold the order at this moment (SKIP LOCKED): sweep again.
            await inventory.sweep()
            [(status,)] = await self.catalog.execute(
                "SELECT status FROM stock_orders WHERE order_id = :id", id=uuid.UUID(order_id)
            )
            return status != RESERVED

        self.run(eventually, swept, what="the expired reservation swept")
        self._books = None
        if expected.status == RESERVED:
            self.credit(expected.lines)
            expected.status = EXPIRED
            assert self.new_answers(order_id) == ["inventory.reservation_expired"]
        else:
            assert self.new_answers(order_id) == []

    @rule(product=PRODUCT, units=st.integers(1, 10))
    def restock(self, product: int, units: int) -> None:
        request = catalog_pb2.AdjustStockRequest(
            product_id=self.products[product], delta=units, reason="delivery"
        )
        response = self.run(self.catalog.stub.AdjustStock, request, metadata=self.admin)
        self._books = None
        self.available[product] += units
        self.supplied[product] += units
        assert response.product.stock == self.available[product]

    @rule(product=PRODUCT, delta=st.integers(-10, 10).filter(bool))
    def adjust(self, product: int, delta: int) -> None:
        request = catalog_pb2.AdjustStockRequest(
            product_id=self.products[product], delta=delta, reason="stock count"
        )
        before = self.books()
        if self.available[product] + delta < 0:
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                self.run(self.catalog.stub.AdjustStock, request, metadata=self.admin)
            assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert [v.field for v in parse_rpc_error(refused.value).violations] == ["delta"]
            self._books = None
            assert self.books() == before
            return
        response = self.run(self.catalog.stub.AdjustStock, request, metadata=self.admin)
        self._books = None
        self.available[product] += delta
        self.supplied[product] += delta
        assert response.product.stock == self.available[product]

    # -- invariants, after every step -------------------------------------------------------------

    @invariant()
    def stock_is_never_negative(self) -> None:
        books = self.books()
        for available, reserved in zip(books.available, books.reserved, strict=True):
            assert available >= 0
            assert available + reserved >= 0  # on hand

    @invariant()
    def reserved_is_the_sum_of_the_active_reservations(self) -> None:
        books = self.books()
        assert books.reserved == books.held

    @invariant()
    def units_are_conserved(self) -> None:
        """On hand plus sold is what was ever put on the shelf."""
        books = self.books()
        on_hand = [a + r for a, r in zip(books.available, books.reserved, strict=True)]
        assert [h + s for h, s in zip(on_hand, books.sold, strict=True)] == self.supplied

    @invariant()
    def the_books_match_the_model(self) -> None:
        books = self.books()
        assert books.available == self.available
        assert books.orders == self.expected
        for order_id, statuses in books.line_statuses.items():
            # Every line of an order follows the order; a refused order holds no lines.
            assert statuses <= {books.orders[order_id].status}, (order_id, statuses)


async def test_the_inventory_keeps_its_books_under_any_sequence_of_commands(catalog, monkeypatch):
    # Hypothesis's own knob (made to be monkeypatched): a shrink costs real transactions, so stop
    # shrinking after two minutes and report, well within the test's timeout.
    monkeypatch.setattr(engine, "MAX_SHRINKING_SECONDS", 120)
    category = await catalog.category()
    loop = asyncio.get_running_loop()

    await asyncio.to_thread(
        run_state_machine_as_test, lambda: InventoryMachine(catalog, category, loop), settings=BUDGET
    )


# -- what the machine found, kept as plain examples ---------------------------------------------------


async def test_a_line_below_one_is_refused_even_beside_a_valid_line_for_the_same_product(catalog):
    category = await catalog.category()
    product = await catalog.product(category, stock=5)
    order = str(uuid.uuid4())

    await catalog.handle(RESERVE, reserve_command(order, [(product.id, 3), (product.id, -1)]), order)

    [answer] = await catalog.answers(order)
    assert answer.event_type == "inventory.stock_rejected"
    assert [(line.product_id, line.requested) for line in payload(answer).lines] == [(product.id, -1)]
    assert await catalog.stock(product.id) == 5


async def test_lines_adding_up_beyond_a_32_bit_quantity_are_refused(catalog):
    category = await catalog.category()
    product = await catalog.product(category, stock=5)
    order = str(uuid.uuid4())

    await catalog.handle(
        RESERVE, reserve_command(order, [(product.id, 2**31 - 1), (product.id, 2**31 - 1)]), order
    )

    [answer] = await catalog.answers(order)
    assert answer.event_type == "inventory.stock_rejected"
    assert [(line.product_id, line.requested) for line in payload(answer).lines] == [(product.id, 2**31 - 1)]
    assert await catalog.stock(product.id) == 5


async def test_duplicate_releases_of_an_unknown_order_at_once_all_answer_and_hold_nothing(catalog):
    category = await catalog.category()
    product = await catalog.product(category, stock=4)
    order = str(uuid.uuid4())
    release = release_command(order, "cancelled")

    await asyncio.gather(*(catalog.handle(RELEASE, release, order) for _ in range(4)))
    await catalog.handle(RESERVE, reserve_command(order, [(product.id, 1)]), order)

    kinds = [answer.event_type for answer in await catalog.answers(order)]
    assert kinds == ["inventory.stock_released"] * 5  # the late reserve: released, holding nothing
    assert await catalog.stock(product.id) == 4
