"""The response cache's pieces without servers: which documents it keeps, the keys, when an entry
is stale, the change feed's entries, and the HTTP caching headers."""

from __future__ import annotations

import hashlib
import time

import pytest
from graphql import parse
from starlette.responses import Response
from strawberry.types.base import get_object_definition

from gateway import httpcache, responsecache
from gateway.changes import CatalogChanges
from gateway.responsecache import CATALOG_MUTATIONS, ResponseCache, key_of, plan, requested_key
from gateway.schema.catalog import CatalogMutation
from gateway.schema.variants import VariantMutation
from gateway.settings import GatewaySettings
from servicekit.changefeed import CONTENT_CHANGED, Change, crosses_zero, stock_changed

LAMP, VASE = "5d0f6a39-5c1e-4a8c-9a55-0b9f3c1d2e4f", "0b1c2d3e-4f50-4617-8899-aabbccddeeff"
QUERY = "query P($id: ID!) { product(id: $id) { id name stock } }"


class Listening(CatalogChanges):
    """Changes whose reader is taken to be current (the reader itself is tested against Redis)."""

    def __init__(self) -> None:
        super().__init__(None)

    @property
    def current(self) -> bool:
        return True


def cache(max_bytes: int = 1 << 20, ttl: float = 60.0) -> ResponseCache:
    return ResponseCache(Listening(), max_bytes=max_bytes, ttl=ttl)


def put(target: ResponseCache, key, *, products=(), listing=False, tick=None, data=b'{"product":null}'):
    target.put(
        key,
        data=data,
        etag=httpcache.etag_of(data),
        operation="P",
        cost=(3, 2),
        tick=target.changes.tick if tick is None else tick,
        product_ids=products,
        listing=listing,
    )


# -- which documents ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("document", "name", "listing"),
    [
        ("{ products(first: 2) { totalCount } }", None, True),
        ("query P($id: ID!) { product(id: $id) { id } categories { slug } }", None, False),
        (
            'query S { __typename ...Found } fragment Found on Query { searchProducts(query: "lamp") { totalCount } }',
            "S",
            True,
        ),
        ("query A { categories { id } } query B { me { id } }", "A", False),
    ],
)
def test_public_catalog_reads_are_cacheable(document, name, listing):
    assert plan(parse(document), name) == responsecache.Plan(listing=listing)


@pytest.mark.parametrize(
    ("document", "name"),
    [
        ("{ me { id } products(first: 1) { totalCount } }", None),
        ("{ products { totalCount } ...Mine } fragment Mine on Query { myOrders { totalCount } }", None),
        ("{ rateLimit { cost } }", None),
        ("{ __typename }", None),
        ('mutation { deleteProduct(id: "x") }', None),
        ('subscription { orderStatusChanged(orderId: "x") { status } }', None),
        ("query A { categories { id } } query B { categories { slug } }", None),
        ("query A { categories { id } }", "Other"),
    ],
)
def test_reads_of_ones_own_data_mutations_and_ambiguous_operations_are_not(document, name):
    assert plan(parse(document), name) is None


def test_every_catalog_mutation_makes_this_instances_answers_stale():
    names = {
        f.graphql_name or _camel(f.python_name)
        for mutations in (CatalogMutation, VariantMutation)
        for f in get_object_definition(mutations, strict=True).fields
    }

    assert names == CATALOG_MUTATIONS
    assert responsecache.changes_catalog(
        parse('mutation { adjustStock(productId: "x", delta: 1) { id } }'), None
    )
    assert not responsecache.changes_catalog(parse("mutation { logout }"), None)


def _camel(name: str) -> str:
    first, *rest = name.split("_")
    return first + "".join(part.title() for part in rest)


# -- keys -----------------------------------------------------------------------------------------------


def test_a_key_names_the_document_operation_and_variables_whatever_their_order():
    assert key_of(QUERY, None, {"a": 1, "b": [1, 2]}) == key_of(QUERY, None, {"b": [1, 2], "a": 1})
    assert key_of(QUERY, None, None) == key_of(QUERY, None, {})
    assert key_of(QUERY, None, {"id": LAMP}) != key_of(QUERY, None, {"id": VASE})
    assert key_of(QUERY, "P", {}) != key_of(QUERY, None, {})
    assert key_of(QUERY, None, ["not", "an", "object"]) is None
    assert key_of(QUERY, None, {"huge": 2**70}) is None


