"""The names on the wire: every topic and every event type, in one place.

Facts are published on `<domain>.events`, saga commands on `<domain>.commands`, keyed by the
aggregate they concern so that one aggregate's messages stay in order. A service imports the
names it publishes and the names it consumes from here, never spells them itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

ACCOUNT_EVENTS = "account.events"
# One-time links (password reset, e-mail verification) on their way to the shopper's mailbox: a
# topic of its own so that only the notification service may read it (docs/security.md).
ACCOUNT_LINKS = "account.links"
CATALOG_EVENTS = "catalog.events"
INVENTORY_COMMANDS = "inventory.commands"
INVENTORY_EVENTS = "inventory.events"
ORDER_EVENTS = "order.events"
PAYMENT_COMMANDS = "payment.commands"
PAYMENT_EVENTS = "payment.events"
NOTIFICATION_EVENTS = "notification.events"

ALL = (
    ACCOUNT_EVENTS,
    ACCOUNT_LINKS,
    CATALOG_EVENTS,
    INVENTORY_COMMANDS,
    INVENTORY_EVENTS,
    ORDER_EVENTS,
    PAYMENT_COMMANDS,
    PAYMENT_EVENTS,
    NOTIFICATION_EVENTS,
)

# Settings a topic is created with, beyond the broker's defaults. A link on account.links opens
# nothing after 7 days (the longest-lived link), so the log keeps it no longer.
TOPIC_CONFIGS: dict[str, dict[str, str]] = {ACCOUNT_LINKS: {"retention.ms": str(7 * 24 * 3600 * 1000)}}

# The gateway's own topic: `/status` produces a ping there and reads it back.
STATUS_PING = "platform.status-ping"


@dataclass(frozen=True)
class Access:
    """What one process may do on the broker, and so what its principal's ACLs allow.

    `publishes`: the topics its outbox writes. `consumes`: the topics it reads; with a `group`
    (its consumer group) it also writes their dead-letter topics, as every inbox consumer does;
    without one it reads by assigning partitions itself. `private`: topics only it uses, which it
    creates itself. `creates`: topics it creates, with their dead-letter topics, for everyone (the
    `ecommerce topics` Job).
    """

    publishes: tuple[str, ...] = ()
    consumes: tuple[str, ...] = ()
    group: str = ""
    private: tuple[str, ...] = ()
    creates: tuple[str, ...] = ()


# Every principal of the platform and what it may do: the one list the broker's ACLs are made
# from (`ecommerce kafka-acls`, servicekit.broker_acls). tests/unit/test_broker_acls.py holds it
# to what each service's messages and consumers actually use.
ACCESS: dict[str, Access] = {
    # The one-time links go on a topic of their own that only the notification service reads.
    "account": Access(publishes=(ACCOUNT_EVENTS, ACCOUNT_LINKS)),
    "catalog": Access(
        publishes=(CATALOG_EVENTS, INVENTORY_EVENTS), consumes=(INVENTORY_COMMANDS,), group="catalog"
    ),
    "order": Access(
        publishes=(ORDER_EVENTS, INVENTORY_COMMANDS, PAYMENT_COMMANDS),
        # account.events for account.deleted alone: the order snapshots' personal fields are erased.
        consumes=(INVENTORY_EVENTS, PAYMENT_EVENTS, ACCOUNT_EVENTS),
        group="order-saga",
    ),
    "payment": Access(publishes=(PAYMENT_EVENTS,), consumes=(PAYMENT_COMMANDS,), group="payment"),
    "notification": Access(
        consumes=(ACCOUNT_EVENTS, ACCOUNT_LINKS, ORDER_EVENTS, PAYMENT_EVENTS, CATALOG_EVENTS),
        group="notification",
    ),
    # The gateway reads order.events for the orderStatusChanged subscription, without a group: every
    # instance reads every partition. It writes nowhere else.
    "gateway": Access(consumes=(ORDER_EVENTS,), private=(STATUS_PING,)),
    # `ecommerce topics` (the Kubernetes Job that creates the platform's topics).
    "topics": Access(creates=ALL),
}


def consumer_groups() -> dict[str, tuple[str, ...]]:
    """Each consumer group of the platform and the topics it reads."""
    return {access.group: access.consumes for access in ACCESS.values() if access.group}


class AccountEvent(StrEnum):
    """On `account.events`, keyed by account id."""

    REGISTERED = "account.registered"
    ROLE_CHANGED = "account.role_changed"
    REGISTRATION_ATTEMPTED = "account.registration_attempted"
    # The owner deleted the account: every service erases the personal data it copied.
    DELETED = "account.deleted"


class AccountLink(StrEnum):
    """On `account.links`, keyed by account id: each carries a secret link for the account's owner."""

    PASSWORD_RESET_REQUESTED = "account.password_reset_requested"
    EMAIL_VERIFICATION_REQUESTED = "account.email_verification_requested"


class CatalogEvent(StrEnum):
    """On `catalog.events`, keyed by product id."""

    PRODUCT_CREATED = "catalog.product_created"
    PRODUCT_UPDATED = "catalog.product_updated"
    PRODUCT_ARCHIVED = "catalog.product_archived"
    STOCK_CHANGED = "catalog.stock_changed"
    STOCK_LOW = "catalog.stock_low"


class InventoryCommand(StrEnum):
    """On `inventory.commands`, keyed by order id: the saga asks the catalog."""

    RESERVE_STOCK = "inventory.reserve_stock"
    COMMIT_STOCK = "inventory.commit_stock"
    RELEASE_STOCK = "inventory.release_stock"


class InventoryEvent(StrEnum):
    """On `inventory.events`, keyed by order id: the catalog answers the saga."""

    STOCK_RESERVED = "inventory.stock_reserved"
    STOCK_REJECTED = "inventory.stock_rejected"
    STOCK_COMMITTED = "inventory.stock_committed"
    STOCK_RELEASED = "inventory.stock_released"
    RESERVATION_EXPIRED = "inventory.reservation_expired"


class OrderEvent(StrEnum):
    """On `order.events`, keyed by order id."""

    CREATED = "order.created"
    STATUS_CHANGED = "order.status_changed"
    CONFIRMED = "order.confirmed"
    CANCELLED = "order.cancelled"
    SHIPPED = "order.shipped"
    DELIVERED = "order.delivered"


class PaymentCommand(StrEnum):
    """On `payment.commands`, keyed by order id: the saga asks the payment service."""

    AUTHORIZE_PAYMENT = "payment.authorize_payment"
    VOID_PAYMENT = "payment.void_payment"
    REFUND_PAYMENT = "payment.refund_payment"


class PaymentEvent(StrEnum):
    """On `payment.events`, keyed by order id."""

    SUCCEEDED = "payment.succeeded"
    FAILED = "payment.failed"
    VOIDED = "payment.voided"
    REFUNDED = "payment.refunded"
