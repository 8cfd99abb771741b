"""Postal addresses: the one check a shipping address (order) and a saved address (account) pass."""

from __future__ import annotations

import unicodedata

from babel import Locale

from servicekit.errors import Violations
from servicekit.text import has_control_characters

# (field, required, max length) of an address.
ADDRESS_FIELDS = (
    ("name", True, 100),
    ("line1", True, 200),
    ("line2", False, 200),
    ("city", True, 100),
    ("region", False, 100),
    ("postal_code", True, 20),
    ("country", True, 2),
)
# Codes CLDR lists that are not countries one ships to.
_NOT_COUNTRIES = {"EU", "EZ", "UN", "QO", "XA", "XB", "ZZ"}
COUNTRIES = frozenset(
    code
    for code in Locale("en").territories
    if isinstance(code, str) and len(code) == 2 and code.isalpha() and code not in _NOT_COUNTRIES
)


def address_fields(source: object) -> dict[str, str]:
    """The address fields of `source` (a message, a row, an input) by name; one it leaves None is
    empty, as in a message."""
    return {name: getattr(source, name) or "" for name, _, _ in ADDRESS_FIELDS}


def check_address(raw: dict[str, str], violations: Violations, prefix: str) -> dict[str, str]:
    """The address trimmed, NFC-normalised and its country upper-cased; every failing field is
    added to `violations` as `<prefix>.<field>`."""
    address: dict[str, str] = {}
    for name, required, limit in ADDRESS_FIELDS:
        field = f"{prefix}.{name}"
        value = unicodedata.normalize("NFC", (raw.get(name) or "").strip())
        if name == "country":
            value = value.upper()
        if required and not value:
            violations.add(field, "is required")
        elif len(value) > limit:
            violations.add(field, f"must be at most {limit} characters")
        elif has_control_characters(value):
            violations.add(field, "must not contain control characters")
        elif name == "country" and value not in COUNTRIES:
            violations.add(field, "must be an ISO 3166-1 alpha-2 country code, e.g. DE")
        address[name] = value
    return address
