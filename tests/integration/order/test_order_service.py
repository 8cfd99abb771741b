"""CreateOrder, reading, listing and the manual transitions, against real PostgreSQL and broker."""

from __future__ import annotations

import asyncio
import uuid

import grpc
import pytest

from ecommerce.events.v1 import inventory_events_pb2, order_events_pb2
from ecommerce.order.v1 import order_pb2
from servicekit.kafka import unpack
from tests.integration.order.helpers import address, create_request, rpc_error

pytestmark = pytest.mark.usefixtures("orders")


async def nothing_written(orders) -> bool:
    return (
        await orders.scalar("SELECT count(*) FROM orders") == 0
        and await orders.scalar("SELECT count(*) FROM outbox") == 0
    )


# -- placing an order ------------------------------------------------------------------------------


async def test_an_order_is_priced_by_the_catalog_and_written_with_its_saga_in_one_transaction(orders):
    cheap = orders.catalog.add(price_minor=250, name="Pencil")
    dear = orders.catalog.add(price_minor=12_999, name="Lamp")
    account_id, metadata = orders.token()

    response = await orders.stub.CreateOrder(create_request([(cheap, 4), (dear, 1)]), metadata=metadata)

    order = response.order
    assert response.idempotent_replay is False
    assert order.account_id == account_id
    assert order.status == order_pb2.ORDER_STATUS_PENDING
    assert [
        (i.name, i.quantity, i.unit_price.amount_minor, i.line_total.amount_minor) for i in order.items
    ] == [
        ("Pencil", 4, 250, 1000),
        ("Lamp", 1, 12_999, 12_999),
    ]
    assert (order.total.amount_minor, order.total.currency) == (13_999, "EUR")
    assert [(h.status, h.reason) for h in order.history] == [(order_pb2.ORDER_STATUS_PENDING, "order placed")]
    assert order.shipping_address == address()
    rows = await orders.execute("SELECT topic, key, event_type FROM outbox ORDER BY id")
    # Placing is one message on order.events: the status change into PENDING, with the details.
    assert rows == [
        ("inventory.commands", order.id, "inventory.reserve_stock"),
        ("payment.commands", order.id, "payment.authorize_payment"),
        ("order.events", order.id, "order.status_changed"),
    ]
    saga = await orders.execute(
        "SELECT saga_step, saga_attempts, saga_pending FROM orders WHERE id = :id", id=order.id
    )
    assert saga == [("RESERVE_AND_AUTHORIZE", 1, ["AUTHORIZE_PAYMENT", "RESERVE_STOCK"])]


async def test_the_reserve_command_and_the_order_facts_reach_the_broker(orders):
    product = orders.catalog.add()
    account_id, metadata = orders.token()

    order = (await orders.stub.CreateOrder(create_request([(product, 3)]), metadata=metadata)).order

    [command] = await orders.bus.wait_for(order.id, "inventory.reserve_stock")
    reserve = unpack(command, inventory_events_pb2.ReserveStock)
    assert reserve.order_id == order.id
    assert [(line.product_id, line.quantity) for line in reserve.lines] == [(product, 3)]
    [changed] = await orders.bus.wait_for(order.id, "order.status_changed")
    changed_payload = unpack(changed, order_events_pb2.OrderStatusChanged)
    assert changed_payload.account_id == account_id
    assert changed_payload.old_status == order_pb2.ORDER_STATUS_UNSPECIFIED
    assert changed_payload.new_status == order_pb2.ORDER_STATUS_PENDING
    # The placing's details ride on it: no order.created of its own.
    assert [(i.product_id, i.quantity) for i in changed_payload.details.items] == [(product, 3)]
    assert changed_payload.details.shipping_address == address()
    assert orders.bus.types(order.id, "order.events") == ["order.status_changed"]


async def test_the_callers_token_is_forwarded_to_the_catalog_and_payment(orders):
    product = orders.catalog.add()
    _, metadata = orders.token()

    await orders.stub.CreateOrder(create_request([(product, 1)]), metadata=metadata)

    assert orders.catalog.calls == [([product], metadata[0][1])]
    assert orders.payments.calls == [("tok_visa", metadata[0][1])]


