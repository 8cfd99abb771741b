"""servicekit.pages: keyset pages and the cursors that resume them."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from servicekit.cursor import CursorCodec
from servicekit.errors import InvalidArgument
from servicekit.pages import page_fields, page_of, page_size, position_after, position_cursor, split_page

CODEC = CursorCodec("secret", purpose="rows")


@dataclass(frozen=True)
class Row:
    created_at: datetime
    id: uuid.UUID


ROWS = [Row(datetime(2026, 12, 7, tzinfo=UTC) + timedelta(seconds=n), uuid.uuid4()) for n in range(4)]


def _violations(caught):
    return [(v.field, v.description) for v in caught.value.violations]


def test_the_extra_row_fetched_tells_there_is_a_next_page():
    assert split_page(ROWS, 3) == (ROWS[:3], True)
    assert split_page(ROWS[:3], 3) == (ROWS[:3], False)
    assert split_page([], 3) == ([], False)


def test_every_row_of_a_page_gets_its_cursor():
    page = page_of(ROWS, 3, 10, lambda row: str(row.id))

    assert page.items == ROWS[:3]
    assert page.cursors == [str(row.id) for row in ROWS[:3]]
    assert page.has_next_page is True
    assert page.total_count == 10


def test_a_page_size_of_zero_is_the_default_only_where_there_is_one():
    assert page_size(0, maximum=50, default=20) == 20
    assert page_size(7, maximum=50, default=20) == 7
    assert page_size(50, maximum=50) == 50
    with pytest.raises(InvalidArgument) as caught:
        page_size(0, maximum=100)
    assert _violations(caught) == [("page_size", "must be between 1 and 100")]


@pytest.mark.parametrize("requested", [-1, 51, 2**63])
def test_a_page_size_out_of_range_is_refused(requested):
    with pytest.raises(InvalidArgument) as caught:
        page_size(requested, maximum=50, default=20, field="first")
    assert _violations(caught) == [("first", "must be between 1 and 50")]


def test_a_position_cursor_resumes_after_its_row():
    row = ROWS[1]

    assert position_after(CODEC, position_cursor(CODEC, row)) == (row.created_at, row.id)
    scoped = position_cursor(CODEC, row, scope=("f", {"s": "PAID"}))
    assert position_after(CODEC, scoped, scope=("f", {"s": "PAID"})) == (row.created_at, row.id)


def test_a_cursor_of_another_scope_is_refused_with_the_listings_message():
    cursor = position_cursor(CODEC, ROWS[0], scope=("s", "webhook-a"))

    for scope in [("s", "webhook-b"), ("f", "webhook-a")]:
        with pytest.raises(InvalidArgument) as caught:
            position_after(CODEC, cursor, scope=scope, invalid="is not a valid cursor for this listing")
        assert _violations(caught) == [("page_token", "is not a valid cursor for this listing")]


def test_an_unscoped_cursor_does_not_open_a_scoped_listing():
    with pytest.raises(InvalidArgument):
        position_after(CODEC, position_cursor(CODEC, ROWS[0]), scope=("f", {}))


@pytest.mark.parametrize(
    "values",
    [
        {},
        {"c": "yesterday", "i": str(uuid.uuid4())},
        {"c": "2026-01-01T00:00:00", "i": "x"},
        {"c": 1, "i": 2},
    ],
)
def test_a_signed_cursor_without_a_position_is_refused(values):
    with pytest.raises(InvalidArgument) as caught:
        position_after(CODEC, CODEC.encode(values))
    assert _violations(caught) == [("page_token", "is not a valid cursor")]


@pytest.mark.parametrize(
    "token", ["", "%%%", "A" * 600, position_cursor(CursorCodec("other", purpose="rows"), ROWS[0])]
)
def test_a_forged_or_foreign_cursor_is_refused(token):
    with pytest.raises(InvalidArgument) as caught:
        position_after(CODEC, token, field="after")
    assert _violations(caught) == [("after", "is not a valid cursor")]


def test_the_next_page_token_is_the_last_cursor_and_empty_on_an_empty_page():
    page = page_of(ROWS, 3, 4, lambda row: str(row.id))
    assert page_fields(page) == {
        "cursors": [str(row.id) for row in ROWS[:3]],
        "next_page_token": str(ROWS[2].id),
        "has_next_page": True,
        "total_count": 4,
    }
    assert page_fields(page_of([], 3, 0, str))["next_page_token"] == ""
