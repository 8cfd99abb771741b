"""Ids from requests and commands: a UUID, or INVALID_ARGUMENT naming the field it came in."""

from __future__ import annotations

import uuid

from servicekit.errors import InvalidArgument

_CANONICAL_LENGTH = 36


def parse_id(value: str, field: str) -> uuid.UUID:
    """Any spelling `uuid.UUID` accepts (braces, upper case, no hyphens, a `urn:uuid:` prefix).

    Raises InvalidArgument with the violation `<field>: is not a valid id` for anything else,
    including an empty string or a value that is not a string."""
    try:
        return uuid.UUID(value)
    except (ValueError, AttributeError, TypeError):
        raise InvalidArgument.field(field, "is not a valid id") from None


def parse_canonical_id(value: str, field: str) -> uuid.UUID:
    """Only the canonical 36-character form (upper or lower case), as ids are written in events.

    Raises InvalidArgument: `<field>: is required` for an empty value and `<field>: must be a UUID`
    for any other spelling or non-UUID."""
    if not value:
        raise InvalidArgument.field(field, "is required")
    try:
        parsed = uuid.UUID(value) if len(value) == _CANONICAL_LENGTH else None
    except ValueError:
        parsed = None
    if parsed is None or str(parsed) != value.lower():
        raise InvalidArgument.field(field, "must be a UUID")
    return parsed
