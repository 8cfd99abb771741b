"""Stock reservations for the order saga: all-or-nothing, never oversold, idempotent, expiring."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from catalog.inventory import Inventory
from ecommerce.catalog.v1 import catalog_pb2
from ecommerce.events.v1 import catalog_events_pb2, envelope_pb2, inventory_events_pb2
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

pytestmark = pytest.mark.usefixtures("clean_catalog")


async def reservation_count(catalog, order_id: str | None = None) -> int:
    if order_id is None:
        [(count,)] = await catalog.execute("SELECT count(*) FROM reservations")
    else:
        [(count,)] = await catalog.execute(
            "SELECT count(*) FROM reservations WHERE order_id = :id", id=uuid.UUID(order_id)
        )
    return count


async def test_fifty_concurrent_orders_for_ten_units_reserve_exactly_ten(catalog):
    category = await catalog.category()
    product = await catalog.product(category, stock=10)
    orders = [str(uuid.uuid4()) for _ in range(50)]

    await asyncio.gather(*(catalog.handle(RESERVE, reserve_command(o, [(product.id, 1)]), o) for o in orders))

    outcomes = {o: [r.event_type for r in await catalog.answers(o)] for o in orders}
    reserved = [o for o, types in outcomes.items() if types == ["inventory.stock_reserved"]]
    rejected = [o for o, types in outcomes.items() if types == ["inventory.stock_rejected"]]
    assert (len(reserved), len(rejected)) == (10, 40)
    assert await catalog.stock(product.id) == 0
    assert await reservation_count(catalog) == 10
    refusal = payload((await catalog.answers(rejected[0]))[0])
    assert [(line.product_id, line.requested, line.available, line.reason) for line in refusal.lines] == [
        (product.id, 1, 0, inventory_events_pb2.STOCK_REJECTION_REASON_INSUFFICIENT_STOCK)
    ]


async def test_orders_locking_two_products_in_opposite_orders_never_deadlock(catalog):
    category = await catalog.category()
    a = await catalog.product(category, name="Lamp A", stock=6)
    b = await catalog.product(category, name="Lamp B", stock=6)
    orders = [str(uuid.uuid4()) for _ in range(24)]

    await asyncio.gather(
        *(
            catalog.handle(
                RESERVE,
                reserve_command(o, [(a.id, 1), (b.id, 1)] if i % 2 else [(b.id, 1), (a.id, 1)]),
                o,
            )
            for i, o in enumerate(orders)
        )
    )

    answered = [await catalog.answers(o) for o in orders]
    assert all(len(r) == 1 for r in answered)
    kinds = [r[0].event_type for r in answered]
    assert kinds.count("inventory.stock_reserved") == 6
    assert kinds.count("inventory.stock_rejected") == 18
    assert (await catalog.stock(a.id), await catalog.stock(b.id)) == (0, 0)


async def test_an_order_is_reserved_all_or_nothing(catalog):
    category = await catalog.category()
    plenty = await catalog.product(category, name="Plenty", stock=50)
    scarce = await catalog.product(category, name="Scarce", stock=1)
    archived = await catalog.product(category, name="Gone", stock=5)
    await catalog.stub.ArchiveProduct(
        catalog_pb2.ArchiveProductRequest(product_id=archived.id),
        metadata=catalog.admin,
    )
    unknown = str(uuid.uuid4())
    order = str(uuid.uuid4())

    await catalog.handle(
        RESERVE,
        reserve_command(order, [(plenty.id, 3), (scarce.id, 2), (archived.id, 1), (unknown, 1)]),
        order,
    )

    [answer] = await catalog.answers(order)
    refusal = payload(answer)
    assert answer.event_type == "inventory.stock_rejected"
    assert {(line.product_id, line.reason, line.available) for line in refusal.lines} == {
        (scarce.id, inventory_events_pb2.STOCK_REJECTION_REASON_INSUFFICIENT_STOCK, 1),
        (archived.id, inventory_events_pb2.STOCK_REJECTION_REASON_PRODUCT_ARCHIVED, 5),
        (unknown, inventory_events_pb2.STOCK_REJECTION_REASON_PRODUCT_NOT_FOUND, 0),
    }
    assert (await catalog.stock(plenty.id), await catalog.stock(scarce.id)) == (50, 1)
    assert await reservation_count(catalog, order) == 0


async def test_a_repeated_reserve_stock_through_the_broker_reserves_once_and_answers_the_same(catalog):
    category = await catalog.category()
    product = await catalog.product(category, stock=5)
    order = str(uuid.uuid4())
    command = reserve_command(order, [(product.id, 2)])
    duplicates_before = catalog.app.consumer.duplicates

    first = await catalog.saga.send(RESERVE, command, order)
    redelivered = await catalog.saga.send(RESERVE, command, order, event_id=first.event_id)
    resent = await catalog.saga.send(RESERVE, command, order)

    async def resent_answered() -> bool:
        return len(catalog.saga.answers(resent)) == 1

    async def redelivery_dropped() -> bool:
        return catalog.app.consumer.duplicates > duplicates_before

    await eventually(resent_answered, timeout=15, what="the resent command's answer")
    await eventually(redelivery_dropped, what="the redelivery dropped by the inbox")
    [first_answer] = catalog.saga.answers(first)
    [resent_answer] = catalog.saga.answers(resent)
    assert catalog.saga.answers(redelivered) == [first_answer]  # the same event id: one answer
    assert first_answer.event_type == resent_answer.event_type == "inventory.stock_reserved"
    assert payload(first_answer).lines == payload(resent_answer).lines
    assert payload(first_answer).expires_at == payload(resent_answer).expires_at
    assert (first_answer.aggregate_id, first_answer.causation_id) == (order, first.event_id)
    assert await catalog.stock(product.id) == 3
    assert await reservation_count(catalog, order) == 1


async def test_a_repeated_reserve_stock_after_a_rejection_replays_the_rejection(catalog):
    category = await catalog.category()
    product = await catalog.product(category, stock=1)
    order = str(uuid.uuid4())

    await catalog.handle(RESERVE, reserve_command(order, [(product.id, 2)]), order)
    await catalog.stub.AdjustStock(
        catalog_pb2.AdjustStockRequest(product_id=product.id, delta=10),
        metadata=catalog.admin,
    )
    await catalog.handle(RESERVE, reserve_command(order, [(product.id, 2)]), order)

    first, second = await catalog.answers(order)
    assert first.event_type == second.event_type == "inventory.stock_rejected"
    assert payload(first) == payload(second)
    assert await catalog.stock(product.id) == 11
    assert await reservation_count(catalog, order) == 0


async def test_release_stock_twice_through_the_broker_restores_the_stock_once(catalog):
    category = await catalog.category()
    product = await catalog.product(category, stock=8)
    order = str(uuid.uuid4())
    await catalog.handle(RESERVE, reserve_command(order, [(product.id, 3)]), order)
    assert await catalog.stock(product.id) == 5

    release = release_command(order, "payment declined")
    first = await catalog.saga.send(RELEASE, release, order)
    second = await catalog.saga.send(RELEASE, release, order)

    async def both_answered() -> bool:
        return bool(catalog.saga.answers(first) and catalog.saga.answers(second))

    await eventually(both_answered, timeout=15, what="both releases answered")
    [one], [two] = catalog.saga.answers(first), catalog.saga.answers(second)
    assert one.event_type == two.event_type == "inventory.stock_released"
    assert [(line.product_id, line.quantity) for line in payload(one).lines] == [(product.id, 3)]
    assert payload(one).reason == "payment declined"
    assert await catalog.stock(product.id) == 8
    [(status,)] = await catalog.execute(
        "SELECT status FROM reservations WHERE order_id = :id", id=uuid.UUID(order)
    )
    assert status == "RELEASED"


async def test_release_of_an_unknown_order_holds_nothing_even_if_its_reservation_comes_late(catalog):
    category = await catalog.category()
    product = await catalog.product(category, stock=4)
    order = str(uuid.uuid4())

    await catalog.handle(RELEASE, release_command(order, "cancelled"), order)
    await catalog.handle(RESERVE, reserve_command(order, [(product.id, 1)]), order)

    released, late = await catalog.answers(order)
    assert released.event_type == late.event_type == "inventory.stock_released"
    assert list(payload(released).lines) == []
    assert list(payload(late).lines) == []
    assert await catalog.stock(product.id) == 4


async def test_commit_makes_a_reservation_final_and_a_later_release_gives_the_units_back(catalog):
    category = await catalog.category()
    product = await catalog.product(category, stock=6)
    order = str(uuid.uuid4())
    await catalog.handle(RESERVE, reserve_command(order, [(product.id, 2)]), order)

    await catalog.handle(COMMIT, commit_command(order), order)
    await catalog.handle(COMMIT, commit_command(order), order)
    committed_stock = await catalog.stock(product.id)
    await catalog.handle(RELEASE, release_command(order, "order cancelled"), order)

    kinds = [r.event_type for r in await catalog.answers(order)]
    assert kinds == [
        "inventory.stock_reserved",
        "inventory.stock_committed",
        "inventory.stock_committed",
        "inventory.stock_released",
    ]
    assert committed_stock == 4
    assert await catalog.stock(product.id) == 6


async def test_the_sweeper_releases_an_expired_reservation_and_publishes_its_expiry(catalog):
    category = await catalog.category()
    product = await catalog.product(category, stock=7)
    order = str(uuid.uuid4())
    short_lived = Inventory(
        sessions=catalog.app.runtime.sessions,
        outbox=catalog.app.runtime.outbox,
        cache=catalog.app.cache,
        reservation_ttl=1,
    )
    await catalog.handle(RESERVE, reserve_command(order, [(product.id, 3)]), order, inventory=short_lived)
    assert await catalog.stock(product.id) == 4

    async def expired() -> list:
        return [e for e in catalog.saga.about(order) if e.event_type == "inventory.reservation_expired"]

    [event] = await eventually(expired, timeout=15, what="inventory.reservation_expired on the broker")
    assert [(line.product_id, line.quantity) for line in payload(event).lines] == [(product.id, 3)]
    assert await catalog.stock(product.id) == 7
    [(status,)] = await catalog.execute(
        "SELECT status FROM stock_orders WHERE order_id = :id", id=uuid.UUID(order)
    )
    assert status == "EXPIRED"

    # Paid too late: the commit answers with the expiry, so the saga can refund.
    await catalog.handle(COMMIT, commit_command(order), order)
    assert (await catalog.answers(order))[-1].event_type == "inventory.reservation_expired"
    assert await catalog.stock(product.id) == 7
    # Asked again to reserve (a saga that resent its command): the expiry again, not "reserved".
    await catalog.handle(RESERVE, reserve_command(order, [(product.id, 3)]), order)
    assert (await catalog.answers(order))[-1].event_type == "inventory.reservation_expired"
    assert await catalog.stock(product.id) == 7


async def test_a_reservation_publishes_stock_changes_and_stock_low_once_per_crossing(catalog):
    category = await catalog.category()
    product = await catalog.product(category, stock=6, low_stock_threshold=3)
    first, second = str(uuid.uuid4()), str(uuid.uuid4())

    await catalog.handle(RESERVE, reserve_command(first, [(product.id, 3)]), first)
    await catalog.handle(RESERVE, reserve_command(second, [(product.id, 1)]), second)

    rows = await catalog.execute(
        "SELECT event_type, payload FROM outbox WHERE topic = 'catalog.events' AND key = :key "
        "AND event_type IN ('catalog.stock_changed', 'catalog.stock_low') ORDER BY id",
        key=product.id,
    )
    changes = []
    for event_type, raw in rows:
        envelope = envelope_pb2.EventEnvelope.FromString(raw)
        message = (
            catalog_events_pb2.StockChanged()
            if event_type == "catalog.stock_changed"
            else catalog_events_pb2.StockLow()
        )
        envelope.payload.Unpack(message)
        changes.append((event_type, message))
    assert [t for t, _ in changes] == ["catalog.stock_changed", "catalog.stock_low", "catalog.stock_changed"]
    first_change, low, second_change = (m for _, m in changes)
    assert (first_change.old_stock, first_change.new_stock, first_change.order_id) == (6, 3, first)
    assert first_change.cause == catalog_events_pb2.STOCK_CHANGE_CAUSE_RESERVATION
    assert (low.stock, low.low_stock_threshold, low.sku) == (3, 3, product.sku)
    assert (second_change.old_stock, second_change.new_stock) == (3, 2)
