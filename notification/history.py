"""The e-mails an account was sent: its own for a shopper, anyone's for an administrator."""

from __future__ import annotations

import uuid

from sqlalchemy import func, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from notification.models import Notification
from notification.settings import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE
from servicekit import pages
from servicekit.auth import require_caller
from servicekit.context import ROLES, Caller
from servicekit.cursor import CursorCodec
from servicekit.errors import NotFound, PermissionDenied
from servicekit.ids import parse_id
from servicekit.pages import Page


class NotificationHistory:
    def __init__(self, *, sessions: async_sessionmaker[AsyncSession], cursor_secret: str) -> None:
        self.sessions = sessions
        self.cursors = CursorCodec(cursor_secret, purpose="notifications")

    async def list_notifications(
        self, caller: Caller | None, *, account_id: str, page_size: int, page_token: str
    ) -> Page[Notification]:
        """Newest first; a page token resumes only the listing of the account it came from."""
        caller = _person(caller)
        target = parse_id(account_id, "account_id") if account_id else uuid.UUID(caller.account_id)
        if str(target) != caller.account_id and not caller.is_admin:
            raise PermissionDenied("only administrators may read another account's notifications")
        size = pages.page_size(page_size, maximum=MAX_PAGE_SIZE, default=DEFAULT_PAGE_SIZE)
        scope = ("s", str(target))
        where = [Notification.account_id == target]
        query = select(Notification).where(*where)
        if page_token:
            after = pages.position_after(self.cursors, page_token, scope=scope)
            query = query.where(tuple_(Notification.created_at, Notification.id) < after)
        query = query.order_by(Notification.created_at.desc(), Notification.id.desc()).limit(size + 1)
        async with self.sessions() as session:
            rows = list((await session.scalars(query)).all())
            total = await session.scalar(select(func.count()).select_from(Notification).where(*where)) or 0
        return pages.page_of(rows, size, total, lambda n: pages.position_cursor(self.cursors, n, scope=scope))

    async def get_notification(self, caller: Caller | None, *, notification_id: str) -> Notification:
        caller = _person(caller)
        wanted = parse_id(notification_id, "notification_id")
        async with self.sessions() as session:
            notification = await session.get(Notification, wanted)
        if notification is None or (
            str(notification.account_id) != caller.account_id and not caller.is_admin
        ):
            raise NotFound("notification not found")
        return notification


def _person(caller: Caller | None) -> Caller:
    """A signed-in account (a peer service has no notifications of its own)."""
    caller = require_caller(caller)
    if caller.role not in ROLES:
        raise PermissionDenied("this operation is for signed-in accounts")
    return caller
