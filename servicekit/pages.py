"""Keyset pagination: fetch one row more than the page, and resume after the last row shown.

A listing asks its query for `size + 1` rows (`limit(size + 1)`); `page_of` keeps `size` of
them, tells from the extra one whether a next page exists and gives every row its own cursor.
For listings ordered by (created_at, id), `position_cursor` and `position_after` are the cursor
both ways, optionally bound to a scope (the filters or the parent the listing is of) so that a
cursor of one listing never resumes another."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, Protocol, TypeVar

from servicekit.cursor import CursorCodec
from servicekit.errors import InvalidArgument

T = TypeVar("T")
NOT_A_CURSOR = "is not a valid cursor"


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    # cursors[i] resumes right after items[i].
    cursors: list[str]
    has_next_page: bool
    total_count: int


class Paged(Protocol):
    """A page of any listing, or a list response carrying one: its cursors, whether a next page
    exists and the total."""

    @property
    def cursors(self) -> Sequence[str]: ...

    @property
    def has_next_page(self) -> bool: ...

    @property
    def total_count(self) -> int: ...


def page_fields(page: Paged) -> dict[str, Any]:
    """The paging fields every listing response carries beside its items; the next page's token
    is the last item's cursor, empty on the last page."""
    return {
        "cursors": page.cursors,
        "next_page_token": page.cursors[-1] if page.cursors else "",
        "has_next_page": page.has_next_page,
        "total_count": page.total_count,
    }


class Positioned(Protocol):
    """A row of a listing ordered by (created_at, id)."""

    @property
    def created_at(self) -> datetime: ...

    @property
    def id(self) -> uuid.UUID: ...


def page_size(requested: int, *, maximum: int, default: int | None = None, field: str = "page_size") -> int:
    """The page size to use: `default` for 0 when there is one, else 1..maximum.

    Raises InvalidArgument `<field>: must be between 1 and <maximum>` for any other value."""
    if requested == 0 and default is not None:
        return default
    if not 1 <= requested <= maximum:
        raise InvalidArgument.field(field, f"must be between 1 and {maximum}")
    return requested


def split_page(rows: Sequence[T], size: int) -> tuple[list[T], bool]:
    """The first `size` of up to `size + 1` fetched rows, and whether there were more."""
    return list(rows[:size]), len(rows) > size


def page_of(rows: Sequence[T], size: int, total: int, cursor: Callable[[T], str]) -> Page[T]:
    """The page of `size` rows out of up to `size + 1` fetched, each with `cursor(row)`."""
    items, has_next_page = split_page(rows, size)
    return Page(items, [cursor(row) for row in items], has_next_page, total)


def position_cursor(codec: CursorCodec, row: Positioned, *, scope: tuple[str, Any] | None = None) -> str:
    """A cursor resuming after `row`: its created_at and id, and the scope `(key, value)` if any."""
    values: dict[str, Any] = {"c": row.created_at.isoformat(), "i": str(row.id)}
    if scope is not None:
        key, value = scope
        values[key] = value
    return codec.encode(values)


def key_cursor(codec: CursorCodec, key: Any, row_id: uuid.UUID, *, scope: tuple[str, Any]) -> str:
    """A cursor resuming after the row with sort key `key` (a JSON value) and id `row_id`, for
    listings ordered by (key, id) rather than by (created_at, id)."""
    scope_key, value = scope
    return codec.encode({"k": key, "i": str(row_id), scope_key: value})


def key_after(
    codec: CursorCodec, token: str, *, scope: tuple[str, Any], field: str = "page_token", invalid: str
) -> tuple[Any, uuid.UUID]:
    """The (key, id) a `key_cursor` cursor resumes after; errors as `position_after`'s."""
    position = codec.decode(token, field=field)
    try:
        scope_key, value = scope
        if position.get(scope_key) != value or "k" not in position:
            raise ValueError("cursor of another listing")
        return position["k"], uuid.UUID(position["i"])
    except (KeyError, TypeError, ValueError, AttributeError):
        raise InvalidArgument.field(field, invalid) from None


def position_after(
    codec: CursorCodec,
    token: str,
    *,
    scope: tuple[str, Any] | None = None,
    field: str = "page_token",
    invalid: str = NOT_A_CURSOR,
) -> tuple[datetime, uuid.UUID]:
    """The (created_at, id) a `position_cursor` cursor resumes after.

    Raises InvalidArgument `<field>: is not a valid cursor` for a malformed or forged token and
    `<field>: <invalid>` for a well-signed one without the position or of another scope."""
    position = codec.decode(token, field=field)
    try:
        if scope is not None:
            key, value = scope
            if key not in position or position[key] != value:
                raise ValueError("cursor of another listing")
        return datetime.fromisoformat(position["c"]), uuid.UUID(position["i"])
    except (KeyError, TypeError, ValueError):
        raise InvalidArgument.field(field, invalid) from None
