"""Account use cases: registration, sign-in sessions with rotating refresh tokens, profiles, roles.

A password change or a role change refuses every access token of the account issued before it
(the cut-off is written to the account's row and to Redis in the same use case, Redis first so
that a failure there aborts the change); a password change also revokes every refresh token.
"""

from __future__ import annotations

import hashlib
import logging
import math
import unicodedata
import uuid
from dataclasses import InitVar, dataclass, field
from datetime import UTC, datetime, timedelta

import redis.asyncio as aioredis
from email_validator import EmailNotValidError, validate_email
from redis.exceptions import RedisError
from sqlalchemy import func, select, tuple_, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from account import links as one_time
from account import messages
from account.links import LinkPolicy
from account.models import Account, RefreshToken
from servicekit import pages
from servicekit.auth import SERVICE, TokenDenylist, require_admin, require_caller
from servicekit.context import ADMIN, CUSTOMER, ROLES, Caller
from servicekit.cursor import CursorCodec
from servicekit.db import reads, transaction
from servicekit.errors import (
    AlreadyExists,
    Conflict,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    RateLimited,
    Unauthenticated,
    Unavailable,
    Violations,
)
from servicekit.ids import parse_id
from servicekit.outbox import Outbox
from servicekit.pages import Page
from servicekit.security import (
    PasswordHasher,
    SigningKey,
    TokenIssuer,
    hash_refresh_token,
    jwks,
    new_refresh_token,
    validate_password,
)
from servicekit.text import CONTROL_CHARACTERS, has_control_characters

log = logging.getLogger(__name__)

MAX_EMAIL_LENGTH = 254
MAX_NAME_LENGTH = 100
MAX_REFRESH_TOKEN_LENGTH = 256
MAX_PAGE_SIZE = 100
# Binds a cursor of the administrators' listing to it: no other listing's cursor resumes it.
ADMINS_SCOPE = ("l", "admins")
BAD_CREDENTIALS = "e-mail or password is incorrect"
BAD_REFRESH = "refresh token is invalid, expired or revoked"
# Seconds past `exp` a verifier may still accept a token (TokenVerifier's leeway), with a margin.
CLOCK_LEEWAY = 60


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int


@dataclass(frozen=True)
class Session:
    account: Account
    tokens: TokenPair


# What a neutral registration answers instead of tokens.
NO_TOKENS = TokenPair(access_token="", refresh_token="", expires_in=0)


def _stand_in(email: str, name: str) -> Account:
    """An account as a new registration looks, never stored: the answer for a taken e-mail."""
    now = datetime.now(UTC)
    return Account(
        id=uuid.uuid4(),
        email=email,
        name=name,
        password_hash="",
        role=CUSTOMER,
        email_verified=False,
        created_at=now,
        updated_at=now,
    )


def normalize_email(raw: str, violations: Violations, field: str = "email") -> str:
    email = raw.strip()
    if not email:
        violations.add(field, "is required")
        return ""
    if len(email) > MAX_EMAIL_LENGTH:
        violations.add(field, f"must be at most {MAX_EMAIL_LENGTH} characters")
        return ""
    try:
        checked = validate_email(email, check_deliverability=False)
    except EmailNotValidError as exc:
        violations.add(field, f"is not a valid e-mail address ({exc})")
        return ""
    return checked.normalized.lower()


def normalize_name(raw: str, violations: Violations, field: str = "name") -> str:
    name = unicodedata.normalize("NFC", raw.strip())
    if not name:
        violations.add(field, "is required")
    elif len(name) > MAX_NAME_LENGTH:
        violations.add(field, f"must be at most {MAX_NAME_LENGTH} characters")
    elif has_control_characters(name):
        violations.add(field, CONTROL_CHARACTERS)
    return name


def check_password(password: str, violations: Violations, field: str = "password") -> None:
    try:
        validate_password(password)
    except ValueError as exc:
        violations.add(field, str(exc))


