"""Checks of the payment service's input beyond the kit's: command ids, tokens and reasons."""

from __future__ import annotations

import uuid

from payment.provider import MAX_TOKEN_LENGTH
from servicekit.errors import InvalidArgument
from servicekit.ids import parse_canonical_id
from servicekit.text import has_control_characters

MAX_REASON_LENGTH = 500
MAX_IDEMPOTENCY_KEY_LENGTH = 255


class PoisonCommand(ValueError):
    """A command that no retry can handle (malformed ids or amounts); it ends in the dead-letter topic."""


def command_uuid(value: str, field: str) -> uuid.UUID:
    """The canonical UUID of a command's field; anything else makes the command poison."""
    try:
        return parse_canonical_id(value, field)
    except InvalidArgument as exc:
        raise PoisonCommand(exc.message) from None


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
