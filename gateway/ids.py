"""Ids as the services store them: UUIDs in canonical form."""

from __future__ import annotations

import uuid

from gateway.errors import bad_input


def canonical_uuid(value: str) -> str | None:
    """`value` as a canonical UUID string, or None when it is not a UUID."""
    try:
        return str(uuid.UUID(value))
    except ValueError:
        return None


def canonical_id(value: str, field: str = "id") -> str:
    """An id argument in canonical form, or BAD_USER_INPUT naming the argument."""
    canonical = canonical_uuid(str(value))
    if canonical is None:
        raise bad_input(field, "is not a valid id")
    return canonical