# KEYS[1] one e-mail from one client address; ARGV free attempts, first delay (s), window (s).
# An attempt is refused while the delay its past failures earned is running; otherwise it is
# counted, before its password is checked. Time comes from the Redis server.
LOGIN_ATTEMPT = """
local free = tonumber(ARGV[1])
local delay = tonumber(ARGV[2])
local window = tonumber(ARGV[3])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'failures', 'last')
local failures = tonumber(state[1]) or 0
local last = tonumber(state[2]) or 0
if failures >= free then
  local wait = last + math.min(window, delay * 2 ^ (failures - free)) - now
  if wait > 0 then
    return {0, tostring(wait)}
  end
end
redis.call('HSET', KEYS[1], 'failures', failures + 1, 'last', tostring(now))
redis.call('EXPIRE', KEYS[1], window)
return {1, '0'}
"""


class LoginThrottle:
    """Sign-in attempts counted per e-mail and client address together, in Redis.

    The first `max_failures` attempts are free; each one after them waits for a delay that starts
    at `delay` seconds and doubles with every further failure, up to `window`. So failures from one
    address slow down only that address: the owner signing in from elsewhere is not locked out.
    An attempt is counted before its password is checked, so concurrent attempts cannot slip past
    together; a success clears the count. When Redis cannot be asked the attempt is refused
    (Unavailable): a throttle that cannot count would let guesses through unmetered.
    """

    def __init__(self, redis: aioredis.Redis, *, max_failures: int, window: int, delay: float = 30.0) -> None:
        self.max_failures = max_failures
        self.window = window
        self.delay = delay
        self.redis = redis
        self._script = redis.register_script(LOGIN_ATTEMPT)

    def _key(self, email: str, client: str) -> str:
        return "login-failures:" + hashlib.sha256(f"{email}\x00{client}".encode()).hexdigest()

    async def attempt(self, email: str, client: str) -> None:
        """Count one attempt; RateLimited while this e-mail and address wait, Unavailable without Redis."""
        try:
            admitted, wait = await self._script(
                keys=[self._key(email, client)], args=[self.max_failures, self.delay, self.window]
            )
        except (RedisError, OSError) as exc:
            log.warning("login throttle unavailable, refusing sign-in: %s", exc)
            raise Unavailable("sign-in is temporarily unavailable; try again shortly") from None
        if not admitted:
            raise RateLimited(
                "too many failed sign-in attempts; try again later",
                retry_after=max(1, math.ceil(float(wait))),
            )

    async def succeeded(self, email: str, client: str) -> None:
        try:
            await self.redis.delete(self._key(email, client))
        except (RedisError, OSError) as exc:
            log.warning("login throttle unavailable: %s", exc)


