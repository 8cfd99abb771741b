"""servicekit.text: control characters and the clean-up of a text field."""

from __future__ import annotations

import pytest

from servicekit.errors import Violations
from servicekit.text import clean_text, has_control_characters, has_control_characters_in_lines

ZERO_WIDTH_JOINER = "\u200d"
RIGHT_TO_LEFT_OVERRIDE = "\u202e"
PRIVATE_USE = "\ue000"
LONE_SURROGATE = "\ud800"


@pytest.mark.parametrize("text", ["Ada Lovelace", "Ünïcödé 漢字", "emoji 🙂", ""])
def test_ordinary_text_has_no_control_characters(text):
    assert not has_control_characters(text)
    assert not has_control_characters_in_lines(text)


@pytest.mark.parametrize(
    "text",
    [
        "a\x00b",
        "a\nb",
        "a\tb",
        "a\rb",
        "\x1b[31m",
        "\x7f",
        "\x85",
        ZERO_WIDTH_JOINER,
        RIGHT_TO_LEFT_OVERRIDE,
        PRIVATE_USE,
        LONE_SURROGATE,
    ],
)
def test_a_single_line_refuses_every_control_format_surrogate_and_private_character(text):
    assert has_control_characters(text)


@pytest.mark.parametrize(
    "text", ["line one\nline two", "a\tb", "a\r\nb", "family " + ZERO_WIDTH_JOINER + " emoji"]
)
def test_multiple_lines_allow_breaks_tabs_and_format_characters(text):
    assert has_control_characters(text)
    assert not has_control_characters_in_lines(text)


@pytest.mark.parametrize("text", ["a\x00b", "\x1b[31m", "\x0b", "\x0c", PRIVATE_USE, LONE_SURROGATE])
def test_multiple_lines_still_refuse_other_controls(text):
    assert has_control_characters_in_lines(text)


def test_the_categories_and_exceptions_can_be_named():
    assert not has_control_characters("a\nb\x85", forbidden={"Cf"})
    assert not has_control_characters("a\nb", forbidden={"Cc"}, allowed="\n")
    assert has_control_characters("a\rb", forbidden={"Cc"}, allowed="\n")


def _clean(raw, **options):
    violations = Violations()
    value = clean_text(raw, "name", violations, **options)
    return value, [(v.field, v.description) for v in violations.items]


def test_clean_text_normalises_and_strips():
    assert _clean("  Cafe\u0301  ", max_length=10, required=True) == ("Café", [])


def test_a_required_blank_field_is_required_and_an_optional_one_is_empty():
    assert _clean("   ", max_length=10, required=True) == ("", [("name", "is required")])
    assert _clean("   ", max_length=10, required=False) == ("", [])


def test_an_oversized_field_names_its_limit_once():
    value, violations = _clean("x" * 5_001 + "\x00", max_length=5_000, required=True)

    assert violations == [("name", "must be at most 5,000 characters")]
    assert len(value) == 5_002


@pytest.mark.parametrize("multiline", [False, True])
def test_a_hostile_field_is_refused(multiline):
    assert _clean("a\x00b", max_length=10, required=True, multiline=multiline)[1] == [
        ("name", "must not contain control characters")
    ]


def test_line_breaks_pass_only_in_multiline_fields():
    assert _clean("a\nb", max_length=10, required=True, multiline=True) == ("a\nb", [])
    assert _clean("a\nb", max_length=10, required=True)[1] == [
        ("name", "must not contain control characters")
    ]