async def test_lines_naming_the_same_product_are_merged_into_one(orders):
    product = orders.catalog.add(price_minor=100)
    other = orders.catalog.add(price_minor=10)
    _, metadata = orders.token()

    order = (
        await orders.stub.CreateOrder(
            create_request([(product, 2), (other, 1), (product, 5)]), metadata=metadata
        )
    ).order

    assert [(i.product_id, i.quantity) for i in order.items] == [(product, 7), (other, 1)]
    assert order.total.amount_minor == 710


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda r, p: r.ClearField("items"), "items"),
        (lambda r, p: [r.items.add(product_id=p, quantity=1) for _ in range(50)], "items"),
        (lambda r, p: setattr(r.items[0], "quantity", 0), "items[0].quantity"),
        (lambda r, p: setattr(r.items[0], "quantity", -5), "items[0].quantity"),
        (lambda r, p: setattr(r.items[0], "quantity", 1001), "items[0].quantity"),
        (lambda r, p: r.items.add(product_id=p, quantity=1000), "items[1].quantity"),
        (lambda r, p: setattr(r.items[0], "product_id", "not-a-uuid"), "items[0].product_id"),
        (lambda r, p: setattr(r.items[0], "product_id", "x" * 1_000_000), "items[0].product_id"),
        (lambda r, p: setattr(r.items[0], "product_id", str(uuid.uuid4())), "items[0].product_id"),
        (lambda r, p: setattr(r, "payment_token", ""), "payment_token"),
        (lambda r, p: setattr(r, "payment_token", "   "), "payment_token"),
        (lambda r, p: setattr(r, "payment_token", "tok_" + "x" * 300), "payment_token"),
        (lambda r, p: setattr(r, "payment_token", "tok_\x00visa"), "payment_token"),
        (lambda r, p: setattr(r, "payment_token", "tok_stolen"), "payment_token"),
        (lambda r, p: r.ClearField("shipping_address"), "shipping_address.name"),
        (lambda r, p: setattr(r.shipping_address, "name", "N" * 101), "shipping_address.name"),
        (lambda r, p: setattr(r.shipping_address, "city", ""), "shipping_address.city"),
        (lambda r, p: setattr(r.shipping_address, "line1", "Main St\u202e"), "shipping_address.line1"),
        (lambda r, p: setattr(r.shipping_address, "country", "XX"), "shipping_address.country"),
        (lambda r, p: setattr(r.shipping_address, "country", "GBR"), "shipping_address.country"),
        (lambda r, p: setattr(r.shipping_address, "postal_code", "1" * 21), "shipping_address.postal_code"),
        (lambda r, p: setattr(r, "idempotency_key", "k" * 256), "idempotency_key"),
        (lambda r, p: setattr(r, "idempotency_key", "key\nwith a newline"), "idempotency_key"),
    ],
    ids=[
        "no-items",
        "51-lines",
        "quantity-0",
        "quantity-negative",
        "quantity-1001",
        "merged-over-1000",
        "malformed-product",
        "1MB-product-id",
        "unknown-product",
        "empty-token",
        "blank-token",
        "oversized-token",
        "control-char-token",
        "unknown-token",
        "no-address",
        "long-name",
        "no-city",
        "bidi-override",
        "unknown-country",
        "alpha3-country",
        "long-postal-code",
        "256-char-key",
        "control-char-key",
    ],
)
async def test_bad_input_names_the_field_and_writes_nothing(orders, mutate, field):
    product = orders.catalog.add()
    request = create_request([(product, 1)])
    mutate(request, product)
    _, metadata = orders.token()

    code, fields = await rpc_error(orders.stub.CreateOrder(request, metadata=metadata))

    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert field in fields
    assert await nothing_written(orders)


async def test_an_archived_product_cannot_be_ordered(orders):
    live = orders.catalog.add()
    archived = orders.catalog.add(archived=True)
    _, metadata = orders.token()

    code, fields = await rpc_error(
        orders.stub.CreateOrder(create_request([(live, 1), (archived, 1)]), metadata=metadata)
    )

    assert (code, fields) == (grpc.StatusCode.INVALID_ARGUMENT, ["items[1].product_id"])
    assert await nothing_written(orders)


async def test_products_in_two_currencies_cannot_share_an_order(orders):
    euros = orders.catalog.add(currency="EUR")
    dollars = orders.catalog.add(currency="USD")
    _, metadata = orders.token()

    code, fields = await rpc_error(
        orders.stub.CreateOrder(create_request([(euros, 1), (dollars, 1)]), metadata=metadata)
    )

    assert (code, fields) == (grpc.StatusCode.INVALID_ARGUMENT, ["items"])
    assert await nothing_written(orders)


