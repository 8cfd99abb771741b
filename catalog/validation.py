"""Input checks of the catalog's use cases: each cleans a value or records why it is refused."""

from __future__ import annotations

import re
import unicodedata
from decimal import Decimal

from servicekit.errors import InvalidArgument, Violations
from servicekit.money import exponent, is_currency, to_minor
from servicekit.text import CONTROL_CHARACTERS, has_control_characters

MAX_SKU_LENGTH = 64
MAX_NAME_LENGTH = 200
MAX_DESCRIPTION_LENGTH = 10_000
MAX_CATEGORY_NAME_LENGTH = 100
MAX_SLUG_LENGTH = 64
MAX_QUERY_LENGTH = 200
MAX_REASON_LENGTH = 500
MAX_BATCH = 100
MAX_PAGE_SIZE = 100
DEFAULT_PAGE_SIZE = 20
MAX_PRICE = Decimal("1000000")
# Far below 2^31 - 1, so that stock + delta never overflows the INT column.
MAX_STOCK = 1_000_000_000

SKU = re.compile(r"^[A-Z0-9][A-Z0-9._-]*$")
SLUG = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
WORD = re.compile(r"[^\W_]+")


def clean_sku(raw: str, violations: Violations) -> str:
    sku = raw.strip().upper()
    if not sku:
        violations.add("sku", "is required")
    elif len(sku) > MAX_SKU_LENGTH:
        violations.add("sku", f"must be at most {MAX_SKU_LENGTH} characters")
    elif not SKU.match(sku):
        violations.add(
            "sku", "may contain only letters, digits, '.', '_' and '-', starting with a letter or digit"
        )
    return sku


def clean_currency(raw: str, violations: Violations) -> str:
    currency = raw.strip().upper()
    if not currency:
        violations.add("currency", "is required")
    elif len(currency) != 3 or not is_currency(currency):
        violations.add("currency", "is not an ISO 4217 currency code")
    return currency


def check_price(price_minor: int, currency: str, violations: Violations) -> None:
    try:
        highest = to_minor(MAX_PRICE, currency)
    except ValueError:  # an unknown currency, already reported
        return
    if price_minor <= 0:
        violations.add("price", "must be greater than zero")
    elif price_minor > highest:
        violations.add("price", f"must be at most {MAX_PRICE:,.{exponent(currency)}f}")


def check_stock(value: int, field_name: str, violations: Violations) -> None:
    if value < 0:
        violations.add(field_name, "must not be negative")
    elif value > MAX_STOCK:
        violations.add(field_name, f"must be at most {MAX_STOCK:,}")


def slugify(name: str) -> str:
    """ "Home & Garden" -> "home-garden"; accents dropped, anything else becomes a hyphen."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    return "-".join(WORD.findall(ascii_name.lower().replace("_", " ")))[:MAX_SLUG_LENGTH].strip("-")


def clean_query(raw: str) -> str:
    """A search query, NFC-normalised and stripped; InvalidArgument when it cannot be searched for."""
    query = unicodedata.normalize("NFC", raw).strip()
    if not query:
        raise InvalidArgument.field("query", "is required")
    if len(query) > MAX_QUERY_LENGTH:
        raise InvalidArgument.field("query", f"must be at most {MAX_QUERY_LENGTH} characters")
    if has_control_characters(query):
        raise InvalidArgument.field("query", CONTROL_CHARACTERS)
    if not any(ch.isalnum() for ch in query):
        raise InvalidArgument.field("query", "must contain a letter or a digit")
    return query
