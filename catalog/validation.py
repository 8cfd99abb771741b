"""Input checks of the catalog's use cases: each cleans a value or records why it is refused."""

from __future__ import annotations

import re
import unicodedata
import uuid
from decimal import Decimal

from servicekit.errors import InvalidArgument, Violations
from servicekit.money import exponent, is_currency, to_minor

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


def clean_text(
    raw: str, field_name: str, violations: Violations, *, max_length: int, required: bool, multiline: bool
) -> str:
    value = unicodedata.normalize("NFC", raw).strip()
    if not value:
        if required:
            violations.add(field_name, "is required")
        return value
    if len(value) > max_length:
        violations.add(field_name, f"must be at most {max_length:,} characters")
        return value
    allowed = "\n\r\t" if multiline else ""
    forbidden = ("Cc", "Cs", "Co") if multiline else ("Cc", "Cs", "Co", "Cf")
    if any(unicodedata.category(ch) in forbidden and ch not in allowed for ch in value):
        violations.add(field_name, "must not contain control characters")
    return value


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


def parse_id(value: str, field_name: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except (ValueError, AttributeError, TypeError):
        raise InvalidArgument.field(field_name, "is not a valid id") from None


def clean_query(raw: str) -> str:
    """A search query, NFC-normalised and stripped; InvalidArgument when it cannot be searched for."""
    query = unicodedata.normalize("NFC", raw).strip()
    if not query:
        raise InvalidArgument.field("query", "is required")
    if len(query) > MAX_QUERY_LENGTH:
        raise InvalidArgument.field("query", f"must be at most {MAX_QUERY_LENGTH} characters")
    if any(unicodedata.category(ch) in ("Cc", "Cs", "Co", "Cf") for ch in query):
        raise InvalidArgument.field("query", "must not contain control characters")
    if not any(ch.isalnum() for ch in query):
        raise InvalidArgument.field("query", "must contain a letter or a digit")
    return query


def page_size(value: int) -> int:
    if value == 0:
        return DEFAULT_PAGE_SIZE
    if not 1 <= value <= MAX_PAGE_SIZE:
        raise InvalidArgument.field("page_size", f"must be between 1 and {MAX_PAGE_SIZE}")
    return value
