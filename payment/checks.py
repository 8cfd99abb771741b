"""Checks of the payment service's input: ids, tokens, reasons and keys, from callers and commands."""

from __future__ import annotations

import unicodedata
import uuid

from payment.provider import MAX_TOKEN_LENGTH
from servicekit.errors import InvalidArgument

MAX_REASON_LENGTH = 500
MAX_IDEMPOTENCY_KEY_LENGTH = 255


class PoisonCommand(ValueError):
    """A command that no retry can handle (malformed ids or amounts); it ends in the dead-letter topic."""


def parse_uuid(value: str, field: str) -> uuid.UUID:
    """A canonical UUID string, or INVALID_ARGUMENT naming the field."""
    if not value:
        raise InvalidArgument.field(field, "is required")
    try:
        parsed = uuid.UUID(value) if len(value) == 36 else None
    except ValueError:
        parsed = None
    if parsed is None or str(parsed) != value.lower():
        raise InvalidArgument.field(field, "must be a UUID")
    return parsed


def command_uuid(value: str, field: str) -> uuid.UUID:
    try:
        return parse_uuid(value, field)
    except InvalidArgument as exc:
        raise PoisonCommand(exc.message) from None


def has_control_characters(text: str) -> bool:
    return any(unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co") for ch in text)


def token_problem(token: str) -> str | None:
    """Why a payment token cannot even be sent to the provider; None when it can."""
    if not token:
        return "is required"
    if len(token) > MAX_TOKEN_LENGTH:
        return f"must be at most {MAX_TOKEN_LENGTH} characters"
    if has_control_characters(token) or token != token.strip():
        return "must not contain control characters or surrounding spaces"
    return None


def clean_reason(reason: str) -> str:
    """Reasons inside commands are notes for the audit trail: kept, but bounded and printable."""
    printable = "".join(ch for ch in reason if not has_control_characters(ch))
    return printable.strip()[:MAX_REASON_LENGTH]
