"""Query cost on the real schema: what representative documents may cost before they run, and what
they did cost from the data they returned."""

from __future__ import annotations

import pytest
from graphql import build_schema, parse

from gateway.cost import FIELD_COSTS, CostCalculator
from gateway.schema import schema

BROWSE = """
query Browse {
  products(first: 10, sort: PRICE_ASC) {
    totalCount
    pageInfo { hasNextPage endCursor }
    edges { cursor node { id name price { amount currency } category { slug } } }
  }
}"""
# 10 + 2 = 12 per item of (edges 1 + node 1 + price 1 + category 1) + pageInfo 1 = 5  ->  60

MY_ORDERS = """
query MyOrders($first: Int!) {
  myOrders(first: $first) {
    edges { node { id status total { amount } items { quantity product { name category { name } } } payment { status } } }
  }
}"""
# (2 + 20) * (edges 1 + node 1 + total 1 + items (1 + product (1 + category 1)) + payment 1 = 7)  ->  154

FRAGMENTS_WITH_ALIASES = """
query Compare { ...Both }
fragment Both on Query {
  cheap: products(first: 5, sort: PRICE_ASC) { ...Cards }
  dear: products(first: 5, sort: PRICE_DESC) { ...Cards }
}
fragment Cards on ProductConnection { edges { node { ...Card } } }
fragment Card on Product { id now: price { amount } again: price { currency } category { name } }
"""
# Card 3, node 4, edges 5, each connection (2 + 5) * 5 = 35, two aliases  ->  70

ALIASED_MUTATIONS = """
mutation Twice {
  first: login(email: "a@example.com", password: "correct horse") { accessToken account { id } }
  second: login(email: "a@example.com", password: "correct horse") { accessToken }
  logout(refreshToken: "r")
}"""
# 10 + account 1, 10, 10  ->  31

INTROSPECTION = """
{ __typename __schema { queryType { name } types { name fields { name type { name ofType { name } } } } } }"""
# __schema 1 + queryType 1 + types (1 + fields (1 + type (1 + ofType 1)))  ->  6


def cost(document: str, variables: dict | None = None, operation: str | None = None) -> int:
    return CostCalculator(schema._schema).requested(parse(document), operation, variables)


def test_a_connection_costs_two_plus_first_times_its_selection():
    assert cost(BROWSE) == 60


def test_lists_and_objects_inside_a_connection_are_paid_once_per_item_of_the_page():
    assert cost(MY_ORDERS, {"first": 20}) == 154


def test_fragments_are_expanded_and_aliases_inside_them_count_every_time():
    assert cost(FRAGMENTS_WITH_ALIASES) == 70


def test_each_mutation_costs_ten_plus_its_selection_even_through_aliases():
    assert cost(ALIASED_MUTATIONS) == 31


def test_introspection_is_cheap_but_not_free():
    assert cost(INTROSPECTION) == 6


def test_a_fragment_spread_twice_under_two_aliases_is_paid_twice():
    once = "query { a: me { ...F } } fragment F on Account { id x: name }"
    twice = "query { a: me { ...F } b: me { ...F } } fragment F on Account { id x: name }"

    assert (cost(once), cost(twice)) == (1, 2)


def test_a_missing_first_counts_as_the_argument_default_and_a_variable_as_its_value():
    document = "query($n: Int = 7) { products(first: $n) { edges { node { id } } } }"

    assert cost("{ products { edges { node { id } } } }") == (2 + 20) * 2
    assert cost(document) == (2 + 7) * 2
    assert cost(document, {"n": 50}) == (2 + 50) * 2
    assert cost(document, {"n": 100_000}) == (2 + 100_000) * 2


def test_the_override_table_replaces_a_fields_weight():
    searched = '{ searchProducts(query: "lamp", first: 10) { edges { node { id } } } }'
    custom = CostCalculator(schema._schema, {"Query.me": 7, "Mutation.logout": 1})

    assert FIELD_COSTS["Query.searchProducts"] == 5
    assert cost(searched) == (5 + 10) * 2
    assert custom.requested(parse("{ me { id } }")) == 7
    assert custom.requested(parse('mutation { logout(refreshToken: "r") }')) == 1


def test_the_override_table_may_only_name_fields_that_exist():
    with pytest.raises(ValueError, match=r"Query\.nothing"):
        CostCalculator(schema._schema, {"Query.nothing": 3})


def test_skipped_fields_cost_nothing_and_every_operation_costs_at_least_one():
    document = "query($skip: Boolean!) { me @skip(if: $skip) { id } __typename }"

    assert cost(document, {"skip": False}) == 1
    assert cost(document, {"skip": True}) == 1
    assert cost("{ me { id } categories { name } rateLimit { cost } }") == 3


def test_the_named_operation_is_the_one_costed():
    document = "query Cheap { me { id } } query Dear { products(first: 3) { edges { node { id } } } }"

    assert (cost(document, operation="Cheap"), cost(document, operation="Dear")) == (1, 10)