async def test_an_unknown_payment_token_is_refused_before_anything_is_written(orders):
    product = orders.catalog.add()
    _, metadata = orders.token()

    code, fields = await rpc_error(
        orders.stub.CreateOrder(create_request([(product, 1)], token="tok_unknown"), metadata=metadata)
    )

    assert (code, fields) == (grpc.StatusCode.INVALID_ARGUMENT, ["payment_token"])
    assert await nothing_written(orders)


async def test_an_unreachable_catalog_is_unavailable_and_nothing_is_written(orders):
    product = orders.catalog.add()
    _, metadata = orders.token()
    await orders.catalog_server.stop()
    try:
        code, _ = await rpc_error(orders.stub.CreateOrder(create_request([(product, 1)]), metadata=metadata))
    finally:
        await orders.catalog_server.start()

    assert code == grpc.StatusCode.UNAVAILABLE
    assert await nothing_written(orders)


async def test_placing_an_order_needs_a_signed_in_caller(orders):
    product = orders.catalog.add()

    anonymous, _ = await rpc_error(orders.stub.CreateOrder(create_request([(product, 1)])))
    forged, _ = await rpc_error(
        orders.stub.CreateOrder(
            create_request([(product, 1)]), metadata=[("authorization", "Bearer not.a.token")]
        )
    )

    assert anonymous == forged == grpc.StatusCode.UNAUTHENTICATED
    assert await nothing_written(orders)


# -- idempotency ------------------------------------------------------------------------------------


async def test_the_same_key_and_payload_returns_the_same_order(orders):
    product = orders.catalog.add()
    _, metadata = orders.token()
    request = create_request([(product, 2)], key="checkout-1")

    first = await orders.stub.CreateOrder(request, metadata=metadata)
    again = await orders.stub.CreateOrder(request, metadata=metadata)

    assert again.order.id == first.order.id
    assert (first.idempotent_replay, again.idempotent_replay) == (False, True)
    assert await orders.scalar("SELECT count(*) FROM orders") == 1
    assert (
        await orders.scalar("SELECT count(*) FROM outbox WHERE event_type = 'inventory.reserve_stock'") == 1
    )


async def test_the_same_key_with_the_lines_in_another_order_is_the_same_payload(orders):
    a, b = orders.catalog.add(), orders.catalog.add()
    _, metadata = orders.token()

    first = await orders.stub.CreateOrder(create_request([(a, 1), (b, 2)], key="k"), metadata=metadata)
    again = await orders.stub.CreateOrder(create_request([(b, 2), (a, 1)], key="k"), metadata=metadata)

    assert again.order.id == first.order.id


async def test_the_same_key_with_another_payload_is_a_conflict(orders):
    product = orders.catalog.add()
    _, metadata = orders.token()
    await orders.stub.CreateOrder(create_request([(product, 1)], key="checkout-2"), metadata=metadata)

    code, fields = await rpc_error(
        orders.stub.CreateOrder(create_request([(product, 2)], key="checkout-2"), metadata=metadata)
    )

    assert (code, fields) == (grpc.StatusCode.ALREADY_EXISTS, ["idempotency_key"])
    assert await orders.scalar("SELECT count(*) FROM orders") == 1


async def test_keys_are_scoped_to_the_caller(orders):
    product = orders.catalog.add()
    _, alice = orders.token()
    _, bob = orders.token()
    request = create_request([(product, 1)], key="same-key")

    first = await orders.stub.CreateOrder(request, metadata=alice)
    second = await orders.stub.CreateOrder(request, metadata=bob)

    assert first.order.id != second.order.id
    assert second.idempotent_replay is False


async def test_concurrent_requests_with_one_key_make_one_order(orders):
    product = orders.catalog.add()
    _, metadata = orders.token()
    request = create_request([(product, 1)], key="double-click")

    responses = await asyncio.gather(
        *(orders.stub.CreateOrder(request, metadata=metadata) for _ in range(10))
    )

    assert len({r.order.id for r in responses}) == 1
    assert sum(not r.idempotent_replay for r in responses) == 1
    assert await orders.scalar("SELECT count(*) FROM orders") == 1
    assert (
        await orders.scalar("SELECT count(*) FROM outbox WHERE event_type = 'inventory.reserve_stock'") == 1
    )


# -- reading and listing ----------------------------------------------------------------------------


