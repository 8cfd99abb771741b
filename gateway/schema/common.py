"""Types every domain shares: Relay connections and page arguments."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import Annotated, Generic, Protocol, TypeVar

import strawberry

from gateway.errors import ApiError, bad_input
from servicekit.pages import Paged

T = TypeVar("T")
P = TypeVar("P")

MAX_PAGE_SIZE = 100

First = Annotated[int, strawberry.argument(description="Page size, 1 to 100.")]
After = Annotated[str | None, strawberry.argument(description="`endCursor` of the previous page.")]


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


class PagedRequest(Protocol):
    """A list request of ours: it names its page by size and the cursor to continue after."""

    page_size: int
    page_token: str


PagedT = TypeVar("PagedT", bound=PagedRequest)


def paged(request: PagedT, first: int, after: str | None) -> PagedT:
    """`request` asking for the page the connection arguments name; BAD_USER_INPUT for a bad `first`."""
    request.page_size = page_size(first)
    request.page_token = after or ""
    return request


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


def connection_from(response: Paged, items: Sequence[P], convert: Callable[[P], T]) -> Connection[T]:
    """A connection from a list response of ours: its items, `cursors`, `has_next_page`, `total_count`."""
    return connection(
        items,
        response.cursors,
        has_next_page=response.has_next_page,
        total_count=response.total_count,
        convert=convert,
    )
