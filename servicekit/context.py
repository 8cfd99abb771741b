"""Request-scoped values, set by the gRPC interceptors and read anywhere below them."""

from __future__ import annotations

import ipaddress
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
    # The access token's `email_verified` claim (a token without it: not verified). True for a
    # caller without a token of its own (a service).
    email_verified: bool = True

    @property
    def is_admin(self) -> bool:
        return self.role == ADMIN


request_id_var: ContextVar[str] = ContextVar("request_id", default="")
caller_var: ContextVar[Caller | None] = ContextVar("caller", default=None)
# The end client's address: what the gateway saw (`x-client-address`), else the gRPC peer's.
client_address_var: ContextVar[str] = ContextVar("client_address", default="")


def new_request_id() -> str:
    return uuid.uuid4().hex


def current_request_id() -> str:
    return request_id_var.get()


def current_caller() -> Caller | None:
    return caller_var.get()


def current_client_address() -> str:
    return client_address_var.get()


def client_address(forwarded: str | None, peer: str | None) -> str:
    """The client address of an RPC: `forwarded` (the gateway's `x-client-address`) when it is an IP
    address, otherwise the host of a gRPC peer such as `ipv4:10.0.0.7:5123` or `ipv6:[::1]:5123`."""
    for candidate in (forwarded, _peer_host(peer)):
        if candidate:
            try:
                return str(ipaddress.ip_address(candidate.strip()))
            except ValueError:
                continue
    return "unknown"


def _peer_host(peer: str | None) -> str | None:
    if not peer or ":" not in peer:
        return None
    _, _, rest = peer.partition(":")
    if rest.startswith("["):
        return rest[1:].partition("]")[0]
    return rest.rpartition(":")[0] or rest
