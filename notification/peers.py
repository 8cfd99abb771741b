"""Who receives a message: the account service's BatchGetAccounts, called as this service itself.

There is no user behind a Kafka event, so the lookup presents the internal service credential
(`x-service-token`, role SERVICE) instead of an access token.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import grpc

from ecommerce.account.v1 import account_pb2, account_pb2_grpc
from servicekit.errors import Unavailable

log = logging.getLogger(__name__)

BATCH_LIMIT = 100


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
            try:
                response = await self.stub.BatchGetAccounts(
                    account_pb2.BatchGetAccountsRequest(ids=unique[start : start + BATCH_LIMIT]),
                    timeout=self.timeout,
                    metadata=self.metadata,
                )
            except grpc.aio.AioRpcError as error:
                if error.code() not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                    log.error("account lookup answered %s: %s", error.code().name, error.details())
                raise Unavailable(f"account lookup failed: {error.code().name}") from None
            for account in response.accounts:
                found[account.id] = Recipient(account.id, account.email, account.name)
        return found
