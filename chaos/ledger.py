"""What the platform holds after a fault, read from the services' own databases, the broker's
consumer offsets and the mailbox: when it has settled, and whether the promises still hold."""

from __future__ import annotations

import contextlib
import email.parser
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from bench.seed import plain_dsn
from servicekit import topics
from servicekit.kafka import connection_options

log = logging.getLogger(__name__)

IN_FLIGHT = "SELECT count(*) FROM orders WHERE status NOT IN ('CONFIRMED', 'CANCELLED')"
SERVICES = ("account", "catalog", "order", "payment", "notification")
# The consumer groups of the services and the topics each reads.
GROUPS = topics.consumer_groups()


@dataclass
class Snapshot:
    """Why the platform has not settled yet (empty when it has)."""

    waiting: list[str] = field(default_factory=list)

    @property
    def settled(self) -> bool:
        return not self.waiting


@dataclass
class Verdict:
    orders: int = 0
    lost: int = 0
    oversold: int = 0
    leaked_units: int = 0
    double_charges: int = 0
    charged_but_cancelled: int = 0
    unpaid_confirmed: int = 0
    wrong_refunds: int = 0
    duplicate_emails: int = 0
    missing_emails: int = 0
    resent_copies: int = 0
    unpublished: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    violations: list[str] = field(default_factory=list)