def test_a_persisted_query_sent_by_hash_alone_is_found_once_this_instance_kept_its_answer():
    target = cache()
    digest = hashlib.sha256(QUERY.encode()).hexdigest()
    by_hash = {
        "extensions": {"persistedQuery": {"version": 1, "sha256Hash": digest}},
        "variables": {"id": LAMP},
    }

    unknown = requested_key(target, by_hash)
    put(target, key_of(QUERY, None, {"id": LAMP}))

    assert unknown is None
    assert requested_key(target, by_hash) == key_of(QUERY, None, {"id": LAMP})
    assert requested_key(target, {**by_hash, "query": QUERY}) == key_of(QUERY, None, {"id": LAMP})


@pytest.mark.parametrize(
    "payload",
    [
        [{"query": QUERY}],  # a batch
        {"query": 42},
        {"query": QUERY, "operationName": ["P"]},
        {"query": QUERY, "variables": "id=1"},
        {"query": QUERY, "extensions": "persisted"},
        {"query": QUERY, "extensions": {"persistedQuery": {"version": 1, "sha256Hash": "0" * 64}}},
        {"extensions": {"persistedQuery": {"version": 2, "sha256Hash": "0" * 64}}},
        {"extensions": {"persistedQuery": {"version": 1, "sha256Hash": "' OR 1=1"}}},
        {"extensions": {"persistedQuery": "abc"}},
        None,
    ],
)
def test_anything_malformed_or_unknown_is_left_to_execution(payload):
    assert requested_key(cache(), payload) is None


# -- when an entry is stale ----------------------------------------------------------------------------


def test_an_entry_is_served_until_the_content_changes():
    target = cache()
    key = key_of(QUERY, None, {"id": LAMP})
    put(target, key, products=[LAMP])

    first = target.get(key)
    target.changes.apply(CONTENT_CHANGED)

    assert first is not None
    assert (first.requested, first.actual) == (3, 2)
    assert target.get(key) is None
    assert target.hits == 1


def test_a_stock_change_makes_stale_only_the_answers_that_show_the_product():
    target = cache()
    lamp, vase = key_of(QUERY, None, {"id": LAMP}), key_of(QUERY, None, {"id": VASE})
    put(target, lamp, products=[LAMP])
    put(target, vase, products=[VASE])

    target.changes.apply(stock_changed([LAMP], availability=False))

    assert target.get(lamp) is None
    assert target.get(vase) is not None


def test_a_product_selling_out_makes_listings_stale_but_not_other_products():
    target = cache()
    listing, vase = key_of("{ products { totalCount } }", None, {}), key_of(QUERY, None, {"id": VASE})
    put(target, listing, products=[VASE], listing=True)
    put(target, vase, products=[VASE])

    target.changes.apply(stock_changed([LAMP], availability=True))

    assert target.get(listing) is None
    assert target.get(vase) is not None


def test_an_answer_built_after_a_change_was_read_is_current_and_one_built_before_is_not():
    target = cache()
    before = target.changes.tick
    target.changes.apply(stock_changed([LAMP], availability=False))
    old, new = key_of(QUERY, None, {"v": 1}), key_of(QUERY, None, {"v": 2})
    put(target, old, products=[LAMP], tick=before)
    put(target, new, products=[LAMP])

    assert target.get(old) is None
    assert target.get(new) is not None


def test_nothing_is_served_while_the_change_feed_is_not_being_read():
    target = ResponseCache(CatalogChanges(None), max_bytes=1 << 20, ttl=60)
    key = key_of(QUERY, None, {})
    put(target, key)

    assert not target.changes.current
    assert target.get(key) is None


def test_an_entry_expires_after_its_ttl_even_unchanged(monkeypatch):
    target = cache(ttl=5)
    key = key_of(QUERY, None, {})
    put(target, key)
    now = time.monotonic()

    monkeypatch.setattr(responsecache.time, "monotonic", lambda: now + 4)
    kept = target.get(key)
    monkeypatch.setattr(responsecache.time, "monotonic", lambda: now + 6)

    assert kept is not None
    assert target.get(key) is None


def test_the_least_recently_used_entries_go_first_within_the_memory_bound():
    one_entry = len(b"x" * 1000) + len(QUERY) + len(b"{}") + responsecache.ENTRY_OVERHEAD + 10
    target = cache(max_bytes=2 * one_entry)
    first, second, third = (key_of(QUERY, None, {"n": n}) for n in range(3))
    put(target, first, data=b"x" * 1000)
    put(target, second, data=b"x" * 1000)
    target.get(first)  # now the second is the least recently used
    put(target, third, data=b"x" * 1000)
    put(target, key_of(QUERY, None, {"n": 9}), data=b"x" * (3 * one_entry))  # larger than it all

    assert target.get(second) is None
    assert target.get(first) is not None
    assert target.get(third) is not None
    assert len(target) == 2
    assert target.size <= target.max_bytes


