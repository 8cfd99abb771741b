"""What the catalog consumes: the saga's commands on inventory.commands, handled by the Inventory."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from catalog.events import ReplyTo
from catalog.inventory import Inventory
from ecommerce.events.v1 import inventory_events_pb2
from servicekit.inbox import Envelope, Handler
from servicekit.kafka import unpack

INVENTORY_COMMANDS = "inventory.commands"

RESERVE_STOCK = "inventory.reserve_stock"
RELEASE_STOCK = "inventory.release_stock"
COMMIT_STOCK = "inventory.commit_stock"


def _reply_to(envelope: Envelope) -> ReplyTo:
    return ReplyTo(causation_id=envelope.event_id, correlation_id=envelope.correlation_id)


def handlers(inventory: Inventory) -> dict[str, Handler]:
    """The consumer's handlers; each runs in the transaction that records the inbox row."""

    async def reserve(session: AsyncSession, envelope: Envelope) -> None:
        command = unpack(envelope, inventory_events_pb2.ReserveStock)
        await inventory.reserve(
            session,
            order_id=command.order_id,
            lines=[(line.product_id, line.quantity) for line in command.lines],
            reply_to=_reply_to(envelope),
        )

    async def release(session: AsyncSession, envelope: Envelope) -> None:
        command = unpack(envelope, inventory_events_pb2.ReleaseStock)
        await inventory.release(
            session, order_id=command.order_id, reason=command.reason, reply_to=_reply_to(envelope)
        )

    async def commit(session: AsyncSession, envelope: Envelope) -> None:
        command = unpack(envelope, inventory_events_pb2.CommitStock)
        await inventory.commit(session, order_id=command.order_id, reply_to=_reply_to(envelope))

    return {RESERVE_STOCK: reserve, RELEASE_STOCK: release, COMMIT_STOCK: commit}