async def test_a_customer_reads_their_own_order_and_not_anothers(orders):
    product = orders.catalog.add()
    _, alice = orders.token()
    _, bob = orders.token()
    _, admin = orders.token(role="ADMIN")
    order = (await orders.stub.CreateOrder(create_request([(product, 1)]), metadata=alice)).order

    own = await orders.stub.GetOrder(order_pb2.GetOrderRequest(order_id=order.id), metadata=alice)
    by_admin = await orders.stub.GetOrder(order_pb2.GetOrderRequest(order_id=order.id), metadata=admin)
    idor, _ = await rpc_error(
        orders.stub.GetOrder(order_pb2.GetOrderRequest(order_id=order.id), metadata=bob)
    )
    unknown, _ = await rpc_error(
        orders.stub.GetOrder(order_pb2.GetOrderRequest(order_id=str(uuid.uuid4())), metadata=alice)
    )
    malformed, fields = await rpc_error(
        orders.stub.GetOrder(order_pb2.GetOrderRequest(order_id="1 OR 1=1"), metadata=alice)
    )
    anonymous, _ = await rpc_error(orders.stub.GetOrder(order_pb2.GetOrderRequest(order_id=order.id)))

    assert own.order == by_admin.order
    assert idor == unknown == grpc.StatusCode.NOT_FOUND
    assert (malformed, fields) == (grpc.StatusCode.INVALID_ARGUMENT, ["order_id"])
    assert anonymous == grpc.StatusCode.UNAUTHENTICATED


async def test_my_orders_pages_through_the_callers_orders_newest_first_without_gaps(orders):
    product = orders.catalog.add()
    _, alice = orders.token()
    _, bob = orders.token()
    placed = [
        (await orders.stub.CreateOrder(create_request([(product, 1)]), metadata=alice)).order.id
        for _ in range(5)
    ]
    await orders.stub.CreateOrder(create_request([(product, 1)]), metadata=bob)

    seen: list[str] = []
    token = ""
    while True:
        page = await orders.stub.ListMyOrders(
            order_pb2.ListMyOrdersRequest(page_size=2, page_token=token), metadata=alice
        )
        assert page.total_count == 5
        seen.extend(o.id for o in page.orders)
        if not page.has_next_page:
            break
        token = page.next_page_token

    assert seen == list(reversed(placed))


async def test_list_orders_is_for_admins_and_filters_by_status(orders):
    product = orders.catalog.add()
    _, customer = orders.token()
    _, admin = orders.token(role="ADMIN")
    first = (await orders.stub.CreateOrder(create_request([(product, 1)]), metadata=customer)).order
    second = (await orders.stub.CreateOrder(create_request([(product, 1)]), metadata=customer)).order
    await orders.stub.CancelOrder(order_pb2.CancelOrderRequest(order_id=first.id), metadata=customer)

    cancelled = await orders.stub.ListOrders(
        order_pb2.ListOrdersRequest(status=order_pb2.ORDER_STATUS_CANCELLED), metadata=admin
    )
    everything = await orders.stub.ListOrders(order_pb2.ListOrdersRequest(), metadata=admin)
    denied, _ = await rpc_error(orders.stub.ListOrders(order_pb2.ListOrdersRequest(), metadata=customer))

    assert [o.id for o in cancelled.orders] == [first.id]
    assert [o.id for o in everything.orders] == [second.id, first.id]
    assert denied == grpc.StatusCode.PERMISSION_DENIED


@pytest.mark.parametrize(
    "request_",
    [
        order_pb2.ListOrdersRequest(page_size=101),
        order_pb2.ListOrdersRequest(page_size=-1),
        order_pb2.ListOrdersRequest(page_token="forged"),
        order_pb2.ListOrdersRequest(page_token="A" * 10_000),
        order_pb2.ListOrdersRequest(status=99),
        order_pb2.ListOrdersRequest(account_id="me"),
    ],
    ids=["page-101", "page-negative", "forged-cursor", "huge-cursor", "unknown-status", "bad-account"],
)
async def test_list_orders_refuses_bad_arguments(orders, request_):
    _, admin = orders.token(role="ADMIN")

    code, fields = await rpc_error(orders.stub.ListOrders(request_, metadata=admin))

    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert len(fields) == 1


async def test_a_cursor_of_one_listing_does_not_open_another(orders):
    product = orders.catalog.add()
    _, customer = orders.token()
    _, admin = orders.token(role="ADMIN")
    for _ in range(2):
        await orders.stub.CreateOrder(create_request([(product, 1)]), metadata=customer)
    mine = await orders.stub.ListMyOrders(order_pb2.ListMyOrdersRequest(page_size=1), metadata=customer)

    code, fields = await rpc_error(
        orders.stub.ListOrders(order_pb2.ListOrdersRequest(page_token=mine.next_page_token), metadata=admin)
    )

    assert (code, fields) == (grpc.StatusCode.INVALID_ARGUMENT, ["page_token"])


