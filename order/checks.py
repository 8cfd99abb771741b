"""Checks shared by the order use cases: ids from requests, printable text, the caller's account."""

from __future__ import annotations

import unicodedata
import uuid

from servicekit.context import Caller
from servicekit.errors import InvalidArgument, PermissionDenied


def has_control_characters(value: str) -> bool:
    return any(unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co") for ch in value)


def parse_id(value: str, field: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except (ValueError, AttributeError, TypeError):
        raise InvalidArgument.field(field, "is not a valid id") from None


def account_of(caller: Caller) -> uuid.UUID:
    """The caller's account; a peer service calling as itself has none and owns no orders."""
    try:
        return uuid.UUID(caller.account_id)
    except ValueError:
        raise PermissionDenied("only an account can place or list its own orders") from None