class Ledger:
    def __init__(self, database_urls: dict[str, str], bootstrap_servers: str, mail_dir: Path) -> None:
        self.dsns = {service: plain_dsn(url) for service, url in database_urls.items()}
        self.bootstrap_servers = bootstrap_servers
        self.mail_dir = mail_dir
        self._headers: dict[str, tuple[str, str]] = {}  # file name -> (notification id, Message-ID)

    async def _fetch(self, service: str, sql: str, *args: Any) -> list[asyncpg.Record]:
        conn = await asyncpg.connect(self.dsns[service], timeout=5)
        try:
            return list(await conn.fetch(sql, *args))
        finally:
            await conn.close()

    # -- settling ----------------------------------------------------------------------------------

    async def snapshot(self) -> Snapshot:
        snap = Snapshot()
        try:
            await self._pending_rows(snap)
            await self._consumer_lag(snap)
        except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
            snap.waiting.append(f"cannot read the state yet: {type(exc).__name__}: {exc}")
        return snap

    async def orders_in_flight(self) -> int | None:
        """Orders whose saga is under way (not yet CONFIRMED or CANCELLED); None if unreadable."""
        try:
            rows = await self._fetch("order", IN_FLIGHT)
        except (OSError, asyncpg.PostgresError, TimeoutError):
            return None
        return int(rows[0][0])

    async def _pending_rows(self, snap: Snapshot) -> None:
        checks = {
            "order": IN_FLIGHT,
            "payment": "SELECT count(*) FROM payments WHERE status = 'PENDING'",
            "catalog": "SELECT count(*) FROM stock_orders WHERE status = 'RESERVED'",
            "notification": "SELECT count(*) FROM notifications WHERE status = 'PENDING'",
        }
        for service, sql in checks.items():
            if count := (await self._fetch(service, sql))[0][0]:
                snap.waiting.append(f"{service}: {count} rows in flight")
        for service in SERVICES:
            rows = await self._fetch(service, "SELECT count(*) FROM outbox WHERE published_at IS NULL")
            if rows[0][0]:
                snap.waiting.append(f"{service}: {rows[0][0]} events not yet published")
        # What the consumer groups' offsets cannot tell: the broker may list a record a moment
        # after it acknowledged it, so a confirmation just published can look consumed.
        confirmed = await self._fetch("order", "SELECT id::text FROM orders WHERE status = 'CONFIRMED'")
        noted = await self._fetch(
            "notification",
            "SELECT DISTINCT variables->>'order_id' FROM notifications WHERE template = 'order_confirmed'",
        )
        if unnoted := {r[0] for r in confirmed} - {r[0] for r in noted}:
            snap.waiting.append(f"notification: {len(unnoted)} confirmed orders without their e-mail yet")

    async def _consumer_lag(self, snap: Snapshot) -> None:
        lag = await self.consumer_lag()
        for group, behind in lag.items():
            if behind:
                snap.waiting.append(f"consumer group {group}: {behind} messages behind")

    async def consumer_lag(self) -> dict[str, int]:
        """Messages each service's consumer group has not committed, over its topics' partitions."""
        admin = AIOKafkaAdminClient(**connection_options(self.bootstrap_servers), request_timeout_ms=5000)
        reader = AIOKafkaConsumer(**connection_options(self.bootstrap_servers), request_timeout_ms=5000)
        await admin.start()
        await reader.start()
        try:
            await reader.topics()
            lag: dict[str, int] = {}
            for group, topics in GROUPS.items():
                partitions = [
                    TopicPartition(t, p) for t in topics for p in sorted(reader.partitions_for_topic(t) or ())
                ]
                ends = await reader.end_offsets(partitions)
                committed = await admin.list_consumer_group_offsets(group, partitions=partitions)
                lag[group] = sum(
                    max(0, ends[tp] - max(0, getattr(committed.get(tp), "offset", 0) or 0))
                    for tp in partitions
                )
            return lag
        finally:
            with contextlib.suppress(Exception):
                await reader.stop()
            with contextlib.suppress(Exception):
                await admin.close()

    # -- the invariants ----------------------------------------------------------------------------

    async def verdict(
        self, accepted: list[str], initial_stock: dict[str, int], internal: list[str]
    ) -> Verdict:
        v = Verdict()
        orders = {
            str(r["id"]): r
            for r in await self._fetch(
                "order",
                """SELECT o.id, o.status, o.cancellation_reason,
                          EXISTS (SELECT 1 FROM order_history h WHERE h.order_id = o.id AND h.status = 'CONFIRMED')
                            AS was_confirmed
                     FROM orders o""",
            )
        }
        v.orders = len(orders)
        v.outcomes = dict(
            Counter(f"{r['status']} {r['cancellation_reason'] or ''}".strip() for r in orders.values())
        )
        final = ("CONFIRMED", "CANCELLED")
        missing = [o for o in accepted if o not in orders]
        unfinished = [o for o in accepted if o in orders and orders[o]["status"] not in final]
        v.lost = len(missing) + len(unfinished)
        if missing:
            v.violations.append(f"{len(missing)} accepted orders are missing, e.g. {missing[0]}")
        if unfinished:
            v.violations.append(f"{len(unfinished)} accepted orders never finished, e.g. {unfinished[0]}")
        confirmed = {o for o, r in orders.items() if r["status"] == "CONFIRMED"}
        refundable = {o for o, r in orders.items() if r["status"] == "CANCELLED" and r["was_confirmed"]}

        await self._stock(v, initial_stock)
        await self._payments(v, orders, confirmed, refundable)
        await self._emails(v, confirmed, {o for o, r in orders.items() if not r["was_confirmed"]})
        for service in SERVICES:
            rows = await self._fetch(service, "SELECT count(*) FROM outbox WHERE published_at IS NULL")
            v.unpublished += rows[0][0]
        if v.unpublished:
            v.violations.append(f"{v.unpublished} outbox rows left unpublished")
        if internal:
            v.violations.append(
                f"{len(internal)} requests answered with an internal error, e.g. {internal[0]}"
            )
        return v

    async def _stock(self, v: Verdict, initial: dict[str, int]) -> None:
        ids = list(initial)
        sold = {
            str(r["product_id"]): r["units"]
            for r in await self._fetch(
                "order",
                """SELECT i.product_id, sum(i.quantity) AS units FROM order_items i
                     JOIN orders o ON o.id = i.order_id
                    WHERE o.status = 'CONFIRMED' AND i.product_id = ANY($1::uuid[])
                    GROUP BY i.product_id""",
                ids,
            )
        }
        # Stock lives on a product's variants: what is left of a product is their sum, and no
        # variant may be below zero.
        rows = await self._fetch(
            "catalog",
            """SELECT product_id, sum(stock) AS stock, min(stock) AS lowest FROM product_variants
                WHERE product_id = ANY($1::uuid[]) GROUP BY product_id""",
            ids,
        )
        on_hand = {str(r["product_id"]): r["stock"] for r in rows}
        lowest = {str(r["product_id"]): r["lowest"] for r in rows}
        for product, start in initial.items():
            units_sold, left = sold.get(product, 0), on_hand[product]
            if lowest[product] < 0:
                v.oversold += -lowest[product]
                v.violations.append(f"product {product} has a variant at {lowest[product]} units")
            gap = start - left - units_sold
            if gap < 0:
                v.oversold += -gap
                v.violations.append(f"product {product}: sold {units_sold} with {start} - {left} gone")
            elif gap > 0:
                v.leaked_units += gap
                v.violations.append(f"product {product}: {gap} units neither on hand nor sold")

    async def _payments(
        self, v: Verdict, orders: dict[str, Any], confirmed: set[str], refundable: set[str]
    ) -> None:
        payments = {
            str(r["order_id"]): r
            for r in await self._fetch(
                "payment",
                """SELECT p.order_id, p.status, p.idempotency_key, (r.id IS NOT NULL) AS refunded
                     FROM payments p LEFT JOIN refunds r ON r.payment_id = p.id""",
            )
        }
        ledger: dict[str, Counter[str]] = {}
        for r in await self._fetch(
            "payment", "SELECT operation, idempotency_key FROM simulated_ledger WHERE outcome = 'succeeded'"
        ):
            ledger.setdefault(r["idempotency_key"], Counter())[r["operation"]] += 1
        for order_id in orders:
            payment = payments.get(order_id)
            books = ledger.get(payment["idempotency_key"], Counter()) if payment else Counter()
            charges = books["authorize"]
            standing = charges - books["void"] - books["refund"]
            if charges > 1:
                v.double_charges += charges - 1
                v.violations.append(f"order {order_id} was charged {charges} times")
            if order_id in confirmed:
                if standing != 1 or payment is None or payment["status"] != "SUCCEEDED":
                    v.unpaid_confirmed += 1
                    v.violations.append(
                        f"confirmed order {order_id} holds {standing} charges ({payment and payment['status']})"
                    )
            elif standing > 0:
                v.charged_but_cancelled += 1
                v.violations.append(f"cancelled order {order_id} still holds a charge")
            if (
                payment is not None
                and (payment["refunded"] or books["refund"])
                and order_id not in refundable
            ):
                v.wrong_refunds += 1
                v.violations.append(
                    f"order {order_id} was refunded without being cancelled after confirmation"
                )

    async def _emails(self, v: Verdict, confirmed: set[str], never_confirmed: set[str]) -> None:
        rows = await self._fetch(
            "notification",
            """SELECT id, variables->>'order_id' AS order_id, status FROM notifications
                WHERE template = 'order_confirmed'""",
        )
        by_notification = {str(r["id"]): r["order_id"] for r in rows}
        per_order: dict[str, set[str]] = {}
        copies: Counter[str] = Counter()
        for notification_id, message_id in self._mail_headers():
            order_id = by_notification.get(notification_id)
            if order_id is None:
                continue
            per_order.setdefault(order_id, set()).add(message_id)
            copies[message_id] += 1
        v.resent_copies = sum(n - 1 for n in copies.values())
        for order_id in confirmed:
            messages = per_order.get(order_id, set())
            if len(messages) > 1:
                v.duplicate_emails += len(messages) - 1
                v.violations.append(f"order {order_id} got {len(messages)} confirmation e-mails")
            elif not messages:
                v.missing_emails += 1
                v.violations.append(f"confirmed order {order_id} got no confirmation e-mail")
        stray = [o for o in never_confirmed if o in per_order]
        if stray:
            v.violations.append(
                f"{len(stray)} never-confirmed orders got a confirmation e-mail, e.g. {stray[0]}"
            )

    def _mail_headers(self) -> list[tuple[str, str]]:
        parser = email.parser.BytesHeaderParser()
        for path in sorted(self.mail_dir.glob("*.eml")):
            if path.name not in self._headers:
                with path.open("rb") as handle:
                    headers = parser.parse(handle)
                self._headers[path.name] = (
                    str(headers.get("X-Ecommerce-Notification-Id", "")),
                    str(headers.get("Message-ID", "")),
                )
        return list(self._headers.values())
