"""ListOrders for an admin: filters (e-mail, placed between, search), the four sorts and their
cursors, and what it refuses."""

from __future__ import annotations

from datetime import UTC, datetime

import grpc
import pytest
from google.protobuf import timestamp_pb2

from ecommerce.order.v1 import order_pb2
from tests.integration.order.helpers import address, create_request, rpc_error

pytestmark = pytest.mark.usefixtures("orders")


def stamp(text: str) -> timestamp_pb2.Timestamp:
    value = timestamp_pb2.Timestamp()
    value.FromDatetime(datetime.fromisoformat(text).astimezone(UTC))
    return value


async def placed(orders, *, price_minor: int, name: str, at: str, email: str | None = None) -> str:
    """An order of one product at `price_minor`, shipped to `name`, placed at `at`."""
    product = orders.catalog.add(price_minor=price_minor, name=f"Thing {price_minor}")
    _, customer = orders.token()
    order = (
        await orders.stub.CreateOrder(
            create_request([(product, 1)], shipping=address(name=name)), metadata=customer
        )
    ).order
    await orders.execute(
        "UPDATE orders SET created_at = :at, email = :email WHERE id = :id",
        at=datetime.fromisoformat(at),
        email=email,
        id=order.id,
    )
    return order.id


async def listed(orders, **fields) -> list[str]:
    """Every page of the listing, one order a page, following the cursors."""
    _, admin = orders.token(role="ADMIN")
    ids: list[str] = []
    token = ""
    while True:
        response = await orders.stub.ListOrders(
            order_pb2.ListOrdersRequest(page_size=1, page_token=token, **fields), metadata=admin
        )
        ids += [o.id for o in response.orders]
        assert response.total_count >= len(ids)
        if not response.has_next_page:
            return ids
        token = response.next_page_token


@pytest.fixture
async def four(orders) -> dict[str, str]:
    return {
        "cheap_old": await placed(
            orders, price_minor=100, name="Ada Lovelace", at="2024-01-10T10:00:00+00:00"
        ),
        "dear_old": await placed(
            orders, price_minor=900, name="Grace Hopper", at="2024-02-10T10:00:00+00:00", email="grace@x.test"
        ),
        "mid_new": await placed(orders, price_minor=500, name="Alan Turing", at="2024-03-10T10:00:00+00:00"),
        "tied_new": await placed(
            orders, price_minor=500, name="Edsger 100%_Dijkstra", at="2024-04-10T10:00:00+00:00"
        ),
    }


@pytest.mark.parametrize(
    ("sort", "expected"),
    [
        (order_pb2.ORDER_SORT_UNSPECIFIED, ["tied_new", "mid_new", "dear_old", "cheap_old"]),
        (order_pb2.ORDER_SORT_PLACED_AT_DESC, ["tied_new", "mid_new", "dear_old", "cheap_old"]),
        (order_pb2.ORDER_SORT_PLACED_AT_ASC, ["cheap_old", "dear_old", "mid_new", "tied_new"]),
        (order_pb2.ORDER_SORT_TOTAL_DESC, ["dear_old", "tied_new|mid_new", "tied_new|mid_new", "cheap_old"]),
        (order_pb2.ORDER_SORT_TOTAL_ASC, ["cheap_old", "tied_new|mid_new", "tied_new|mid_new", "dear_old"]),
    ],
)
async def test_every_sort_pages_through_each_order_once_in_its_order(orders, four, sort, expected):
    ids = await listed(orders, sort=sort)

    names = {v: k for k, v in four.items()}
    assert sorted(ids) == sorted(four.values())
    assert all(names[i] in e.split("|") for i, e in zip(ids, expected, strict=True))


async def test_total_ties_are_broken_by_id_the_same_way_on_every_page(orders, four):
    descending = await listed(orders, sort=order_pb2.ORDER_SORT_TOTAL_DESC)
    ascending = await listed(orders, sort=order_pb2.ORDER_SORT_TOTAL_ASC)

    assert descending == list(reversed(ascending))


async def test_filters_by_email_and_placed_between(orders, four):
    assert await listed(orders, email=" GRACE@x.test ") == [four["dear_old"]]
    assert await listed(
        orders,
        placed_after=stamp("2024-02-10T10:00:00+00:00"),
        placed_before=stamp("2024-04-01T00:00:00+00:00"),
    ) == [four["mid_new"], four["dear_old"]]
    assert await listed(orders, placed_after=stamp("2025-01-01T00:00:00+00:00")) == []


@pytest.mark.parametrize(
    ("search", "expected"),
    [
        ("hopper", ["dear_old"]),  # shipping name, any case
        ("GRACE@X", ["dear_old"]),  # e-mail
        ("thing 100", ["cheap_old"]),  # a line's product name
        ("100%_", ["tied_new"]),  # wildcards match only literally
        ("%", ["tied_new"]),  # only the name holding a % matches
        ("_", ["tied_new"]),
        ("a%b", []),
    ],
)
async def test_search_matches_name_email_product_and_takes_wildcards_literally(
    orders, four, search, expected
):
    assert sorted(await listed(orders, search=search)) == sorted(four[k] for k in expected)


async def test_search_by_an_order_id_prefix(orders, four):
    assert await listed(orders, search=four["mid_new"][:8].upper()) == [four["mid_new"]]


async def test_a_cursor_is_bound_to_its_sort_and_filter(orders, four):
    _, admin = orders.token(role="ADMIN")
    first = await orders.stub.ListOrders(
        order_pb2.ListOrdersRequest(page_size=1, sort=order_pb2.ORDER_SORT_TOTAL_ASC), metadata=admin
    )

    other_sort = rpc_error(
        orders.stub.ListOrders(
            order_pb2.ListOrdersRequest(
                page_token=first.next_page_token, sort=order_pb2.ORDER_SORT_TOTAL_DESC
            ),
            metadata=admin,
        )
    )
    other_filter = rpc_error(
        orders.stub.ListOrders(
            order_pb2.ListOrdersRequest(
                page_token=first.next_page_token, sort=order_pb2.ORDER_SORT_TOTAL_ASC, search="a"
            ),
            metadata=admin,
        )
    )

    assert await other_sort == (grpc.StatusCode.INVALID_ARGUMENT, ["page_token"])
    assert await other_filter == (grpc.StatusCode.INVALID_ARGUMENT, ["page_token"])


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"search": "x" * 101}, "search"),
        ({"search": "bad\x00text"}, "search"),
        ({"email": "a" * 300 + "@x.test"}, "email"),
        ({"sort": 99}, "sort"),
        (
            {
                "placed_after": stamp("2024-02-01T00:00:00+00:00"),
                "placed_before": stamp("2024-01-01T00:00:00+00:00"),
            },
            "placed_before",
        ),
    ],
    ids=["long-search", "control-search", "long-email", "unknown-sort", "empty-range"],
)
async def test_bad_filters_are_refused_naming_the_field(orders, fields, field):
    _, admin = orders.token(role="ADMIN")

    assert await rpc_error(orders.stub.ListOrders(order_pb2.ListOrdersRequest(**fields), metadata=admin)) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        [field],
    )


async def test_a_customer_may_not_filter_orders(orders):
    _, customer = orders.token()

    code, _ = await rpc_error(
        orders.stub.ListOrders(order_pb2.ListOrdersRequest(search="a"), metadata=customer)
    )

    assert code == grpc.StatusCode.PERMISSION_DENIED
