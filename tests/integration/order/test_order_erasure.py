"""account.deleted in the order service: the account's orders keep their lines, amounts and
statuses, their shipping address loses every personal field (the country stays, for the books),
and the published order events that copied it leave the outbox; another account's orders are
untouched. Handled twice, or a second time under a new event id, the result is the same."""

from __future__ import annotations

import pytest

from ecommerce.events.v1 import account_events_pb2, envelope_pb2
from order.erasure import ERASED
from servicekit.kafka import new_envelope
from servicekit.timestamps import now_timestamp
from servicekit.topics import ACCOUNT_EVENTS, AccountEvent
from tests.helpers import eventually
from tests.integration import harness
from tests.integration.order.test_order_saga import confirmed_order

pytestmark = pytest.mark.usefixtures("orders")

STREET = "12 Analytical Row"  # tests.integration.order.helpers.address()


def deleted(account_id: str) -> envelope_pb2.EventEnvelope:
    return new_envelope(
        event_type=AccountEvent.DELETED,
        aggregate_id=account_id,
        producer="account",
        payload=account_events_pb2.AccountDeleted(account_id=account_id, deleted_at=now_timestamp()),
    )


async def handled(orders, envelope: envelope_pb2.EventEnvelope) -> None:
    await harness.produce(orders.bus.producer, ACCOUNT_EVENTS, envelope)
    await eventually(
        lambda: orders.scalar("SELECT count(*) FROM inbox WHERE event_id = :id", id=envelope.event_id),
        what=f"account.deleted {envelope.event_id} handled",
    )


async def snapshot(orders, order_id: str) -> list:
    return await orders.execute(
        "SELECT o.status, o.total_minor, o.currency, o.shipping_address, "
        " (SELECT array_agg(i.quantity ORDER BY i.line_no) FROM order_items i WHERE i.order_id = o.id), "
        " (SELECT count(*) FROM order_history h WHERE h.order_id = o.id) "
        "FROM orders o WHERE o.id = :id",
        id=order_id,
    )


async def street_copies(orders, order_id: str) -> int:
    """Outbox rows of the order whose payload still holds the street."""
    return await orders.scalar(
        "SELECT count(*) FROM outbox WHERE key = :id AND position(convert_to(:s, 'UTF8') in payload) > 0",
        id=order_id,
        s=STREET,
    )


async def all_published(orders) -> bool:
    return await orders.scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL") == 0


async def test_the_accounts_orders_lose_their_personal_fields_and_keep_the_books(orders):
    order_id, account_id, _ = await confirmed_order(orders)
    other_id, _, _ = await confirmed_order(orders)
    await eventually(lambda: all_published(orders), what="every order event published")
    [before] = await snapshot(orders, order_id)
    other_before = await snapshot(orders, other_id)
    assert await street_copies(orders, order_id) > 0

    await handled(orders, deleted(account_id))

    [after] = await snapshot(orders, order_id)
    assert after[:3] == before[:3]
    assert after[4:] == before[4:]
    assert after[3] == {
        "name": ERASED,
        "line1": ERASED,
        "line2": "",
        "city": ERASED,
        "region": "",
        "postal_code": ERASED,
        "country": "GB",
    }
    assert await street_copies(orders, order_id) == 0
    assert await snapshot(orders, other_id) == other_before
    assert await street_copies(orders, other_id) > 0


async def test_handled_twice_the_erasure_has_the_same_result(orders):
    order_id, account_id, _ = await confirmed_order(orders)
    await eventually(lambda: all_published(orders), what="every order event published")
    first = deleted(account_id)
    await handled(orders, first)
    erased = await snapshot(orders, order_id)
    outbox = await orders.execute("SELECT id FROM outbox ORDER BY id")

    await orders.bus.deliver(ACCOUNT_EVENTS, first)  # a redelivery: the inbox has it
    await handled(orders, deleted(account_id))  # the event published again, under a new id

    assert await snapshot(orders, order_id) == erased
    assert await orders.execute("SELECT id FROM outbox ORDER BY id") == outbox