@dataclass(kw_only=True, eq=False, slots=True)
class AccountService:
    sessions: async_sessionmaker[AsyncSession]
    outbox: Outbox
    hasher: PasswordHasher
    issuer: TokenIssuer
    signing_keys: list[SigningKey] = field(repr=False)
    throttle: LoginThrottle
    denylist: TokenDenylist
    refresh_token_ttl: int
    links: LinkPolicy
    # ACCOUNT_REQUIRE_EMAIL_VERIFICATION: `register` answers alike for a new and a taken e-mail.
    require_email_verification: bool = False
    cursor_secret: InitVar[str]
    cursors: CursorCodec = field(init=False, repr=False)

    def __post_init__(self, cursor_secret: str) -> None:
        if self.signing_keys and self.issuer.key.kid != self.signing_keys[-1].kid:
            raise ValueError("the issuer must sign with the last key of the set")
        self.cursors = CursorCodec(cursor_secret, purpose="accounts")

    # -- sessions ---------------------------------------------------------------------------

    async def register(self, *, email: str, name: str, password: str) -> Session:
        email, name, password_hash = await self._new_credentials(email, name, password)
        if self.require_email_verification:
            return await self._register_neutrally(email, name, password_hash)
        try:
            async with transaction(self.sessions) as session:
                account = Account(
                    id=uuid.uuid4(), email=email, name=name, password_hash=password_hash, role=CUSTOMER
                )
                session.add(account)
                await session.flush()
                await self.outbox.add(session, messages.registered(account))
                tokens = await self._start_family(session, account)
                await session.refresh(account)
        except IntegrityError as exc:
            if "uq_accounts_email" in str(exc.orig):
                raise AlreadyExists("an account with this e-mail already exists", field="email") from None
            raise
        return Session(account, tokens)

    async def _register_neutrally(self, email: str, name: str, password_hash: str) -> Session:
        """The same answer whether or not the e-mail is taken: an unverified account and no tokens
        (the caller signs in with the password once the account exists). A new account gets a
        verification link; the owner of a taken e-mail is told someone tried, and nothing changes."""
        try:
            async with transaction(self.sessions) as session:
                existing = await session.scalar(select(Account).where(Account.email == email))
                if existing is not None:
                    await self.outbox.add(session, messages.registration_attempted(existing))
                    return Session(_stand_in(email, name), NO_TOKENS)
                account = Account(
                    id=uuid.uuid4(), email=email, name=name, password_hash=password_hash, role=CUSTOMER
                )
                session.add(account)
                await session.flush()
                await self.outbox.add(session, messages.registered(account))
                await one_time.stage_verification(session, self.outbox, account, self.links)
                await session.refresh(account)
        except IntegrityError as exc:
            if "uq_accounts_email" not in str(exc.orig):
                raise
            # A concurrent registration of the same e-mail won; its owner hears of that one.
            return Session(_stand_in(email, name), NO_TOKENS)
        return Session(account, NO_TOKENS)

    async def login(self, *, email: str, password: str, client: str = "") -> Session:
        """`client` is the caller's address: failed attempts are throttled per e-mail and address."""
        violations = Violations()
        violations.check(bool(email.strip()), "email", "is required")
        violations.check(bool(password), "password", "is required")
        violations.check(
            len(email) <= MAX_EMAIL_LENGTH, "email", f"must be at most {MAX_EMAIL_LENGTH} characters"
        )
        violations.check(len(password.encode()) <= 1024, "password", "is too long")
        violations.raise_if_any()
        email = email.strip().lower()
        await self.throttle.attempt(email, client)
        # PostgreSQL text cannot hold NUL, so no account has such an e-mail: it is not looked up.
        account: Account | None = None
        if "\x00" not in email:
            async with self.sessions() as session:
                account = await session.scalar(select(Account).where(Account.email == email))
        # The same bcrypt work whether or not the account exists: no e-mail enumeration by timing.
        if account is None:
            await self.hasher.verify_dummy_async(password)
            ok = False
        else:
            ok = await self.hasher.verify_async(password, account.password_hash)
        if not ok or account is None:
            raise Unauthenticated(BAD_CREDENTIALS, reason="INVALID_CREDENTIALS")
        await self.throttle.succeeded(email, client)
        async with transaction(self.sessions) as session:
            tokens = await self._start_family(session, account)
        return Session(account, tokens)

    async def refresh(self, *, refresh_token: str) -> Session:
        if not refresh_token or len(refresh_token) > MAX_REFRESH_TOKEN_LENGTH:
            raise InvalidArgument.field("refresh_token", "is not a valid refresh token")
        token_hash = hash_refresh_token(refresh_token)
        async with transaction(self.sessions) as session:
            # The row lock serialises concurrent refreshes of one token: at most one rotates it.
            row = await session.scalar(
                select(RefreshToken).where(RefreshToken.token_hash == token_hash).with_for_update()
            )
            if row is None or row.revoked_at is not None or row.expires_at <= datetime.now(UTC):
                raise Unauthenticated(BAD_REFRESH, reason="INVALID_REFRESH_TOKEN")
            if row.rotated_at is None:
                row.rotated_at = func.now()
                account = await session.get(Account, row.account_id)
                if account is None:
                    raise Unauthenticated(BAD_REFRESH, reason="INVALID_REFRESH_TOKEN")
                return Session(account, await self._issue(session, account, row.family_id))
            # A rotated token came back: someone holds a copy. Revoke the whole family.
            await self._revoke_family(session, row.family_id)
        log.warning("refresh token reuse detected; family revoked", extra={"account_id": str(row.account_id)})
        raise Unauthenticated(BAD_REFRESH, reason="REFRESH_TOKEN_REUSED")

    async def logout(self, caller: Caller | None, *, refresh_token: str) -> None:
        if not refresh_token or len(refresh_token) > MAX_REFRESH_TOKEN_LENGTH:
            raise InvalidArgument.field("refresh_token", "is not a valid refresh token")
        async with transaction(self.sessions) as session:
            row = await session.scalar(
                select(RefreshToken).where(RefreshToken.token_hash == hash_refresh_token(refresh_token))
            )
            if row is not None:
                if caller is not None and str(row.account_id) != caller.account_id:
                    raise PermissionDenied("this refresh token belongs to another account")
                await self._revoke_family(session, row.family_id)
        if caller is not None and caller.token_id and caller.expires_at is not None:
            await self.denylist.add(caller.token_id, caller.expires_at)

    # -- profile ------------------------------------------------------------------------------

    async def get_me(self, caller: Caller | None) -> Account:
        caller = require_caller(caller)
        return await self._get(caller.account_id)

    async def update_profile(self, caller: Caller | None, *, name: str) -> Account:
        caller = require_caller(caller)
        violations = Violations()
        name = normalize_name(name, violations)
        violations.raise_if_any()
        async with transaction(self.sessions) as session:
            account = await self._get_for_update(session, caller.account_id)
            account.name = name
            account.updated_at = func.now()
        return await self._get(caller.account_id)

    async def change_password(
        self, caller: Caller | None, *, current_password: str, new_password: str, client: str = ""
    ) -> None:
        caller = require_caller(caller)
        violations = Violations()
        violations.check(bool(current_password), "current_password", "is required")
        check_password(new_password, violations, "new_password")
        violations.check(
            new_password != current_password, "new_password", "must differ from the current password"
        )
        violations.raise_if_any()
        account = await self._get(caller.account_id)
        await self.throttle.attempt(account.email, client)
        if not await self.hasher.verify_async(current_password, account.password_hash):
            raise InvalidArgument.field("current_password", "is not correct")
        await self.throttle.succeeded(account.email, client)
        new_hash = await self.hasher.hash_async(new_password)
        async with transaction(self.sessions) as session:
            row = await self._get_for_update(session, caller.account_id)
            row.password_hash = new_hash
            row.updated_at = func.now()
            # Every sign-in, the caller's included, ends with the old password.
            await self.end_every_session(session, row)

    # -- administration -------------------------------------------------------------------------

    async def list_accounts(self, caller: Caller | None, *, page_size: int, page_token: str) -> Page[Account]:
        require_admin(caller)
        size = pages.page_size(page_size, maximum=MAX_PAGE_SIZE)
        query = select(Account).order_by(Account.created_at, Account.id).limit(size + 1)
        if page_token:
            after = pages.position_after(self.cursors, page_token)
            query = query.where(tuple_(Account.created_at, Account.id) > after)
        async with self.sessions() as session:
            rows = list((await session.scalars(query)).all())
            total = await session.scalar(select(func.count()).select_from(Account)) or 0
        return pages.page_of(rows, size, total, lambda a: pages.position_cursor(self.cursors, a))

    async def list_admins(
        self, caller: Caller | None, *, page_size: int, page_token: str
    ) -> tuple[list[Account], str]:
        """A page of the live ADMIN accounts, oldest first, and the token of the next page ("" on
        the last): the administrators a service writes to. For services and administrators."""
        caller = require_caller(caller)
        if caller.role not in (ADMIN, SERVICE):
            raise PermissionDenied("only administrators and services may list the administrators")
        size = pages.page_size(page_size, maximum=MAX_PAGE_SIZE, default=MAX_PAGE_SIZE)
        query = (
            select(Account)
            .where(Account.role == ADMIN, Account.deleted_at.is_(None))
            .order_by(Account.created_at, Account.id)
            .limit(size + 1)
        )
        if page_token:
            after = pages.position_after(self.cursors, page_token, scope=ADMINS_SCOPE)
            query = query.where(tuple_(Account.created_at, Account.id) > after)
        async with self.sessions() as session:
            admins, more = pages.split_page((await session.scalars(query)).all(), size)
        token = pages.position_cursor(self.cursors, admins[-1], scope=ADMINS_SCOPE) if more else ""
        return admins, token

    async def set_role(self, caller: Caller | None, *, account_id: str, role: str) -> Account:
        caller = require_admin(caller)
        if role not in ROLES:
            raise InvalidArgument.field("role", "must be CUSTOMER or ADMIN")
        target = parse_id(account_id, "account_id")
        if str(target) == caller.account_id and role != ADMIN:
            raise Conflict("an administrator cannot remove their own ADMIN role")
        async with transaction(self.sessions) as session:
            account = await self._get_for_update(session, str(target))
            old_role = account.role
            if old_role != role:
                account.role = role
                account.updated_at = func.now()
                await self.outbox.add(session, messages.role_changed(account, old_role, caller.account_id))
                # Live tokens carry the old role: refused, they make the client refresh for the new one.
                await self._refuse_tokens_issued_before_now(account)
        return await self._get(str(target))

    async def batch_get(self, caller: Caller | None, *, ids: list[str]) -> list[Account]:
        caller = require_caller(caller)
        if len(ids) > 100:
            raise InvalidArgument.field("ids", "at most 100 ids")
        wanted = {parse_id(i, "ids") for i in ids}
        if caller.role not in (ADMIN, SERVICE) and any(str(i) != caller.account_id for i in wanted):
            raise PermissionDenied("only administrators may read other accounts")
        if not wanted:
            return []
        async with reads(self.sessions) as session:
            # A deleted account is not found: nothing may be sent to its placeholder e-mail.
            found = select(Account).where(Account.id.in_(wanted), Account.deleted_at.is_(None))
            return list((await session.scalars(found)).all())

    async def create_or_promote_admin(self, *, email: str, name: str, password: str) -> bool:
        """For the operator's `create-admin` command. True when the account was created."""
        email, name, password_hash = await self._new_credentials(email, name, password)
        async with transaction(self.sessions) as session:
            account = await session.scalar(select(Account).where(Account.email == email).with_for_update())
            if account is None:
                account = Account(
                    id=uuid.uuid4(), email=email, name=name, password_hash=password_hash, role=ADMIN
                )
                session.add(account)
                await session.flush()
                await self.outbox.add(session, messages.registered(account))
                return True
            old_role = account.role
            account.role = ADMIN
            account.password_hash = password_hash
            account.updated_at = func.now()
            await self._refuse_tokens_issued_before_now(account)
            if old_role != ADMIN:
                await self.outbox.add(session, messages.role_changed(account, old_role, "create-admin"))
            return False

    def jwks(self) -> dict:
        """Every key of the set: the last signs, the others verify the tokens they signed or will sign."""
        return jwks(self.signing_keys)

    def use_keys(self, keys: list[SigningKey]) -> None:
        """Sign with the last of `keys` from now on and publish them all."""
        if not keys:
            raise ValueError("at least one signing key is needed")
        self.signing_keys = list(keys)
        self.issuer = TokenIssuer(
            keys[-1],
            issuer=self.issuer.issuer,
            audience=self.issuer.audience,
            ttl_seconds=self.issuer.ttl_seconds,
        )

    async def restore_cutoffs(self) -> int:
        """Write to Redis the cut-offs of the accounts whose refused tokens could still be alive
        (after Redis lost them); returns how many."""
        horizon = datetime.now(UTC) - timedelta(seconds=self._cutoff_ttl)
        async with self.sessions() as session:
            rows = (
                await session.execute(
                    select(Account.id, Account.tokens_valid_after).where(Account.tokens_valid_after > horizon)
                )
            ).all()
        for account_id, cutoff in rows:
            if cutoff is None:  # excluded by the query; the column type allows it
                continue
            remaining = int((cutoff - horizon).total_seconds()) + 1
            await self.denylist.revoke_issued_before(str(account_id), cutoff, ttl=remaining)
        return len(rows)

    # -- helpers ------------------------------------------------------------------------------

    async def _new_credentials(self, email: str, name: str, password: str) -> tuple[str, str, str]:
        """The normalised e-mail and name and the password's hash; InvalidArgument naming every
        field that fails its check."""
        violations = Violations()
        email = normalize_email(email, violations)
        name = normalize_name(name, violations)
        check_password(password, violations)
        violations.raise_if_any()
        return email, name, await self.hasher.hash_async(password)

    async def _get(self, account_id: str) -> Account:
        async with self.sessions() as session:
            account = await session.get(Account, parse_id(account_id, "account_id"))
        if account is None:
            raise NotFound("account not found")
        return account

    async def _get_for_update(self, session: AsyncSession, account_id: str) -> Account:
        account = await session.get(Account, parse_id(account_id, "account_id"), with_for_update=True)
        if account is None:
            raise NotFound("account not found")
        return account

    async def _start_family(self, session: AsyncSession, account: Account) -> TokenPair:
        return await self._issue(session, account, uuid.uuid4())

    async def start_session(self, session: AsyncSession, account: Account) -> TokenPair:
        """A new sign-in of the account, within the caller's transaction."""
        return await self._start_family(session, account)

    async def end_every_session(self, session: AsyncSession, account: Account) -> None:
        """Within the caller's transaction: every refresh token of the account revoked and every
        access token issued until now refused (a Redis failure aborts the transaction)."""
        await session.execute(
            update(RefreshToken)
            .where(RefreshToken.account_id == account.id, RefreshToken.revoked_at.is_(None))
            .values(revoked_at=func.now())
        )
        await self._refuse_tokens_issued_before_now(account)

    async def _issue(self, session: AsyncSession, account: Account, family_id: uuid.UUID) -> TokenPair:
        access_token, _claims = self.issuer.issue(
            str(account.id), account.role, {"email_verified": account.email_verified}
        )
        refresh_token = new_refresh_token()
        session.add(
            RefreshToken(
                account_id=account.id,
                family_id=family_id,
                token_hash=hash_refresh_token(refresh_token),
                expires_at=datetime.now(UTC) + timedelta(seconds=self.refresh_token_ttl),
            )
        )
        return TokenPair(access_token, refresh_token, self.issuer.ttl_seconds)

    @property
    def _cutoff_ttl(self) -> int:
        # The longest an access token issued before the cut-off can still pass a verifier.
        return self.issuer.ttl_seconds + CLOCK_LEEWAY

    async def refuse_tokens_issued_before_now(self, account: Account) -> None:
        """Within the caller's transaction: every access token of the account issued until now is
        refused (its claims are stale); refresh tokens stay valid."""
        await self._refuse_tokens_issued_before_now(account)

    async def _refuse_tokens_issued_before_now(self, account: Account) -> None:
        """Within the caller's transaction: its commit keeps the cut-off; a Redis failure aborts it."""
        cutoff = datetime.now(UTC)
        account.tokens_valid_after = cutoff
        await self.denylist.revoke_issued_before(str(account.id), cutoff, ttl=self._cutoff_ttl)

    async def _revoke_family(self, session: AsyncSession, family_id: uuid.UUID) -> None:
        await session.execute(
            update(RefreshToken)
            .where(RefreshToken.family_id == family_id, RefreshToken.revoked_at.is_(None))
            .values(revoked_at=func.now())
        )
