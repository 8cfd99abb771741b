"""The address book: an account's saved postal addresses, one of them the default; and what a data
export takes from this service, the account with its addresses.

Only the owner reads or changes an address; another account's address is NOT_FOUND, exactly as
an unknown id is. Changes take the account's row lock, so that the count limit and the single
default hold under concurrent requests.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from account.models import Account, Address
from account.quota import RequestQuota
from servicekit.auth import require_caller
from servicekit.context import Caller
from servicekit.db import transaction
from servicekit.errors import Conflict, InvalidArgument, NotFound, Violations
from servicekit.ids import parse_id
from servicekit.postal import check_address

MAX_ADDRESSES = 20
NO_SUCH_ADDRESS = "address not found"


def check_fields(raw: dict[str, str]) -> dict[str, str]:
    violations = Violations()
    fields = check_address(raw, violations, "input")
    violations.raise_if_any()
    return fields


def _address_id(raw: str) -> uuid.UUID:
    try:
        return parse_id(raw, "id")
    except InvalidArgument:
        raise NotFound(NO_SUCH_ADDRESS) from None


@dataclass(kw_only=True, eq=False, slots=True)
class AddressBook:
    sessions: async_sessionmaker[AsyncSession]
    limit: int = MAX_ADDRESSES
    exports: RequestQuota | None = None

    async def saved(self, caller: Caller | None) -> list[Address]:
        """The default first, then oldest first."""
        caller = require_caller(caller)
        async with self.sessions() as session:
            rows = await session.scalars(
                select(Address)
                .where(Address.account_id == parse_id(caller.account_id, "account_id"))
                .order_by(Address.is_default.desc(), Address.created_at, Address.id)
            )
            return list(rows.all())

    async def export(self, caller: Caller | None) -> tuple[Account, list[Address]]:
        """The caller's account and addresses, for a data export; counted against `exports`."""
        caller = require_caller(caller)
        if self.exports is not None:
            await self.exports.spend(caller.account_id, "too many data exports; try again later")
        async with self.sessions() as session:
            account = await session.get(Account, parse_id(caller.account_id, "account_id"))
        if account is None:
            raise NotFound("account not found")
        return account, await self.saved(caller)

    async def get(self, caller: Caller | None, address_id: str) -> Address:
        caller = require_caller(caller)
        async with self.sessions() as session:
            return await self._owned(session, caller, _address_id(address_id))

    async def add(self, caller: Caller | None, raw: dict[str, str]) -> Address:
        caller = require_caller(caller)
        fields = check_fields(raw)
        async with transaction(self.sessions) as session:
            account = await self._lock_account(session, caller)
            count = await session.scalar(
                select(func.count()).select_from(Address).where(Address.account_id == account.id)
            )
            if (count or 0) >= self.limit:
                raise Conflict(f"an account keeps at most {self.limit} addresses; delete one first")
            address = Address(id=uuid.uuid4(), account_id=account.id, is_default=not count, **fields)
            session.add(address)
            await session.flush()
            await session.refresh(address)
            return address

    async def update(self, caller: Caller | None, address_id: str, raw: dict[str, str]) -> Address:
        caller = require_caller(caller)
        wanted = _address_id(address_id)
        fields = check_fields(raw)
        async with transaction(self.sessions) as session:
            await self._lock_account(session, caller)
            address = await self._owned(session, caller, wanted)
            for name, value in fields.items():
                setattr(address, name, value)
            address.updated_at = func.now()
            await session.flush()
            await session.refresh(address)
            return address

    async def delete(self, caller: Caller | None, address_id: str) -> None:
        """Deleting the default makes the oldest remaining address the default."""
        caller = require_caller(caller)
        wanted = _address_id(address_id)
        async with transaction(self.sessions) as session:
            account = await self._lock_account(session, caller)
            address = await self._owned(session, caller, wanted)
            was_default = address.is_default
            await session.execute(delete(Address).where(Address.id == address.id))
            if was_default:
                oldest = (
                    select(Address.id)
                    .where(Address.account_id == account.id)
                    .order_by(Address.created_at, Address.id)
                    .limit(1)
                    .scalar_subquery()
                )
                await session.execute(update(Address).where(Address.id == oldest).values(is_default=True))

    async def set_default(self, caller: Caller | None, address_id: str) -> Address:
        caller = require_caller(caller)
        wanted = _address_id(address_id)
        async with transaction(self.sessions) as session:
            account = await self._lock_account(session, caller)
            address = await self._owned(session, caller, wanted)
            await session.execute(
                update(Address)
                .where(Address.account_id == account.id, Address.is_default.is_(True))
                .values(is_default=False)
            )
            await session.execute(update(Address).where(Address.id == address.id).values(is_default=True))
            await session.refresh(address)
            return address

    async def _lock_account(self, session: AsyncSession, caller: Caller) -> Account:
        account = await session.get(Account, parse_id(caller.account_id, "account_id"), with_for_update=True)
        if account is None:
            raise NotFound("account not found")
        return account

    async def _owned(self, session: AsyncSession, caller: Caller, address_id: uuid.UUID) -> Address:
        address = await session.get(Address, address_id)
        if address is None or str(address.account_id) != caller.account_id:
            raise NotFound(NO_SUCH_ADDRESS)
        return address
