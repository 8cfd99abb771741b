"""The order service's use cases, one surface over the rooms that hold them: placing an order
(`placing`), reading and listing orders (`listing`), the transitions people ask for
(`transitions`), the saga run by replies and its step timer (`saga`, `saga_metrics`) and the
wait for an order to settle (`waiting`).

Every change of an order is one transaction that holds the order's row lock and writes the new
saga state, its history entries, the commands to send and the facts about the order (outbox).
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from order import domain, queries, saga_metrics
from order.carts import Carts
from order.checkout import Checkout, CheckoutRequest
from order.listing import OrderFilter, OrderPage, OrderReads
from order.models import Order
from order.placing import NewOrder, PaymentTokens, Placed, Placement, PlaceOrder, ProductSource
from order.saga import Saga
from order.shop import Shop
from order.terms import ShopTerms
from order.transitions import Transitions
from order.waiting import SETTLED, SettledOrders
from servicekit.context import Caller
from servicekit.outbox import Outbox

# Of a call's deadline, what a wait leaves for the last read and the answer.
ANSWER_RESERVE_SECONDS = 0.5


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
        settled: SettledOrders,
        max_lines: int = 50,
        max_quantity: int = 1000,
        tick_batch: int = 100,
        require_email_verification: bool = False,
        cart_ttl: timedelta = timedelta(days=30),
        max_cart_lines: int = 100,
        prices_include_tax: bool = False,
    ) -> None:
        self.sessions = sessions
        self.tick_batch = tick_batch
        self.saga = Saga(sessions=sessions, outbox=outbox, policy=policy, tick_batch=tick_batch)
        self.placement = Placement(
            sessions=sessions,
            saga=self.saga,
            catalog=catalog,
            payments=payments,
            max_lines=max_lines,
            max_quantity=max_quantity,
            require_email_verification=require_email_verification,
        )
        self.reads = OrderReads(sessions=sessions, cursor_secret=cursor_secret)
        self.transitions = Transitions(sessions=sessions, saga=self.saga)
        self.settled = settled
        # Remembered while `terms.run` listens (a Background of the process); read for every cart
        # without it.
        self.terms = ShopTerms(sessions)
        self.shop = Shop(sessions=sessions, cursor_secret=cursor_secret, terms=self.terms)
        self.carts = Carts(
            sessions=sessions,
            catalog=catalog,
            terms=self.terms,
            ttl=cart_ttl,
            max_lines=max_cart_lines,
            max_quantity=max_quantity,
            prices_include_tax=prices_include_tax,
        )
        self.checkout = Checkout(carts=self.carts, placement=self.placement)

    async def create_order(
        self, caller: Caller | None, request: PlaceOrder, *, time_left: float | None = None
    ) -> Placed:
        """Place the order (or find the one an earlier request with its key placed); with
        `request.wait_seconds`, answer it once CONFIRMED or CANCELLED, or as it is when that wait,
        or the `time_left` of the call less `ANSWER_RESERVE_SECONDS`, runs out."""
        order_id = uuid.uuid4()
        with self._watching(order_id, request.wait_seconds) as woken:
            placed = await self.placement.create_order(caller, request, order_id=order_id)
            if isinstance(placed, NewOrder):
                return await self.settle(placed, request.wait_seconds, time_left, woken=woken)
        return await self.settle(placed, request.wait_seconds, time_left)

    async def check_out(
        self, caller: Caller | None, request: CheckoutRequest, *, time_left: float | None = None
    ) -> Placed:
        """Place the cart's order through the saga; waits as `create_order` does."""
        order_id = uuid.uuid4()
        with self._watching(order_id, request.wait_seconds) as woken:
            placed = await self.checkout.checkout(caller, request, order_id=order_id)
            if isinstance(placed, NewOrder):
                return await self.settle(placed, request.wait_seconds, time_left, woken=woken)
        return await self.settle(placed, request.wait_seconds, time_left)

    def _watching(
        self, order_id: uuid.UUID, wait_seconds: int
    ) -> contextlib.AbstractContextManager[asyncio.Event | None]:
        """A waiter for the order about to be placed under `order_id`, when the caller waits."""
        return self.settled.watching(order_id) if wait_seconds > 0 else contextlib.nullcontext()

    async def settle(
        self,
        placed: Placed | NewOrder,
        wait_seconds: int,
        time_left: float | None,
        *,
        woken: asyncio.Event | None = None,
    ) -> Placed:
        """The placed order once CONFIRMED or CANCELLED, or as it is when the wait runs out. A new
        order is read only here: with `woken`, the waiter registered before it was committed, once
        it settles or the wait runs out; without, after the wait has begun (a settling in between
        still wakes it)."""
        seconds = float(wait_seconds)
        if time_left is not None:
            seconds = min(seconds, time_left - ANSWER_RESERVE_SECONDS)
        if isinstance(placed, Placed):
            if seconds <= 0 or placed.order.status in SETTLED:
                return placed
            order_id, replay = placed.order.id, placed.replay
        else:
            order_id, replay = placed.order_id, False

        async def read() -> Order:
            return await queries.load(self.sessions, order_id)

        if seconds <= 0:
            return Placed(await read(), replay=replay)
        return Placed(await self.settled.until_settled(order_id, seconds, read, woken=woken), replay=replay)

    async def get_order(self, caller: Caller | None, *, order_id: str) -> Order:
        return await self.reads.get_order(caller, order_id=order_id)

    async def get_guest_order(self, *, order_id: str, email: str) -> Order:
        return await self.reads.get_guest_order(order_id=order_id, email=email)

    async def list_my_orders(self, caller: Caller | None, *, page_size: int, page_token: str) -> OrderPage:
        return await self.reads.list_my_orders(caller, page_size=page_size, page_token=page_token)

    async def list_orders(
        self,
        caller: Caller | None,
        *,
        page_size: int,
        page_token: str,
        filter: OrderFilter = OrderFilter(),
        sort: str = "PLACED_AT_DESC",
    ) -> OrderPage:
        return await self.reads.list_orders(
            caller, page_size=page_size, page_token=page_token, filter=filter, sort=sort
        )

    async def cancel_order(self, caller: Caller | None, *, order_id: str, note: str = "") -> Order:
        return await self.transitions.cancel_order(caller, order_id=order_id, note=note)

    async def ship_order(self, caller: Caller | None, *, order_id: str) -> Order:
        return await self.transitions.ship_order(caller, order_id=order_id)

    async def deliver_order(self, caller: Caller | None, *, order_id: str) -> Order:
        return await self.transitions.deliver_order(caller, order_id=order_id)

    async def handle_reply(
        self, session: AsyncSession, order_id: str, event: domain.Event, event_id: str
    ) -> None:
        """A participant's reply, in the consumer's transaction (with its inbox row)."""
        await self.saga.handle_reply(session, order_id, event, event_id)

    async def resume_due_sagas(self) -> int:
        """One timer pass over the sagas whose step deadline passed; how many were handled."""
        return await self.saga.resume_due()

    async def refresh_gauges(self) -> None:
        await saga_metrics.refresh_gauges(self.sessions)


def policy_from(step_deadline: float, retry_budget: int, payment_retry_delay: float) -> domain.Policy:
    return domain.Policy(
        step_deadline=timedelta(seconds=step_deadline),
        retry_budget=retry_budget,
        payment_retry_delay=timedelta(seconds=payment_retry_delay),
    )
