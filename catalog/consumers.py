"""What the catalog consumes: the saga's commands on `inventory.commands`, handled by the Inventory.

Each handler runs in the inbox transaction; the answer it stages in the outbox is caused by the
command (`Cause.of(envelope)`).
"""

from __future__ import annotations

from typing import cast

from sqlalchemy.ext.asyncio import AsyncSession

from catalog.inventory import Inventory
from catalog.views import Line
from ecommerce.events.v1 import inventory_events_pb2
from servicekit.inbox import Envelope, Handler
from servicekit.kafka import unpack
from servicekit.messages import Cause
from servicekit.topics import INVENTORY_COMMANDS, InventoryCommand

TOPICS = (INVENTORY_COMMANDS,)


def handlers(inventory: Inventory) -> dict[str, Handler]:
    """The inventory.commands consumer's handlers; each runs in the transaction that records the
    inbox row."""

    async def reserve(session: AsyncSession, envelope: Envelope) -> None:
        command = cast(inventory_events_pb2.ReserveStock, unpack(envelope, inventory_events_pb2.ReserveStock))
        await inventory.reserve(
            session,
            order_id=command.order_id,
            lines=[Line(line.product_id, line.quantity, line.variant_id) for line in command.lines],
            cause=Cause.of(envelope),
        )

    async def release(session: AsyncSession, envelope: Envelope) -> None:
        command = cast(inventory_events_pb2.ReleaseStock, unpack(envelope, inventory_events_pb2.ReleaseStock))
        await inventory.release(
            session, order_id=command.order_id, reason=command.reason, cause=Cause.of(envelope)
        )

    async def commit(session: AsyncSession, envelope: Envelope) -> None:
        command = cast(inventory_events_pb2.CommitStock, unpack(envelope, inventory_events_pb2.CommitStock))
        await inventory.commit(session, order_id=command.order_id, cause=Cause.of(envelope))

    return {
        InventoryCommand.RESERVE_STOCK: reserve,
        InventoryCommand.RELEASE_STOCK: release,
        InventoryCommand.COMMIT_STOCK: commit,
    }