# -- the change feed -----------------------------------------------------------------------------------


def entry(seq: int, change: Change) -> tuple[bytes, dict[bytes, bytes]]:
    kind, ids, availability, _ = change.arguments()
    fields = {b"seq": str(seq).encode(), b"kind": str(kind).encode(), b"ids": str(ids).encode()}
    return (f"{seq}-0".encode(), {**fields, b"availability": str(availability).encode()})


def test_the_feeds_entries_round_trip_and_a_missed_or_unreadable_one_changes_everything():
    changes = Listening()
    changes.read([entry(7, stock_changed([VASE, LAMP], availability=True))])
    content = changes.content
    stock_only = changes.tick

    changes.read([entry(8, stock_changed([LAMP], availability=False))])
    unchanged_content = changes.content
    changes.read([entry(10, stock_changed([LAMP], availability=False))])  # 9 was never read
    after_gap = changes.content
    changes.read([(b"11-0", {b"seq": b"eleven", b"kind": b"stock"})])

    assert Change.parse(entry(7, stock_changed([VASE, LAMP], availability=True))[1]) == Change(
        "stock", (VASE, LAMP) if VASE < LAMP else (LAMP, VASE), True, 7
    )
    assert content == 1
    assert stock_only == 2
    assert changes.availability == 2
    assert unchanged_content == content
    assert after_gap > content
    assert changes.content > after_gap
    assert Change.parse({b"kind": b"stock"}) is None


def test_a_stock_change_crosses_zero_when_a_product_sells_out_or_comes_back():
    assert crosses_zero(1, 0)
    assert crosses_zero(0, 4)
    assert not crosses_zero(5, 3)
    assert not crosses_zero(0, 0)


# -- HTTP caching --------------------------------------------------------------------------------------

SETTINGS = GatewaySettings(env="test", http_max_age=1, http_stale_while_revalidate=5)


def test_the_etag_is_weak_and_follows_the_data():
    tag = httpcache.etag_of(b'{"a":1}')

    assert tag.startswith('W/"')
    assert tag.endswith('"')
    assert tag == httpcache.etag_of(b'{"a":1}') != httpcache.etag_of(b'{"a":2}')
    assert httpcache.matches(tag, tag)
    assert httpcache.matches(f'"other", {tag.removeprefix("W/")}', tag)
    assert httpcache.matches("*", tag)
    assert not httpcache.matches('"other"', tag)
    assert not httpcache.matches(None, tag)


@pytest.mark.parametrize(
    ("method", "authorized", "etag", "control"),
    [
        ("GET", False, 'W/"x"', "public, max-age=1, stale-while-revalidate=5"),
        ("GET", True, 'W/"x"', "private, no-store"),
        ("POST", False, 'W/"x"', "no-store"),
        ("GET", False, None, "no-store"),
        ("POST", True, None, "private, no-store"),
    ],
)
def test_only_anonymous_gets_of_public_data_may_be_cached_by_others(method, authorized, etag, control):
    assert httpcache.cache_control(SETTINGS, method=method, authorized=authorized, etag=etag) == control


def test_a_client_holding_the_answer_gets_304_and_only_public_answers_keep_their_tag():
    def answer() -> Response:
        return Response(b"{}", media_type="application/json", headers={"ETag": 'W/"x"'})

    held = httpcache.finish(answer(), SETTINGS, method="GET", authorized=False, if_none_match='W/"x"')
    fresh = httpcache.finish(answer(), SETTINGS, method="GET", authorized=False, if_none_match='W/"y"')
    private = httpcache.finish(answer(), SETTINGS, method="GET", authorized=True, if_none_match='W/"x"')
    posted = httpcache.finish(answer(), SETTINGS, method="POST", authorized=False, if_none_match='W/"x"')

    assert (held.status_code, held.body, held.headers["etag"]) == (304, b"", 'W/"x"')
    assert held.headers["cache-control"].startswith("public")
    assert (fresh.status_code, fresh.headers["etag"]) == (200, 'W/"x"')
    assert (private.status_code, private.headers["cache-control"], "etag" in private.headers) == (
        200,
        "private, no-store",
        False,
    )
    assert (posted.status_code, posted.headers["cache-control"], "etag" in posted.headers) == (
        200,
        "no-store",
        False,
    )
