"""Request-scoped values, set by the gRPC interceptors and read anywhere below them."""

from __future__ import annotations

import uuid
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime

CUSTOMER = "CUSTOMER"
ADMIN = "ADMIN"
ROLES = (CUSTOMER, ADMIN)


@dataclass(frozen=True)
class Caller:
    """Who is calling, as proven by a verified access token."""

    account_id: str
    role: str
    token_id: str = ""
    expires_at: datetime | None = None
    token: str = field(default="", repr=False)

    @property
    def is_admin(self) -> bool:
        return self.role == ADMIN


request_id_var: ContextVar[str] = ContextVar("request_id", default="")
caller_var: ContextVar[Caller | None] = ContextVar("caller", default=None)


def new_request_id() -> str:
    return uuid.uuid4().hex


def current_request_id() -> str:
    return request_id_var.get()


def current_caller() -> Caller | None:
    return caller_var.get()