def test_fragments_spreading_each_other_twice_are_costed_without_walking_every_path():
    levels = 200
    fragments = "\n".join(f"fragment F{i} on Query {{ ...F{i + 1} ...F{i + 1} }}" for i in range(levels))
    document = f"query {{ ...F0 }}\n{fragments}\nfragment F{levels} on Query {{ me {{ id }} }}"

    assert cost(document) == 2**53 - 1  # 2**200, reported within JSON's safe integers


# -- actual cost ---------------------------------------------------------------------------------

NESTED_SCHEMA = build_schema("""
type Query { categories(first: Int = 10): CategoryConnection! }
type CategoryConnection { edges: [CategoryEdge!]! pageInfo: PageInfo! }
type CategoryEdge { node: Category! }
type Category { name: String! products(first: Int = 5): ProductConnection! }
type ProductConnection { edges: [ProductEdge!]! totalCount: Int! }
type ProductEdge { node: Product! }
type Product { name: String! }
type PageInfo { hasNextPage: Boolean! }
""")
NESTED = "{ categories(first: 3) { edges { node { name products(first: 4) { edges { node { name } } } } } } }"


def test_nested_connections_multiply_by_every_parents_first():
    calculator = CostCalculator(NESTED_SCHEMA, {})

    # products (2 + 4) * 2 = 12; category node 1 + 12; edges 1 + 13; categories (2 + 3) * 14
    assert calculator.requested(parse(NESTED)) == 70
    assert calculator.requested(parse("{ categories { edges { node { products { totalCount } } } } }")) == (
        (2 + 10) * (1 + 1 + (2 + 5) * 1)
    )


def test_the_actual_cost_counts_the_items_returned_and_the_costliest_item_of_a_list():
    calculator = CostCalculator(NESTED_SCHEMA, {})
    data = {
        "categories": {
            "edges": [
                {"node": {"name": "a", "products": {"edges": [{"node": {"name": "p"}}] * 3}}},
                {"node": {"name": "b", "products": {"edges": [{"node": {"name": "q"}}]}}},
            ]
        }
    }

    # the costlier category: products (2 + 3) * 2 = 10, node 11, edges 12; categories (2 + 2) * 12
    assert calculator.actual(parse(NESTED), data) == 48


def test_a_list_is_paid_for_its_costliest_item_wherever_it_is_and_never_above_its_requested_cost():
    calculator = CostCalculator(NESTED_SCHEMA, {})
    cheap = {"node": {"name": "a", "products": None}}  # products 2, node 3, edges 4
    dear = {"node": {"name": "b", "products": {"edges": [{"node": {"name": "p"}}] * 4}}}  # edges 14
    flood = {"node": {"name": "c", "products": {"edges": [{"node": {"name": "p"}}] * 50}}}

    # The costliest item comes last: categories (2 + 3) * 14.
    assert calculator.actual(parse(NESTED), {"categories": {"edges": [cheap, cheap, dear]}}) == 70
    assert calculator.actual(parse(NESTED), {"categories": {"edges": [cheap, cheap]}}) == (2 + 2) * 4
    # A page longer than the one asked for is charged as the one asked for: (2 + 1) * 14.
    assert calculator.actual(parse(NESTED), {"categories": {"edges": [flood]}}) == 42


def test_a_null_result_costs_each_root_field_its_weight():
    calculator = CostCalculator(schema._schema)

    assert calculator.actual(parse(ALIASED_MUTATIONS), None) == 30
    assert calculator.actual(parse(BROWSE), {"products": None}) == 2


def test_the_actual_cost_of_a_full_page_is_the_requested_cost():
    calculator = CostCalculator(schema._schema)
    node = {"id": "1", "name": "n", "price": {"amount": "1", "currency": "EUR"}, "category": {"slug": "s"}}
    data = {
        "products": {
            "totalCount": 10,
            "pageInfo": {"hasNextPage": True, "endCursor": "c"},
            "edges": [{"cursor": "c", "node": node}] * 10,
        }
    }

    assert calculator.actual(parse(BROWSE), data) == cost(BROWSE) == 60


CONDITIONAL_PAGES = """
query Pages($n: Int, $withSearch: Boolean! = false) {
  products(first: $n) { edges { node { id } } }
  searchProducts(query: "lamp", first: 3) @include(if: $withSearch) { edges { node { id } } }
}"""
# products (2 + n) * 2; searchProducts (5 + 3) * 2 = 16 when included


def test_a_remembered_cost_follows_the_variables_the_document_reads():
    calculator = CostCalculator(schema._schema)
    document = parse(CONDITIONAL_PAGES)
    asked = [
        ({"n": 10}, 24),
        ({"n": 10, "withSearch": True}, 40),
        ({"n": 10, "withSearch": False}, 24),
        ({"n": 30, "withSearch": True}, 80),
        ({"n": 10}, 24),
        ({}, 44),  # `first` left out: its default, 20
        ({"n": True}, 204),  # not an integer: counts as 100, not as 1
        ({"n": 1}, 6),
        ({"n": 10, "withSearch": True, "unused": [1] * 1000}, 40),
    ]
    # Twice over: the second round is answered from what the first remembered.
    for variables, expected in [*asked, *asked]:
        assert calculator.requested(document, "Pages", variables) == expected, variables
