"""CreateOrder's `wait_seconds`: the answer waits for the order to settle, is woken by the commit
of the settling transition (not at its deadline), and answers the order as it is when the time,
or the call's deadline, runs out first. Whether a wait was woken or ran out of time is read from
`SettledOrders.ran_out`, never from a clock."""

from __future__ import annotations

import asyncio
import uuid

import grpc
import pytest

from ecommerce.events.v1 import inventory_events_pb2 as inv
from ecommerce.order.v1 import order_pb2
from order import queries
from order.waiting import SettledOrders
from tests.helpers import eventually
from tests.integration.order.helpers import create_request, rpc_error
from tests.integration.order.test_order_saga import paid, reserved

pytestmark = pytest.mark.usefixtures("orders")

LISTENER = (
    "SELECT pid FROM pg_stat_activity "
    "WHERE datname = current_database() AND query = 'LISTEN \"order_settled\"'"
)


async def waiting_for(settled: SettledOrders, count: int) -> None:
    async def reached() -> bool:
        return settled.waiting == count

    await eventually(reached, what=f"{count} order(s) with a waiting request")


async def only_order_of(orders, account_id: str) -> str:
    rows = await eventually(
        lambda: orders.execute("SELECT id FROM orders WHERE account_id = :a", a=account_id),
        what=f"an order of {account_id}",
    )
    [(order_id,)] = rows
    return str(order_id)


async def a_waiting_create(orders) -> tuple[asyncio.Future, str, list]:
    """A CreateOrder waiting up to ten seconds for its order to settle, once the order exists and
    the request's waiter is registered; the order's id and the caller's metadata."""
    product = orders.catalog.add()
    account_id, metadata = orders.token()
    waiting = asyncio.ensure_future(
        orders.stub.CreateOrder(
            create_request([(product, 1)], wait_seconds=10), metadata=metadata, timeout=20
        )
    )
    order_id = await only_order_of(orders, account_id)
    await waiting_for(orders.app.service.settled, 1)
    return waiting, order_id, metadata


async def a_cancel_wakes_a_waiting_create(orders) -> None:
    ran_out = orders.app.service.settled.ran_out
    waiting, order_id, metadata = await a_waiting_create(orders)
    await orders.stub.CancelOrder(order_pb2.CancelOrderRequest(order_id=order_id), metadata=metadata)
    response = await waiting

    assert response.order.id == order_id
    assert response.order.status == order_pb2.ORDER_STATUS_CANCELLED
    assert response.order.cancellation_reason == order_pb2.CANCELLATION_REASON_CUSTOMER_CANCELLED
    assert orders.app.service.settled.ran_out == ran_out  # woken by the cancel's commit
    assert orders.app.service.settled.waiting == 0


async def test_a_waiting_create_answers_as_soon_as_the_order_is_cancelled(orders):
    await a_cancel_wakes_a_waiting_create(orders)


async def test_many_waiting_creates_share_one_listener_and_each_is_woken_by_its_own_order(orders):
    product = orders.catalog.add()
    callers = [orders.token() for _ in range(10)]

    ran_out = orders.app.service.settled.ran_out
    waiting = [
        asyncio.ensure_future(
            orders.stub.CreateOrder(
                create_request([(product, 1)], wait_seconds=10), metadata=metadata, timeout=20
            )
        )
        for _, metadata in callers
    ]
    order_ids = [await only_order_of(orders, account_id) for account_id, _ in callers]
    await waiting_for(orders.app.service.settled, len(callers))
    listeners = await orders.execute(LISTENER)
    for order_id, (_, metadata) in zip(order_ids, callers, strict=True):
        await orders.stub.CancelOrder(order_pb2.CancelOrderRequest(order_id=order_id), metadata=metadata)
    answers = await asyncio.gather(*waiting)

    assert len(listeners) == 1
    assert [response.order.id for response in answers] == order_ids
    assert {response.order.status for response in answers} == {order_pb2.ORDER_STATUS_CANCELLED}
    assert orders.app.service.settled.ran_out == ran_out  # each woken by its own order


async def test_a_waiting_create_reads_its_new_order_once_when_the_saga_confirms_it(orders, monkeypatch):
    """The waiter is registered before the order is committed, so no transition can slip past it:
    the order is read only when its confirmation wakes the request."""
    loads: list[uuid.UUID] = []
    load = queries.load

    async def counted(sessions, order_id):
        loads.append(order_id)
        return await load(sessions, order_id)

    monkeypatch.setattr("order.service.queries.load", counted)
    ran_out = orders.app.service.settled.ran_out
    waiting, order_id, _ = await a_waiting_create(orders)
    await reserved(orders, order_id)
    await paid(orders, order_id)
    [commit] = await orders.bus.wait_for(order_id, "inventory.commit_stock")
    assert loads == []  # PENDING, then AWAITING_PAYMENT...: nothing read while the saga goes on
    await orders.bus.reply(
        "inventory.stock_committed",
        order_id,
        inv.StockCommitted(order_id=order_id),
        causation_id=commit.event_id,
    )
    response = await waiting

    assert response.order.status == order_pb2.ORDER_STATUS_CONFIRMED
    assert loads == [uuid.UUID(order_id)]
    assert orders.app.service.settled.ran_out == ran_out  # woken by the confirmation's commit
    assert orders.app.service.settled.waiting == 0


