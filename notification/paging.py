"""Keyset pages of the notification listings, newest first, each cursor bound to its listing."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from servicekit.cursor import CursorCodec
from servicekit.errors import InvalidArgument

T = TypeVar("T")

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    cursors: list[str]
    has_next_page: bool
    total_count: int


def parse_id(value: str, field: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except (ValueError, AttributeError, TypeError):
        raise InvalidArgument.field(field, "is not a valid id") from None


def page_size(requested: int) -> int:
    if requested == 0:
        return DEFAULT_PAGE_SIZE
    if not 1 <= requested <= MAX_PAGE_SIZE:
        raise InvalidArgument.field("page_size", f"must be between 1 and {MAX_PAGE_SIZE}")
    return requested


def keyset(position: dict[str, Any], scope: str) -> tuple[datetime, uuid.UUID]:
    """The (created_at, id) a cursor resumes after; it must belong to the same listing."""
    try:
        if position["s"] != scope:
            raise ValueError("cursor of another listing")
        return datetime.fromisoformat(position["c"]), uuid.UUID(position["i"])
    except (KeyError, TypeError, ValueError):
        raise InvalidArgument.field("page_token", "is not a valid cursor") from None


def page(rows: list[Any], size: int, total: int, codec: CursorCodec, scope: str) -> Page[Any]:
    has_next_page = len(rows) > size
    rows = rows[:size]
    cursors = [codec.encode({"s": scope, "c": r.created_at.isoformat(), "i": str(r.id)}) for r in rows]
    return Page(rows, cursors, has_next_page, total)
