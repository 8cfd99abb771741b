"""Types every domain shares: Relay connections and page arguments."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Generic, TypeVar

import strawberry
from google.protobuf import timestamp_pb2

from ecommerce.common.v1 import money_pb2
from gateway.errors import ApiError, bad_input
from servicekit.money import to_decimal

T = TypeVar("T")
P = TypeVar("P")

MAX_PAGE_SIZE = 100


@strawberry.type(description="Where a page of a connection ends (Relay cursor pagination).")
class PageInfo:
    has_next_page: bool = strawberry.field(description="Whether another page follows this one.")
    end_cursor: str | None = strawberry.field(description="Pass as `after` to fetch the next page.")


@strawberry.type(description="One item of a connection with its cursor.")
class Edge(Generic[T]):
    cursor: str = strawberry.field(description="Opaque position of this item; pass as `after`.")
    node: T = strawberry.field(description="The item.")


@strawberry.type(description="A page of items (Relay connection).")
class Connection(Generic[T]):
    edges: list[Edge[T]] = strawberry.field(description="The items of this page with their cursors.")
    page_info: PageInfo = strawberry.field(description="How to fetch the next page.")
    total_count: int = strawberry.field(description="How many items match in all pages.")


def page_size(first: int) -> int:
    if not 1 <= first <= MAX_PAGE_SIZE:
        raise bad_input("first", f"must be between 1 and {MAX_PAGE_SIZE}")
    return first


def connection(
    items: Sequence[P],
    cursors: Sequence[str],
    *,
    has_next_page: bool,
    total_count: int,
    convert: Callable[[P], T],
) -> Connection[T]:
    edges = [Edge(cursor=c, node=convert(item)) for item, c in zip(items, cursors, strict=True)]
    return Connection(
        edges=edges,
        page_info=PageInfo(has_next_page=has_next_page, end_cursor=edges[-1].cursor if edges else None),
        total_count=total_count,
    )


@contextlib.contextmanager
def arguments(**renamed: str) -> Iterator[None]:
    """Name the GraphQL argument in errors where a service names its own request field (the page
    fields of every listing are named in `gateway.errors.argument_name`)."""
    try:
        yield
    except ApiError as error:
        extensions = error.extensions or {}
        if extensions.get("field") in renamed:
            extensions["field"] = renamed[extensions["field"]]
        for violation in extensions.get("violations", []):
            violation["field"] = renamed.get(violation["field"], violation["field"])
        raise


def connection_from(response: object, items: Sequence[P], convert: Callable[[P], T]) -> Connection[T]:
    """A connection from a list response of ours: items, `cursors`, `has_next_page`, `total_count`."""
    return connection(
        items,
        response.cursors,  # type: ignore[attr-defined]
        has_next_page=response.has_next_page,  # type: ignore[attr-defined]
        total_count=response.total_count,  # type: ignore[attr-defined]
        convert=convert,
    )


def to_datetime(stamp: timestamp_pb2.Timestamp) -> datetime:
    """A protobuf timestamp as an aware datetime in UTC, to the microsecond.

    Built directly: `Timestamp.ToDatetime` with a time zone costs five times as much, and every
    listed product carries two of these."""
    return datetime.fromtimestamp(stamp.seconds, UTC).replace(microsecond=stamp.nanos // 1000)


def ids(values: Iterable[strawberry.ID]) -> list[str]:
    return [str(v) for v in values]


@strawberry.type(description="An amount of money. The amount is a decimal string, never a float.")
class Money:
    amount: Decimal = strawberry.field(description='Decimal amount in major units, e.g. "12.50".')
    currency: str = strawberry.field(description="ISO 4217 currency code, e.g. EUR.")

    @classmethod
    def from_proto(cls, message: money_pb2.Money) -> Money:
        return cls(amount=to_decimal(message.amount_minor, message.currency), currency=message.currency)
