"""Checks of free text from requests: control characters and the common clean-up of a field.

Unicode categories decide what a control character is: Cc (C0/C1 controls, NUL, ESC), Cf
(format: zero-width and bidirectional overrides), Cs (lone surrogates) and Co (private use)."""

from __future__ import annotations

import unicodedata
from collections.abc import Collection

from servicekit.errors import Violations

SINGLE_LINE_FORBIDDEN = frozenset({"Cc", "Cf", "Cs", "Co"})
MULTILINE_FORBIDDEN = frozenset({"Cc", "Cs", "Co"})
MULTILINE_ALLOWED = "\n\r\t"
CONTROL_CHARACTERS = "must not contain control characters"


def has_control_characters(
    text: str, *, forbidden: Collection[str] = SINGLE_LINE_FORBIDDEN, allowed: str = ""
) -> bool:
    """True when `text` holds a character of a `forbidden` category that is not in `allowed`.

    The defaults are the single-line rule (names, keys, tokens, addresses): Cc, Cf, Cs and Co,
    nothing allowed."""
    return any(unicodedata.category(ch) in forbidden and ch not in allowed for ch in text)


def has_control_characters_in_lines(text: str) -> bool:
    """The rule for multi-line text (descriptions): line breaks and tabs pass, and so do format
    characters (Cf: zero-width joiners that emoji and some scripts need); Cc, Cs and Co do not."""
    return has_control_characters(text, forbidden=MULTILINE_FORBIDDEN, allowed=MULTILINE_ALLOWED)


def clean_text(
    raw: str, field: str, violations: Violations, *, max_length: int, required: bool, multiline: bool = False
) -> str:
    """`raw` NFC-normalised and stripped, with at most one violation added for `field`.

    In this order: `is required` (empty and required; an empty optional value is returned as is),
    `must be at most N characters` (N with thousands separators), `must not contain control
    characters` (the single-line or multi-line rule)."""
    value = unicodedata.normalize("NFC", raw).strip()
    if not value:
        if required:
            violations.add(field, "is required")
        return value
    if len(value) > max_length:
        violations.add(field, f"must be at most {max_length:,} characters")
        return value
    if has_control_characters_in_lines(value) if multiline else has_control_characters(value):
        violations.add(field, CONTROL_CHARACTERS)
    return value
