"""Money: integer minor units plus an ISO 4217 code. No float ever touches an amount."""

from __future__ import annotations

from datetime import date
from decimal import Decimal, InvalidOperation
from functools import cache, lru_cache

from babel import Locale
from babel.numbers import get_currency_precision, get_territory_currencies

from ecommerce.common.v1 import money_pb2

MAX_MINOR = 2**63 - 1  # what an int64 amount field can carry


@cache
def active_currencies() -> frozenset[str]:
    """ISO 4217 codes legal tender somewhere today (not historic codes like DEM)."""
    today = date.today()
    codes: set[str] = set()
    for territory in Locale("en").territories:
        if isinstance(territory, str):
            codes.update(get_territory_currencies(territory, start_date=today, tender=True))
    return frozenset(codes)


def is_currency(code: str) -> bool:
    return code in active_currencies()


@lru_cache(maxsize=512)  # bounded: codes can come from requests
def exponent(currency: str) -> int:
    """Digits after the decimal point: 2 for EUR, 0 for JPY, 3 for BHD."""
    return int(get_currency_precision(currency))


def to_decimal(amount_minor: int, currency: str) -> Decimal:
    return Decimal(amount_minor).scaleb(-exponent(currency))


def to_minor(value: Decimal | str, currency: str) -> int:
    """Exact conversion; ValueError for a non-number or more decimals than the currency has."""
    try:
        amount = Decimal(value)
    except (InvalidOperation, TypeError):
        raise ValueError("is not a decimal number") from None
    if not amount.is_finite():
        raise ValueError("is not a decimal number")
    if abs(amount.adjusted()) > 30:
        raise ValueError("is too large")
    scaled = amount.scaleb(exponent(currency))
    if abs(scaled) > MAX_MINOR:
        raise ValueError("is too large")
    if scaled != scaled.to_integral_value():
        raise ValueError(f"has more than {exponent(currency)} decimal places for {currency}")
    return int(scaled)


def format_money(amount_minor: int, currency: str) -> str:
    """`12.50 EUR`: a plain, locale-free rendering for logs and e-mails."""
    return f"{to_decimal(amount_minor, currency):f} {currency}"


def to_proto(amount_minor: int, currency: str) -> money_pb2.Money:
    """The amount as the shared `Money` message; neither value is checked here."""
    return money_pb2.Money(amount_minor=amount_minor, currency=currency)


def from_proto(message: money_pb2.Money) -> tuple[int, str]:
    """The message's (amount_minor, currency); an unset message gives (0, "")."""
    return message.amount_minor, message.currency
