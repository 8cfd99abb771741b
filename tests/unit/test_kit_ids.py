"""servicekit.ids: ids from requests, refused with a violation naming the field."""

from __future__ import annotations

import uuid

import pytest

from servicekit.errors import InvalidArgument
from servicekit.ids import parse_canonical_id, parse_id

ID = uuid.UUID("0b5f4a4e-8f6c-4d59-9b87-5e4a61c1f3a2")


@pytest.mark.parametrize(
    "spelling", [str(ID), str(ID).upper(), ID.hex, "{" + str(ID) + "}", "urn:uuid:" + str(ID)]
)
def test_any_spelling_uuid_accepts_is_an_id(spelling):
    assert parse_id(spelling, "order_id") == ID


@pytest.mark.parametrize(
    "value", ["", "nope", str(ID)[:-1], str(ID) + "0", "x" * 10_000, "' OR 1=1 --", "\x00" * 36, None, 42]
)
def test_anything_else_is_refused_naming_the_field(value):
    with pytest.raises(InvalidArgument) as caught:
        parse_id(value, "order_id")

    assert [(v.field, v.description) for v in caught.value.violations] == [("order_id", "is not a valid id")]


@pytest.mark.parametrize("spelling", [str(ID), str(ID).upper()])
def test_a_canonical_id_is_the_36_character_form(spelling):
    assert parse_canonical_id(spelling, "payment_id") == ID


def test_a_missing_canonical_id_is_required():
    with pytest.raises(InvalidArgument) as caught:
        parse_canonical_id("", "payment_id")

    assert [(v.field, v.description) for v in caught.value.violations] == [("payment_id", "is required")]


@pytest.mark.parametrize(
    "value",
    [
        ID.hex,
        "{" + str(ID) + "}",
        "urn:uuid:" + str(ID),
        "nope",
        "g" * 36,
        str(ID)[:35] + "\x00",
        "x" * 10_000,
    ],
)
def test_other_spellings_are_not_canonical_ids(value):
    with pytest.raises(InvalidArgument) as caught:
        parse_canonical_id(value, "payment_id")

    assert [(v.field, v.description) for v in caught.value.violations] == [("payment_id", "must be a UUID")]
