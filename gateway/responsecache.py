"""The response cache: answers to public catalog reads, kept serialized in each gateway instance and
served again without executing anything while the catalog data they show has not changed.

Cacheable are queries whose root fields all answer the same whoever asks: `products`, `product`,
`categories`, `searchProducts` (and `__typename`); a document that also reads `me`, orders or the
budget is executed every time, and so is a listing of archived products (for administrators
only). An answer is kept only when it has no error.

An answer is found by its document, operation name and variables (as sent, keys sorted); it
records what it depends on (docs/caching.md):

- the catalog's content (products and categories created, changed or archived): any change of it
  makes every answer stale;
- the stock of each product it shows (every order changes some): only the answers showing those
  products become stale, so the rest stays cached while orders are placed;
- for a listing, whether a product sold out or came back (that changes who an in-stock filter lists).

Which products an answer shows is recorded while it executes (`Product.from_proto` reports every
product it builds). Versions are `gateway.changes`'; every entry also expires after a TTL, a last
line against a change the feed lost. The per-caller budget is charged for a cached answer as for an
executed one: its requested and actual cost are known from the execution that produced it.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections import OrderedDict
from collections.abc import Iterable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import orjson
from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    InlineFragmentNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
)

from gateway.changes import CatalogChanges, slot_of
from servicekit.metrics import CACHE_HITS, CACHE_MISSES

CACHE_NAME = "responses"  # the label of its hits and misses in the cache metrics

CACHEABLE_ROOTS = frozenset({"products", "product", "categories", "searchProducts", "__typename"})
LISTINGS = frozenset({"products", "searchProducts"})
# Mutations of the catalog: answered here, they make this instance's answers stale at once,
# before the change feed says so (a client reads what it just wrote).
CATALOG_MUTATIONS = frozenset(
    {
        "createProduct",
        "updateProduct",
        "deleteProduct",
        "createCategory",
        "adjustStock",
        "addProductVariant",
        "updateProductVariant",
        "deleteProductVariant",
        "setProductImages",
    }
)
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
# What one entry costs in memory beyond its bytes: the key, the entry, the LRU's links.
ENTRY_OVERHEAD = 400


# -- what an execution read ---------------------------------------------------------------------------


@dataclass
class Reads:
    product_ids: set[str] = field(default_factory=set)
    for_the_caller: bool = False


reads_of_this_execution: ContextVar[Reads | None] = ContextVar("gateway_response_reads", default=None)


def read_product(product_id: str) -> None:
    """The answer being executed shows this product (called for every product built)."""
    reads = reads_of_this_execution.get()
    if reads is not None:
        reads.product_ids.add(product_id)


def read_for_the_caller() -> None:
    """The answer being executed depends on who asks: it is not kept."""
    reads = reads_of_this_execution.get()
    if reads is not None:
        reads.for_the_caller = True


# -- which documents -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    listing: bool


def _operation(document: DocumentNode, name: str | None) -> OperationDefinitionNode | None:
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if name is None:
        return operations[0] if len(operations) == 1 else None
    return next((o for o in operations if o.name is not None and o.name.value == name), None)


def root_fields(document: DocumentNode, operation: OperationDefinitionNode) -> set[str]:
    """Names of the fields the operation selects at its root, through fragments."""
    fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
    names: set[str] = set()
    seen: set[str] = set()

    def walk(selection_set: SelectionSetNode) -> None:
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                names.add(selection.name.value)
            elif isinstance(selection, InlineFragmentNode):
                walk(selection.selection_set)
            elif isinstance(selection, FragmentSpreadNode) and selection.name.value not in seen:
                seen.add(selection.name.value)
                fragment = fragments.get(selection.name.value)
                if fragment is not None:
                    walk(fragment.selection_set)

    walk(operation.selection_set)
    return names


def plan(document: DocumentNode, operation_name: str | None) -> Plan | None:
    """How an answer of this operation is cached; None when it is not."""
    operation = _operation(document, operation_name)
    if operation is None or operation.operation != OperationType.QUERY:
        return None
    names = root_fields(document, operation)
    if not names or not names <= CACHEABLE_ROOTS or names == {"__typename"}:
        return None
    return Plan(listing=bool(names & LISTINGS))


def changes_catalog(document: DocumentNode, operation_name: str | None) -> bool:
    operation = _operation(document, operation_name)
    return (
        operation is not None
        and operation.operation == OperationType.MUTATION
        and bool(root_fields(document, operation) & CATALOG_MUTATIONS)
    )


# -- the entries ---------------------------------------------------------------------------------------

Key = tuple[str, str, bytes]


def key_of(query: str, operation_name: str | None, variables: Any) -> Key | None:
    """The key of an answer; None for variables that are not an object (or cannot be serialized)."""
    if variables is not None and not isinstance(variables, dict):
        return None
    try:
        encoded = orjson.dumps(variables or {}, option=orjson.OPT_SORT_KEYS)
    except TypeError:
        return None
    return (query, operation_name or "", encoded)


@dataclass(slots=True)
class Entry:
    data: bytes  # the answer's `data`, serialized
    etag: str
    operation: str  # the operation's name, as the metrics know it
    requested: int
    actual: int
    tick: int
    slots: tuple[int, ...]
    listing: bool
    expires_at: float
    size: int


class ResponseCache:
    """Entries by key, least recently used first, within `max_bytes`; one per gateway process."""

    def __init__(self, changes: CatalogChanges, *, max_bytes: int, ttl: float) -> None:
        self.changes = changes
        self.max_bytes = max_bytes
        self.ttl = ttl
        self.size = 0
        self._entries: OrderedDict[Key, Entry] = OrderedDict()
        # Documents by their SHA-256, for persisted queries sent by hash alone.
        self._documents: dict[str, str] = {}
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def document(self, digest: str) -> str | None:
        return self._documents.get(digest)

    def get(self, key: Key) -> Entry | None:
        """The current entry of `key` (counted as a hit), or None. Misses are counted by `missed`,
        when a cacheable operation executes: a request for a document that is never cached (`me`)
        is no miss."""
        entry = self._entries.get(key)
        if entry is not None and (
            entry.expires_at <= time.monotonic()
            or not self.changes.current
            or not self.changes.unchanged_since(entry.tick, entry.slots, listing=entry.listing)
        ):
            self._drop(key)
            entry = None
        if entry is None:
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        CACHE_HITS.labels(cache=CACHE_NAME).inc()
        return entry

    def missed(self) -> None:
        """A cacheable operation had to be executed."""
        self.misses += 1
        CACHE_MISSES.labels(cache=CACHE_NAME).inc()

    def put(
        self,
        key: Key,
        *,
        data: bytes,
        etag: str,
        operation: str,
        cost: tuple[int, int],
        tick: int,
        product_ids: Iterable[str],
        listing: bool,
    ) -> None:
        query = key[0]
        size = len(data) + len(query) + len(key[2]) + ENTRY_OVERHEAD
        if size > self.max_bytes:
            return
        self._drop(key)
        self._entries[key] = Entry(
            data=data,
            etag=etag,
            operation=operation,
            requested=cost[0],
            actual=cost[1],
            tick=tick,
            slots=tuple({slot_of(product_id) for product_id in product_ids}),
            listing=listing,
            expires_at=time.monotonic() + self.ttl,
            size=size,
        )
        self.size += size
        self._documents.setdefault(hashlib.sha256(query.encode()).hexdigest(), query)
        while self.size > self.max_bytes:
            _, dropped = self._entries.popitem(last=False)
            self.size -= dropped.size
        if len(self._documents) > len(self._entries) * 2 + 64:
            live = {k[0] for k in self._entries}
            self._documents = {d: q for d, q in self._documents.items() if q in live}

    def _drop(self, key: Key) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self.size -= entry.size


def requested_key(cache: ResponseCache, payload: Any) -> Key | None:
    """The key a request's JSON payload (or query parameters, decoded) asks for; None when this
    request must go the whole way (a batch, a document this instance does not know by its hash,
    a hash that does not match, anything malformed: the execution answers it properly)."""
    if not isinstance(payload, dict):
        return None
    query = payload.get("query")
    extensions = payload.get("extensions")
    if extensions is not None:
        if not isinstance(extensions, dict):
            return None
        persisted = extensions.get("persistedQuery")
        if persisted is not None:
            digest = persisted.get("sha256Hash") if isinstance(persisted, dict) else None
            if not isinstance(digest, str) or not _SHA256.match(digest) or persisted.get("version") != 1:
                return None
            if query is None:
                query = cache.document(digest)
            elif not isinstance(query, str) or hashlib.sha256(query.encode()).hexdigest() != digest:
                return None
    name = payload.get("operationName")
    if not isinstance(query, str) or not isinstance(name, str | None):
        return None
    return key_of(query, name, payload.get("variables"))
