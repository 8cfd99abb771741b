"""Getting back in: a password reset by e-mailed link.

The link's token is single-use, expires, and is stored only as a hash (`links`). Asking for a
link answers alike, in about the same time, whether or not an account has the e-mail: the e-mail
goes out through the outbox after the answer, and the answer never comes sooner than a fixed
floor. Asking is counted per e-mail and per client address.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from account import links, messages
from account.models import Account
from account.quota import RequestQuota
from account.service import AccountService, Session, check_password, normalize_email
from servicekit.db import transaction
from servicekit.errors import NotFound, Violations
from servicekit.outbox import Outbox

TOO_MANY_RESETS = "too many password-reset requests; try again later"


@dataclass(kw_only=True, eq=False, slots=True)
class AccountRecovery:
    sessions: async_sessionmaker[AsyncSession]
    outbox: Outbox
    accounts: AccountService
    shop_url: str
    reset_ttl: timedelta
    resets_per_email: RequestQuota
    resets_per_client: RequestQuota
    # The shortest time `request_password_reset` takes to answer, whatever it found.
    answer_floor: float = 0.0

    async def request_password_reset(self, *, email: str, client: str = "") -> None:
        """E-mail a reset link if an account has this e-mail; the same answer either way."""
        started = asyncio.get_running_loop().time()
        violations = Violations()
        email = normalize_email(email, violations)
        violations.raise_if_any()
        await self.resets_per_client.spend(client, TOO_MANY_RESETS)
        await self.resets_per_email.spend(email, TOO_MANY_RESETS)
        async with transaction(self.sessions) as session:
            account = await session.scalar(select(Account).where(Account.email == email))
            if account is not None:
                token, expires_at = await links.issue(
                    session, account.id, links.PASSWORD_RESET, self.reset_ttl
                )
                link = links.link(self.shop_url, links.PASSWORD_RESET, token)
                await self.outbox.add(session, messages.password_reset_requested(account, link, expires_at))
        left = self.answer_floor - (asyncio.get_running_loop().time() - started)
        if left > 0:
            await asyncio.sleep(left)

    async def reset_password(self, *, token: str, new_password: str) -> Session:
        """Set the new password, end every session of the account, and sign it in anew."""
        violations = Violations()
        check_password(new_password, violations, "new_password")
        violations.raise_if_any()
        new_hash = await self.accounts.hasher.hash_async(new_password)
        async with transaction(self.sessions) as session:
            used = await links.use(session, links.PASSWORD_RESET, token)
            account = await session.get(Account, used.account_id, with_for_update=True)
            if account is None:  # the token's row cascades away with its account
                raise NotFound("account not found")
            account.password_hash = new_hash
            account.updated_at = func.now()
            await self.accounts.end_every_session(session, account)
            tokens = await self.accounts.start_session(session, account)
            await session.flush()
            await session.refresh(account)
        return Session(account, tokens)