async def test_a_replay_with_the_key_waits_until_the_saga_confirms_the_order(orders):
    product = orders.catalog.add()
    _, metadata = orders.token()
    request = create_request([(product, 2)], key="checkout-wait")
    placed = (await orders.stub.CreateOrder(request, metadata=metadata)).order
    await reserved(orders, placed.id)
    await paid(orders, placed.id)
    [commit] = await orders.bus.wait_for(placed.id, "inventory.commit_stock")

    request.wait_seconds = 10
    ran_out = orders.app.service.settled.ran_out
    waiting = asyncio.ensure_future(orders.stub.CreateOrder(request, metadata=metadata, timeout=20))
    await waiting_for(orders.app.service.settled, 1)
    await orders.bus.reply(
        "inventory.stock_committed",
        placed.id,
        inv.StockCommitted(order_id=placed.id),
        causation_id=commit.event_id,
    )
    response = await waiting

    assert response.idempotent_replay is True
    assert response.order.id == placed.id
    assert response.order.status == order_pb2.ORDER_STATUS_CONFIRMED
    assert [h.status for h in response.order.history][-1] == order_pb2.ORDER_STATUS_CONFIRMED
    assert orders.app.service.settled.ran_out == ran_out


async def test_a_wait_without_a_transition_answers_the_order_as_it_is_at_its_end(orders):
    product = orders.catalog.add()
    _, metadata = orders.token()

    ran_out = orders.app.service.settled.ran_out

    response = await orders.stub.CreateOrder(
        create_request([(product, 1)], wait_seconds=1), metadata=metadata, timeout=10
    )

    assert response.order.status == order_pb2.ORDER_STATUS_PENDING
    assert orders.app.service.settled.ran_out == ran_out + 1  # it waited: nothing settled the order
    assert orders.app.service.settled.waiting == 0


async def test_a_call_without_a_deadline_waits_as_asked(orders):
    product = orders.catalog.add()
    _, metadata = orders.token()

    ran_out = orders.app.service.settled.ran_out

    response = await orders.stub.CreateOrder(
        create_request([(product, 1)], wait_seconds=1), metadata=metadata
    )

    assert response.order.status == order_pb2.ORDER_STATUS_PENDING
    assert orders.app.service.settled.ran_out == ran_out + 1


async def test_a_wait_longer_than_the_calls_deadline_answers_before_the_deadline(orders):
    product = orders.catalog.add()
    _, metadata = orders.token()

    ran_out = orders.app.service.settled.ran_out

    # Not DEADLINE_EXCEEDED: the wait is cut to the call's deadline, and the answer comes before it.
    response = await orders.stub.CreateOrder(
        create_request([(product, 1)], wait_seconds=10), metadata=metadata, timeout=2
    )

    assert response.order.status == order_pb2.ORDER_STATUS_PENDING
    assert orders.app.service.settled.ran_out == ran_out + 1


@pytest.mark.parametrize("wait_seconds", [-1, 11, 2**31 - 1, -(2**31)])
async def test_a_wait_outside_0_to_10_seconds_is_refused_and_nothing_is_written(orders, wait_seconds):
    product = orders.catalog.add()
    _, metadata = orders.token()

    code, fields = await rpc_error(
        orders.stub.CreateOrder(
            create_request([(product, 1)], wait_seconds=wait_seconds), metadata=metadata, timeout=5
        )
    )

    assert (code, fields) == (grpc.StatusCode.INVALID_ARGUMENT, ["wait_seconds"])
    assert await orders.scalar("SELECT count(*) FROM orders") == 0
    assert await orders.scalar("SELECT count(*) FROM outbox") == 0


async def test_a_waiting_create_needs_a_signed_in_caller(orders):
    product = orders.catalog.add()

    code, _ = await rpc_error(
        orders.stub.CreateOrder(create_request([(product, 1)], wait_seconds=5), timeout=10)
    )

    assert code == grpc.StatusCode.UNAUTHENTICATED
    assert await orders.scalar("SELECT count(*) FROM orders") == 0


async def test_the_listener_reconnects_after_losing_its_connection(orders):
    [(old_pid,)] = await eventually(lambda: orders.execute(LISTENER), what="the settled-order listener")
    await orders.execute("SELECT pg_terminate_backend(:pid)", pid=old_pid)

    async def new_listener() -> list:
        return [row for row in await orders.execute(LISTENER) if row[0] != old_pid]

    await eventually(new_listener, what="the settled-order listener back")

    await a_cancel_wakes_a_waiting_create(orders)


async def test_without_a_listener_a_wait_ends_at_its_deadline_with_the_order_as_it_is(orders):
    product = orders.catalog.add()
    _, metadata = orders.token()
    placed = (await orders.stub.CreateOrder(create_request([(product, 1)]), metadata=metadata)).order
    order_id = uuid.UUID(placed.id)
    deaf = SettledOrders(orders.app.runtime.settings.database_url)  # its `run` never started

    waiting = asyncio.create_task(
        deaf.until_settled(order_id, 1.5, lambda: queries.load(orders.sessions, order_id))
    )
    await waiting_for(deaf, 1)
    await orders.stub.CancelOrder(order_pb2.CancelOrderRequest(order_id=placed.id), metadata=metadata)
    order = await waiting

    assert order.status == "CANCELLED"
    assert deaf.ran_out == 1  # nobody woke it: it read the order again at its deadline
    assert deaf.waiting == 0
