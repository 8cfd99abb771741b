"""Who receives a message: the account service, called as this service itself.

There is no user behind a Kafka event, so the lookups present the internal service credential
(`x-service-token`, role SERVICE) instead of an access token. An e-mail to an account asks for
its address at each attempt (BatchGetAccounts); an e-mail to every administrator lists them when
the event is handled (ListAdmins).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import grpc

from ecommerce.account.v1 import account_pb2, account_pb2_grpc
from servicekit.errors import Unavailable

log = logging.getLogger(__name__)

BATCH_LIMIT = 100
ADMINS_PAGE = 100
# A bound on the pages of administrators: a listing that never ends is a bug, not a long list.
MAX_ADMIN_PAGES = 100

Response = TypeVar("Response")


@dataclass(frozen=True)
class Recipient:
    account_id: str
    email: str
    name: str


class AccountDirectory:
    def __init__(self, channel: grpc.aio.Channel, *, service_token: str, timeout: float) -> None:
        self.stub = account_pb2_grpc.AccountServiceStub(channel)
        self.metadata = [("x-service-token", service_token), ("x-service-name", "notification")]
        self.timeout = timeout

    async def recipients(self, account_ids: list[str]) -> dict[str, Recipient]:
        """The accounts of these ids that exist, by id; Unavailable when the service cannot answer."""
        found: dict[str, Recipient] = {}
        unique = list(dict.fromkeys(account_ids))
        for start in range(0, len(unique), BATCH_LIMIT):
            request = account_pb2.BatchGetAccountsRequest(ids=unique[start : start + BATCH_LIMIT])
            response = await self._call(self.stub.BatchGetAccounts, request)
            for account in response.accounts:
                found[account.id] = Recipient(account.id, account.email, account.name)
        return found

    async def admins(self) -> list[Recipient]:
        """Every live administrator, oldest first, read page by page.

        Unavailable when the service cannot answer; raised from the call's error, so that an
        outage (UNAVAILABLE, no answer in time) reads as transient and the event is retried."""
        found: list[Recipient] = []
        token = ""
        for _ in range(MAX_ADMIN_PAGES):
            request = account_pb2.ListAdminsRequest(page_size=ADMINS_PAGE, page_token=token)
            response = await self._call(self.stub.ListAdmins, request)
            found.extend(Recipient(a.id, a.email, a.name) for a in response.accounts)
            token = response.next_page_token
            if not token:
                return found
        raise Unavailable(f"the administrators' listing did not end after {MAX_ADMIN_PAGES} pages")

    async def _call(self, method: Callable[..., Awaitable[Response]], request: object) -> Response:
        try:
            return await method(request, timeout=self.timeout, metadata=self.metadata)
        except grpc.aio.AioRpcError as error:
            if error.code() not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                log.error("account lookup answered %s: %s", error.code().name, error.details())
            raise Unavailable(f"account lookup failed: {error.code().name}") from error
