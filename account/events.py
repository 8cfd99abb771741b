"""The events the account service emits (it consumes none)."""

from __future__ import annotations

from typing import Any

from google.protobuf import timestamp_pb2

from account.models import Account
from ecommerce.events.v1 import account_events_pb2

TOPIC = "account.events"


def _now() -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.GetCurrentTime()
    return stamp


def registered(account: Account) -> dict[str, Any]:
    return {
        "topic": TOPIC,
        "event_type": "account.registered",
        "aggregate_id": str(account.id),
        "payload": account_events_pb2.AccountRegistered(
            account_id=str(account.id), email=account.email, name=account.name, registered_at=_now()
        ),
    }


def role_changed(account: Account, old_role: str, changed_by: str) -> dict[str, Any]:
    return {
        "topic": TOPIC,
        "event_type": "account.role_changed",
        "aggregate_id": str(account.id),
        "payload": account_events_pb2.AccountRoleChanged(
            account_id=str(account.id), old_role=old_role, new_role=account.role, changed_by=changed_by
        ),
    }
