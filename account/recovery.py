"""Getting back in, and proving an address: a password reset and an e-mail verification, each
by e-mailed link.

The link's token is single-use, expires, and is stored only as a hash (`links`). Asking for a
link answers alike, in about the same time, whether or not an account has the e-mail: the e-mail
goes out through the outbox after the answer, and the answer never comes sooner than a fixed
floor. Asking is counted per e-mail and per client address; asking for a verification link, per
account.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from account import links, messages
from account.links import LinkPolicy
from account.models import Account
from account.quota import RequestQuota
from account.service import AccountService, Session, check_password, normalize_email
from servicekit.auth import require_caller
from servicekit.context import Caller
from servicekit.db import transaction
from servicekit.errors import NotFound, Violations
from servicekit.ids import parse_id
from servicekit.outbox import Outbox

TOO_MANY_RESETS = "too many password-reset requests; try again later"
TOO_MANY_VERIFICATIONS = "too many verification e-mails asked for; try again later"


@dataclass(kw_only=True, eq=False, slots=True)
class AccountRecovery:
    sessions: async_sessionmaker[AsyncSession]
    outbox: Outbox
    accounts: AccountService
    links: LinkPolicy
    resets_per_email: RequestQuota
    resets_per_client: RequestQuota
    verifications_per_account: RequestQuota
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
                    session, account.id, links.PASSWORD_RESET, self.links.reset_ttl
                )
                link = links.link(self.links.shop_url, links.PASSWORD_RESET, token)
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
            # The link came to the address: following it proves the address.
            account.email_verified = True
            account.updated_at = func.now()
            await self.accounts.end_every_session(session, account)
            tokens = await self.accounts.start_session(session, account)
            await session.flush()
            await session.refresh(account)
        return Session(account, tokens)

    async def request_email_verification(self, caller: Caller | None) -> None:
        """E-mail the caller a verification link; nothing when the e-mail is verified already."""
        caller = require_caller(caller)
        await self.verifications_per_account.spend(caller.account_id, TOO_MANY_VERIFICATIONS)
        async with transaction(self.sessions) as session:
            account = await session.get(Account, parse_id(caller.account_id, "account_id"))
            if account is None:
                raise NotFound("account not found")
            if not account.email_verified:
                await links.stage_verification(session, self.outbox, account, self.links)

    async def verify_email(self, *, token: str) -> Account:
        """Mark the token's account verified. Its access tokens issued before are refused, so that
        the client's next refresh brings one that says the e-mail is verified."""
        async with transaction(self.sessions) as session:
            used = await links.use(session, links.EMAIL_VERIFICATION, token)
            account = await session.get(Account, used.account_id, with_for_update=True)
            if account is None:
                raise NotFound("account not found")
            account.email_verified = True
            account.updated_at = func.now()
            await self.accounts.refuse_tokens_issued_before_now(account)
            await session.flush()
            await session.refresh(account)
        return account
