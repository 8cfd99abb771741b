"""E-mails to every administrator: a variant's stock fell to or below its threshold.

The catalog publishes `catalog.stock_low` once per crossing. The consumer lists the live
administrators when it handles the event and records one PENDING e-mail per administrator in the
inbox's transaction, so each administrator gets one e-mail per crossing however often the event
is delivered. If the account service cannot list them, nothing is recorded and the error (an
outage, transient) makes the consumer retry the event rather than drop it.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from ecommerce.events.v1 import catalog_events_pb2
from notification.peers import AccountDirectory
from notification.recording import NewNotification
from servicekit.inbox import Envelope
from servicekit.kafka import unpack
from servicekit.topics import CATALOG_EVENTS, CatalogEvent

log = logging.getLogger(__name__)

STOCK_LOW_TEMPLATE = "stock_low"
ADMIN_EMAIL_EVENTS = frozenset({CatalogEvent.STOCK_LOW})


def stock_low_variables(payload: catalog_events_pb2.StockLow) -> dict[str, Any]:
    """What the alert names: the product, the variant, its SKU, its stock and its threshold."""
    return {
        "product_id": payload.product_id,
        "product_name": payload.name,
        "variant_id": payload.variant_id,
        "variant_name": payload.variant_name,
        "sku": payload.sku,
        "stock": payload.stock,
        "threshold": payload.low_stock_threshold,
    }


async def admin_emails(envelope: Envelope, directory: AccountDirectory) -> list[NewNotification]:
    """One e-mail per live administrator for this event; Unavailable when they cannot be listed."""
    payload: Any = unpack(envelope, catalog_events_pb2.StockLow)
    variables = stock_low_variables(payload)
    admins = await directory.admins()
    if not admins:
        log.warning("%s %s: there is no administrator to tell", envelope.event_type, envelope.event_id)
    return [
        NewNotification(
            account_id=uuid.UUID(admin.account_id),
            event_id=envelope.event_id,
            event_type=envelope.event_type,
            template=STOCK_LOW_TEMPLATE,
            variables=variables,
            recipient="",  # asked for at each attempt, like every e-mail to an account
            source_topic=CATALOG_EVENTS,
            envelope=envelope.SerializeToString(),
        )
        for admin in admins
    ]
