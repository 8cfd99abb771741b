"""Opaque, tamper-checked page cursors: base64url(JSON) plus an HMAC over it."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from typing import Any

import orjson

from servicekit.errors import InvalidArgument

MAX_CURSOR_LENGTH = 512


class CursorCodec:
    def __init__(self, secret: str, *, purpose: str, max_length: int = MAX_CURSOR_LENGTH) -> None:
        # The purpose is mixed into the key so that a cursor of one listing never opens another.
        self._key = hashlib.sha256(f"{purpose}\x00{secret}".encode()).digest()
        # A cursor that carries a sort value (a product name) needs more room than an id.
        self.max_length = max_length

    def _sign(self, body: bytes) -> bytes:
        return hmac.new(self._key, body, hashlib.sha256).digest()[:16]

    def encode(self, values: dict[str, Any]) -> str:
        body = orjson.dumps(values)
        token = body + self._sign(body)
        return base64.urlsafe_b64encode(token).decode().rstrip("=")

    def decode(self, cursor: str, *, field: str = "after") -> dict[str, Any]:
        """The cursor's values; InvalidArgument naming `field` when it is malformed or forged."""
        if len(cursor) > self.max_length:
            raise InvalidArgument.field(field, "is not a valid cursor")
        try:
            raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        except (binascii.Error, ValueError):
            raise InvalidArgument.field(field, "is not a valid cursor") from None
        body, signature = raw[:-16], raw[-16:]
        if len(raw) <= 16 or not hmac.compare_digest(signature, self._sign(body)):
            raise InvalidArgument.field(field, "is not a valid cursor")
        try:
            values = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise InvalidArgument.field(field, "is not a valid cursor") from None
        if not isinstance(values, dict):
            raise InvalidArgument.field(field, "is not a valid cursor")
        return values
