"""The N+1 guard: nested orders make one batched call per service, whatever the number of orders."""

from __future__ import annotations

from tests.e2e.gateway_protection.gateways import Gateways
from tests.e2e.test_account_graphql import sign_up
from tests.e2e.test_catalog_graphql import new_category, new_product

NESTED_ORDERS = """
query Nested {
  myOrders(first: 20) {
    totalCount
    edges { node { id items { quantity product { name category { name productCount } } } payment { status } } }
  }
}"""
CREATE_ORDER = """
mutation Place($input: CreateOrderInput!) { createOrder(input: $input) { id status } }"""


ORDERS_CALLS = {
    "/ecommerce.order.v1.OrderService/ListMyOrders": 1,
    "/ecommerce.catalog.v1.CatalogService/BatchGetProducts": 1,
    "/ecommerce.catalog.v1.CatalogService/ListCategories": 1,
    "/ecommerce.payment.v1.PaymentService/BatchGetPaymentsByOrder": 1,
}


async def place_orders(gateways: Gateways, token: str, products: list[str], count: int) -> None:
    for i in range(count):
        lines = [{"productId": products[i % 2], "quantity": 1}, {"productId": products[2], "quantity": 1}]
        body = await gateways.shared.post(
            CREATE_ORDER,
            {
                "input": {
                    "items": lines,
                    "paymentToken": "tok_visa",
                    "shippingAddress": {
                        "name": "Ada",
                        "line1": "1 Main St",
                        "city": "Berlin",
                        "postalCode": "10115",
                        "country": "DE",
                    },
                }
            },
            token=token,
        )
        assert "errors" not in body, body


async def test_nested_orders_make_one_batched_call_per_service_whatever_the_number_of_orders(gateways, admin):
    slug = await new_category(gateways.shared, admin)
    products = [(await new_product(gateways.shared, admin, slug, stock=500))["id"] for _ in range(3)]
    many, one = (
        (await sign_up(gateways.shared))["accessToken"],
        (await sign_up(gateways.shared))["accessToken"],
    )
    await place_orders(gateways, many, products, 20)
    await place_orders(gateways, one, products, 1)

    twenty = await gateways.lenient.post(NESTED_ORDERS, token=many)
    single = await gateways.lenient.post(NESTED_ORDERS, token=one)

    assert "errors" not in twenty, twenty
    assert twenty["data"]["myOrders"]["totalCount"] == 20
    assert sum(len(e["node"]["items"]) for e in twenty["data"]["myOrders"]["edges"]) == 40
    assert twenty["extensions"]["rpcCalls"] == ORDERS_CALLS
    assert single["extensions"]["rpcCalls"] == ORDERS_CALLS
