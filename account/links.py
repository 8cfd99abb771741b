"""One-time tokens sent by e-mail as links: made, stored as a hash, and used up once.

The raw token exists only in the link; the database keeps its SHA-256 digest (256 random bits
cannot be guessed, so a slow hash would add nothing). A used, expired and unknown token are the
same error with the same message, so a caller learns nothing about which it was.
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from account import messages
from account.models import Account, OneTimeToken
from servicekit.errors import InvalidArgument
from servicekit.outbox import Outbox
from servicekit.security import hash_refresh_token


@dataclass(frozen=True)
class LinkPolicy:
    """Where the links point and how long their tokens work."""

    shop_url: str
    reset_ttl: timedelta = timedelta(minutes=30)
    verification_ttl: timedelta = timedelta(days=7)


PASSWORD_RESET = "PASSWORD_RESET"
EMAIL_VERIFICATION = "EMAIL_VERIFICATION"
# The page of the shop that takes each kind of token.
PAGES = {PASSWORD_RESET: "reset-password", EMAIL_VERIFICATION: "verify-email"}
MAX_TOKEN_LENGTH = 256
BAD_TOKEN = "is invalid, expired or already used"


def link(shop_url: str, purpose: str, token: str) -> str:
    """`<shop_url>/reset-password?token=...` or `<shop_url>/verify-email?token=...`."""
    return f"{shop_url.rstrip('/')}/{PAGES[purpose]}?{urlencode({'token': token})}"


async def issue(
    session: AsyncSession, account_id: uuid.UUID, purpose: str, ttl: timedelta
) -> tuple[str, datetime]:
    """A new token for the account, valid for `ttl`; returns it and its expiry."""
    token = secrets.token_urlsafe(32)
    expires_at = datetime.now(UTC) + ttl
    session.add(
        OneTimeToken(
            account_id=account_id,
            purpose=purpose,
            token_hash=hash_refresh_token(token),
            expires_at=expires_at,
        )
    )
    return token, expires_at


async def stage_verification(
    session: AsyncSession, outbox: Outbox, account: Account, policy: LinkPolicy
) -> None:
    """Within the caller's transaction: a verification token for the account, and the e-mail
    that carries its link staged in the outbox."""
    token, expires_at = await issue(session, account.id, EMAIL_VERIFICATION, policy.verification_ttl)
    link_ = link(policy.shop_url, EMAIL_VERIFICATION, token)
    await outbox.add(session, messages.email_verification_requested(account, link_, expires_at))


async def use(session: AsyncSession, purpose: str, token: str) -> OneTimeToken:
    """Mark the token used, within the caller's transaction, and return it; the same
    InvalidArgument (field `token`) for a used, expired, unknown or malformed token.

    Every other unused token of the account for the same purpose is used up with it: one reset
    (or verification) makes the older links of its kind worthless too."""
    if not token or len(token) > MAX_TOKEN_LENGTH:
        raise InvalidArgument.field("token", BAD_TOKEN)
    row = await session.scalar(
        select(OneTimeToken)
        .where(OneTimeToken.token_hash == hash_refresh_token(token), OneTimeToken.purpose == purpose)
        .with_for_update()
    )
    if row is None or row.used_at is not None or row.expires_at <= datetime.now(UTC):
        raise InvalidArgument.field("token", BAD_TOKEN)
    await session.execute(
        update(OneTimeToken)
        .where(
            OneTimeToken.account_id == row.account_id,
            OneTimeToken.purpose == purpose,
            OneTimeToken.used_at.is_(None),
        )
        .values(used_at=func.now())
    )
    return row
