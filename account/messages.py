"""What the account service publishes: facts on `account.events`, and on `account.links` the
e-mails that carry a one-time link (it consumes nothing)."""

from __future__ import annotations

from datetime import datetime

from account.models import Account
from ecommerce.events.v1 import account_events_pb2
from servicekit.messages import Message
from servicekit.timestamps import now_timestamp, to_timestamp
from servicekit.topics import ACCOUNT_EVENTS, ACCOUNT_LINKS, AccountEvent, AccountLink


def registered(account: Account) -> Message:
    return Message(
        ACCOUNT_EVENTS,
        AccountEvent.REGISTERED,
        str(account.id),
        account_events_pb2.AccountRegistered(
            account_id=str(account.id), email=account.email, name=account.name, registered_at=now_timestamp()
        ),
    )


def role_changed(account: Account, old_role: str, changed_by: str) -> Message:
    return Message(
        ACCOUNT_EVENTS,
        AccountEvent.ROLE_CHANGED,
        str(account.id),
        account_events_pb2.AccountRoleChanged(
            account_id=str(account.id), old_role=old_role, new_role=account.role, changed_by=changed_by
        ),
    )


def email_verification_requested(account: Account, link: str, expires_at: datetime) -> Message:
    return Message(
        ACCOUNT_LINKS,
        AccountLink.EMAIL_VERIFICATION_REQUESTED,
        str(account.id),
        account_events_pb2.EmailVerificationRequested(
            account_id=str(account.id), link=link, expires_at=to_timestamp(expires_at)
        ),
    )


def registration_attempted(account: Account) -> Message:
    return Message(
        ACCOUNT_EVENTS,
        AccountEvent.REGISTRATION_ATTEMPTED,
        str(account.id),
        account_events_pb2.AccountRegistrationAttempted(
            account_id=str(account.id), attempted_at=now_timestamp()
        ),
    )


def password_reset_requested(account: Account, link: str, expires_at: datetime) -> Message:
    return Message(
        ACCOUNT_LINKS,
        AccountLink.PASSWORD_RESET_REQUESTED,
        str(account.id),
        account_events_pb2.PasswordResetRequested(
            account_id=str(account.id), link=link, expires_at=to_timestamp(expires_at)
        ),
    )


def deleted(account: Account) -> Message:
    """No personal data: the id is what every other service needs to erase its copies."""
    return Message(
        ACCOUNT_EVENTS,
        AccountEvent.DELETED,
        str(account.id),
        account_events_pb2.AccountDeleted(account_id=str(account.id), deleted_at=now_timestamp()),
    )
