"""Whose orders a caller may place and list: the caller's own account."""

from __future__ import annotations

import uuid

from servicekit.context import Caller
from servicekit.errors import PermissionDenied


def account_of(caller: Caller) -> uuid.UUID:
    """The caller's account; a peer service calling as itself has none and owns no orders."""
    try:
        return uuid.UUID(caller.account_id)
    except ValueError:
        raise PermissionDenied("only an account can place or list its own orders") from None
