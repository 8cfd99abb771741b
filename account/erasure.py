"""Deleting one's own account: the personal data this service holds erased, every sign-in ended,
and `account.deleted` published so that every other service erases what it copied.

The account's row stays, anonymised, rather than being deleted: orders, payments and e-mail history
elsewhere keep referring to the account id, and a kept row says what that id was (a deleted
account) instead of leaving a dangling reference, and keeps the id from ever being issued again.
The row keeps no personal data: its e-mail becomes `deleted-<id>@invalid` (unique, and on a
domain that can never receive mail, so the address is free to register again), its name is
emptied and its password hash destroyed, so no password signs in to it. Its addresses and one-time
links are deleted, its refresh tokens revoked and its access tokens refused, and the outbox rows
that still hold its registration (with the e-mail and name) are deleted: the broker had them
already, and its retention is the documented limit of the erasure (docs/security.md).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, func
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from account import messages
from account.models import Account, Address, OneTimeToken, outbox
from account.service import AccountService
from servicekit.auth import require_caller
from servicekit.context import Caller
from servicekit.db import transaction
from servicekit.errors import InvalidArgument, NotFound, Violations
from servicekit.ids import parse_id
from servicekit.outbox import Outbox

# As for a sign-in: bcrypt reads at most 72 bytes, a longer password is refused before any work.
MAX_PASSWORD_BYTES = 1024
WRONG_PASSWORD = "is not correct"


def placeholder_email(account: Account) -> str:
    """What the row's e-mail becomes: unique, lower case, never deliverable (RFC 2606 `.invalid`)."""
    return f"deleted-{account.id}@invalid"


@dataclass(kw_only=True, eq=False, slots=True)
class AccountErasure:
    sessions: async_sessionmaker[AsyncSession]
    outbox: Outbox
    accounts: AccountService

    async def delete_my_account(self, caller: Caller | None, *, password: str, client: str = "") -> None:
        """Erase the caller's account once the password is confirmed, as for a password change
        (the same throttle); a wrong password changes nothing."""
        caller = require_caller(caller)
        violations = Violations()
        violations.check(bool(password), "password", "is required")
        violations.check(len(password.encode()) <= MAX_PASSWORD_BYTES, "password", "is too long")
        violations.raise_if_any()
        account = await self.accounts.get_me(caller)
        if account.deleted_at is not None:
            raise NotFound("account not found")
        await self.accounts.throttle.attempt(account.email, client)
        if not await self.accounts.hasher.verify_async(password, account.password_hash):
            raise InvalidArgument.field("password", WRONG_PASSWORD)
        await self.accounts.throttle.succeeded(account.email, client)
        async with transaction(self.sessions) as session:
            row = await session.get(Account, parse_id(caller.account_id, "account_id"), with_for_update=True)
            if row is None or row.deleted_at is not None:  # a concurrent deletion won
                raise NotFound("account not found")
            await self._erase(session, row)

    async def _erase(self, session: AsyncSession, account: Account) -> None:
        await session.execute(delete(Address).where(Address.account_id == account.id))
        await session.execute(delete(OneTimeToken).where(OneTimeToken.account_id == account.id))
        # Every event this service wrote about the account is keyed by its id.
        await session.execute(delete(outbox).where(outbox.c.key == str(account.id)))
        account.email = placeholder_email(account)
        account.name = ""
        account.password_hash = ""  # no bcrypt hash: every password is refused
        account.email_verified = False
        account.deleted_at = func.now()
        account.updated_at = func.now()
        await self.accounts.end_every_session(session, account)
        await self.outbox.add(session, messages.deleted(account))