# -- manual transitions ---------------------------------------------------------------------------------


async def test_cancelling_another_customers_order_is_not_found_and_changes_nothing(orders):
    product = orders.catalog.add()
    _, alice = orders.token()
    _, bob = orders.token()
    order = (await orders.stub.CreateOrder(create_request([(product, 1)]), metadata=alice)).order

    code, _ = await rpc_error(
        orders.stub.CancelOrder(order_pb2.CancelOrderRequest(order_id=order.id), metadata=bob)
    )

    assert code == grpc.StatusCode.NOT_FOUND
    assert await orders.scalar("SELECT status FROM orders WHERE id = :id", id=order.id) == "PENDING"


async def test_a_cancel_note_over_500_characters_is_refused(orders):
    product = orders.catalog.add()
    _, alice = orders.token()
    order = (await orders.stub.CreateOrder(create_request([(product, 1)]), metadata=alice)).order

    code, fields = await rpc_error(
        orders.stub.CancelOrder(
            order_pb2.CancelOrderRequest(order_id=order.id, note="n" * 501), metadata=alice
        )
    )

    assert (code, fields) == (grpc.StatusCode.INVALID_ARGUMENT, ["note"])
    assert await orders.scalar("SELECT status FROM orders WHERE id = :id", id=order.id) == "PENDING"


async def test_shipping_and_delivering_are_for_admins(orders):
    product = orders.catalog.add()
    _, customer = orders.token()
    order = (await orders.stub.CreateOrder(create_request([(product, 1)]), metadata=customer)).order

    ship, _ = await rpc_error(
        orders.stub.ShipOrder(order_pb2.ShipOrderRequest(order_id=order.id), metadata=customer)
    )
    deliver, _ = await rpc_error(
        orders.stub.DeliverOrder(order_pb2.DeliverOrderRequest(order_id=order.id), metadata=customer)
    )
    anonymous, _ = await rpc_error(orders.stub.ShipOrder(order_pb2.ShipOrderRequest(order_id=order.id)))

    assert ship == deliver == grpc.StatusCode.PERMISSION_DENIED
    assert anonymous == grpc.StatusCode.UNAUTHENTICATED
    assert await orders.scalar("SELECT count(*) FROM order_history WHERE order_id = :id", id=order.id) == 1


async def test_illegal_transitions_are_conflicts(orders):
    product = orders.catalog.add()
    _, customer = orders.token()
    _, admin = orders.token(role="ADMIN")
    order = (await orders.stub.CreateOrder(create_request([(product, 1)]), metadata=customer)).order

    ship_pending, _ = await rpc_error(
        orders.stub.ShipOrder(order_pb2.ShipOrderRequest(order_id=order.id), metadata=admin)
    )
    await orders.stub.CancelOrder(order_pb2.CancelOrderRequest(order_id=order.id), metadata=customer)
    ship_cancelled, _ = await rpc_error(
        orders.stub.ShipOrder(order_pb2.ShipOrderRequest(order_id=order.id), metadata=admin)
    )
    deliver_cancelled, _ = await rpc_error(
        orders.stub.DeliverOrder(order_pb2.DeliverOrderRequest(order_id=order.id), metadata=admin)
    )
    unknown, _ = await rpc_error(
        orders.stub.ShipOrder(order_pb2.ShipOrderRequest(order_id=str(uuid.uuid4())), metadata=admin)
    )

    assert ship_pending == ship_cancelled == deliver_cancelled == grpc.StatusCode.FAILED_PRECONDITION
    assert unknown == grpc.StatusCode.NOT_FOUND
    statuses = await orders.execute(
        "SELECT status FROM order_history WHERE order_id = :id ORDER BY id", id=order.id
    )
    assert statuses == [("PENDING",), ("CANCELLED",)]


async def test_a_peer_service_calling_as_itself_owns_no_orders(orders):
    product = orders.catalog.add()
    service = [
        ("x-service-token", orders.service.settings.internal_service_token),
        ("x-service-name", "notification"),
    ]

    create, _ = await rpc_error(orders.stub.CreateOrder(create_request([(product, 1)]), metadata=service))
    mine, _ = await rpc_error(orders.stub.ListMyOrders(order_pb2.ListMyOrdersRequest(), metadata=service))

    assert create == mine == grpc.StatusCode.PERMISSION_DENIED
    assert await nothing_written(orders)
