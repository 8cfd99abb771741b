"""`make chaos`: the platform under faults, one at a time, with orders coming in all along.

    python -m chaos.run                 every fault (about fifteen minutes on two cores)
    python -m chaos.run --short         the few that `make test` runs
    python -m chaos.run --faults "kill order,poison"

It starts the embedded PostgreSQL, Redis and broker and every service and the gateway as their
own processes, with a fault proxy in front of the broker (every service's Kafka traffic crosses
it) and one between the order and payment services. It opens a shop (scarce products, many
shoppers) and, for each fault: places orders at a steady rate, injects the fault, lets it last a
number of orders, heals it, stops placing orders, waits for the platform to settle, and checks
the invariants over everything the platform holds:

- every accepted order ends CONFIRMED or CANCELLED (none lost);
- per product, initial stock = on hand + sold, never below zero (none oversold);
- one standing charge per CONFIRMED order, none for the others; refunds only for orders
  cancelled after confirmation (no double charges);
- one confirmation e-mail per CONFIRMED order (no duplicates, none missing);
- no outbox row left unpublished; poison messages in the dead-letter topics, partitions flowing;
- no request answered with an internal error.

Writes bench/results/<date>-chaos[-short]/report.md and results.json; exits 1 if a fault broke
an invariant or the platform did not settle.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import logging
import os
import secrets
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from chaos import report
from chaos.faults import FAULTS, Fault, dead_lettered
from chaos.ledger import Ledger
from chaos.proxy import FaultProxy
from chaos.shop import OrderLoad, Shop, open_shop
from ecommerce_cli import parse_replicas
from ecommerce_cli.stack import (
    Infrastructure,
    Platform,
    available_services,
    cancelled_on_signals,
    free_port,
    free_ports,
    prepare,
)
from servicekit.security import load_or_create_signing_key

log = logging.getLogger("chaos")

RESULTS_DIR = Path(__file__).resolve().parent.parent / "bench" / "results"
DEAD_LETTER_WAIT = 60.0  # seconds the poison check waits for every dead-letter copy
# A throwaway account on a throwaway platform.
ADMIN_PASSWORD = "chaos-admin-password"


@dataclass
class Config:
    short: bool = False
    faults: list[str] = field(default_factory=lambda: [f.name for f in FAULTS])
    rate: float = 30.0  # orders per second
    before: int = 30  # orders placed before the fault
    during: int = 150  # orders placed while it lasts: five seconds at the default rate
    after: int = 30  # orders placed once it is healed
    products: int = 6
    # Per product: enough for most orders of the run, few enough that the last ones run out.
    units: int = 1500
    shoppers: int = 24
    settle_timeout: float = 240.0
    results_dir: Path = RESULTS_DIR
    keep_data: bool = False
    update_docs: bool = False
    replicas: int = 1  # processes of each service

    @classmethod
    def short_mode(cls) -> Config:
        return cls(
            short=True,
            faults=[f.name for f in FAULTS if f.short],
            rate=4.0,
            before=3,
            during=8,
            after=3,
            products=3,
            units=60,
            shoppers=6,
            settle_timeout=180.0,
        )


@dataclass
class Row:
    fault: str
    what: str
    accepted: int = 0
    in_flight: int | None = None
    abandoned: int = 0
    lost: int = 0
    oversold: int = 0
    double_charges: int = 0
    duplicate_emails: int = 0
    internal_errors: int = 0
    settle_seconds: float | None = None
    retries: int = 0
    answers: dict[str, int] = field(default_factory=dict)
    outcomes: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.violations and self.settle_seconds is not None


class Chaos:
    def __init__(self, config: Config) -> None:
        self.config = config
        today = datetime.now(UTC).date().isoformat()
        self.out = config.results_dir / f"{today}-chaos{'-short' if config.short else ''}"
        self.data_dir = self.out / "data"
        self.proxies: dict[str, FaultProxy] = {}
        self.poison: list[tuple[str, bytes]] = []
        self.notes: list[str] = []
        self.rows: list[Row] = []
        self.failures: list[str] = []
        self.infra: Infrastructure
        self.platform: Platform
        self.shop: Shop
        self.load: OrderLoad
        self.ledger: Ledger

    @property
    def bootstrap_servers(self) -> str:
        return self.infra.kafka_bootstrap_servers

    # -- the run ---------------------------------------------------------------------------------

    async def run(self) -> int:
        if self.data_dir.exists():
            shutil.rmtree(self.data_dir)
        self.data_dir.mkdir(parents=True)
        began = time.monotonic()
        started = False
        try:
            await self._start()
            started = True
            for name in self.config.faults:
                fault = next(f for f in FAULTS if f.name == name)
                row = await self._one(fault)
                self.rows.append(row)
                log.info(
                    "%s: %s (%s accepted, settled in %s s)%s",
                    fault.name,
                    "passed" if row.passed else "FAILED",
                    row.accepted,
                    row.settle_seconds,
                    "".join(f"\n  {v}" for v in row.violations[:10]),
                )
        except Exception as exc:
            log.exception("the chaos run stopped")
            self.failures.append(f"run: {type(exc).__name__}: {exc}")
        finally:
            if started:
                await self.load.stop()
                await self.load.close()
            await self._stop()
            self._write(time.monotonic() - began)
        return 0 if not self.failures and all(r.passed for r in self.rows) else 1

    async def _start(self) -> None:
        services = available_services()
        broker_port = free_port()
        self.infra = Infrastructure(self.data_dir, environ={}, broker_advertised_port=broker_port)
        await asyncio.to_thread(self.infra.start)
        assert self.infra.broker is not None
        self.proxies["broker"] = await FaultProxy(
            "127.0.0.1", self.infra.broker.port, port=broker_port, name="broker link"
        ).start()
        await prepare(self.infra, services, partitions=max(3, self.config.replicas))
        placement = free_ports(self.config.replicas)
        ports = placement["ports"]
        self.proxies["payment"] = await FaultProxy(
            "127.0.0.1", ports["payment"], name="order-payment link"
        ).start()
        key_file = self.data_dir / "keys" / "jwt-signing.pem"
        load_or_create_signing_key(key_file)
        self.platform = Platform(
            self.infra,
            services,
            **placement,
            extra_env={
                "ECOMMERCE_ENV": "production",
                "ACCOUNT_JWT_PRIVATE_KEY_FILE": str(key_file),
                "CURSOR_SECRET": secrets.token_urlsafe(32),
                "NOTIFICATION_WEBHOOK_SECRET_KEY": base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
                "ACCOUNT_ACCESS_TOKEN_TTL": "3600",
                # Not what is tested here: registering the shoppers should not take a minute.
                "ACCOUNT_BCRYPT_ROUNDS": "4",
                "GATEWAY_RATE_LIMIT_CAPACITY": "100000000",
                "GATEWAY_RATE_LIMIT_RESTORE_RATE": "10000000",
                # A slow provider must make payment give up on calls, so that retries are tested.
                "PAYMENT_PROVIDER_TIMEOUT": "1.0",
                "PAYMENT_BREAKER_COOL_DOWN": "3",
            },
            process_env={"order": {"PAYMENT_ADDR": self.proxies["payment"].address}},
            log_dir=self.data_dir / "logs",
        )
        await self.platform.start(timeout=120)
        url = f"http://127.0.0.1:{ports['gateway']}/graphql"
        admin_email = f"chaos-admin-{secrets.token_hex(4)}@example.com"
        cli = await asyncio.create_subprocess_exec(
            *(
                sys.executable,
                "-m",
                "ecommerce_cli.main",
                "create-admin",
                "--email",
                admin_email,
                "--name",
                "Chaos",
            ),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=self.platform.environment(),
        )
        _, stderr = await asyncio.wait_for(cli.communicate((ADMIN_PASSWORD + "\n").encode()), 120)
        if cli.returncode != 0:
            raise RuntimeError(f"create-admin failed: {stderr.decode().strip()}")
        config = self.config
        self.shop = await open_shop(
            url,
            admin_email,
            ADMIN_PASSWORD,
            products=config.products,
            units=config.units,
            shoppers=config.shoppers,
        )
        self.load = OrderLoad(self.shop, rate=config.rate)
        self.ledger = Ledger(
            {s: self.infra.database_url(s) for s in services},
            self.bootstrap_servers,
            self.infra.data_dir / "mail",
        )

    async def _stop(self) -> None:
        if getattr(self, "platform", None) is not None:
            await asyncio.to_thread(self.platform.stop)
        for proxy in self.proxies.values():
            await proxy.stop()
        if getattr(self, "infra", None) is not None:
            await asyncio.to_thread(self.infra.stop)
        if not self.config.keep_data and not self.failures and all(r.passed for r in self.rows):
            shutil.rmtree(self.data_dir, ignore_errors=True)
        elif self.data_dir.exists():
            log.warning("data and logs kept in %s", self.data_dir)

    # -- one fault -------------------------------------------------------------------------------

    async def _one(self, fault: Fault) -> Row:
        config, load = self.config, self.load
        row = Row(fault.name, fault.what)
        self.notes = []
        seen = len(load.accepted)
        codes_before, internal_before, retries_before = dict(load.codes), len(load.internal), load.retries
        abandoned_before = load.abandoned
        log.info("fault: %s", fault.name)
        load.fault = fault.name
        load.start()
        during: asyncio.Task[None] | None = None
        try:
            await load.wait_attempted(config.before)
            row.in_flight = await self.ledger.orders_in_flight()
            await fault.inject(self)
            if fault.during is not None:
                during = asyncio.create_task(fault.during(self))
            await load.wait_attempted(config.during)
        finally:
            if during is not None:
                during.cancel()
                await asyncio.gather(during, return_exceptions=True)
            await fault.heal(self)
        await load.wait_attempted(config.after)
        healed = time.monotonic()
        await load.stop()
        if await self._settle(row):
            # From the end of the fault: the last orders answered, every saga finished, every
            # event consumed, every e-mail sent.
            row.settle_seconds = round(time.monotonic() - healed, 1)
        accepted = [p.order_id for p in load.accepted]
        verdict = await self.ledger.verdict(accepted, self.shop.stock, load.internal[internal_before:])
        if self.poison:
            row.violations += await self._dead_lettered()
            row.notes.append(
                f"{len(self.poison)} poison messages, each dead-lettered by every consumer of its topic"
            )
            self.poison = []
        row.accepted = len(load.accepted) - seen
        row.abandoned = load.abandoned - abandoned_before
        row.lost = verdict.lost
        row.oversold = verdict.oversold
        row.double_charges = verdict.double_charges
        row.duplicate_emails = verdict.duplicate_emails
        row.internal_errors = len(load.internal) - internal_before
        row.retries = load.retries - retries_before
        row.answers = {
            k: v - codes_before.get(k, 0) for k, v in load.codes.items() if v - codes_before.get(k, 0)
        }
        row.outcomes = verdict.outcomes
        row.violations += verdict.violations
        if not row.accepted:
            # Invariants hold trivially over no orders: a platform that accepts none has not recovered.
            row.violations.append(f"no order accepted ({row.abandoned} requests never answered)")
        row.notes += self.notes
        if verdict.resent_copies:
            row.notes.append(f"{verdict.resent_copies} e-mails re-sent with the same Message-ID")
        return row

    async def _dead_lettered(self) -> list[str]:
        """What `dead_lettered` finds missing once every copy is there, or after a minute: a copy
        the broker acknowledged may be served a moment later."""
        deadline = time.monotonic() + DEAD_LETTER_WAIT
        while True:
            problems = await dead_lettered(self.bootstrap_servers, self.poison)
            if not problems or time.monotonic() > deadline:
                return problems
            await asyncio.sleep(1.0)

    async def _settle(self, row: Row) -> bool:
        """Wait until nothing is in flight anywhere; False (and a violation) if that never comes."""
        deadline = time.monotonic() + self.config.settle_timeout
        report_at = time.monotonic() + 15
        while True:
            snapshot = await self.ledger.snapshot()
            if snapshot.settled:
                return True
            if time.monotonic() > report_at:
                log.info("waiting to settle: %s", "; ".join(snapshot.waiting))
                report_at = time.monotonic() + 15
            if time.monotonic() > deadline:
                row.violations.append(
                    f"not settled after {self.config.settle_timeout:.0f}s: {'; '.join(snapshot.waiting)}"
                )
                return False
            await asyncio.sleep(0.5)

    # -- the report ------------------------------------------------------------------------------

    def _write(self, seconds: float) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        if len(self.rows) < len(self.config.faults):
            # Stopped (a signal, or the run itself failed) before every fault had its turn.
            self.failures.append(f"stopped after {len(self.rows)} of {len(self.config.faults)} faults")
        results: dict[str, Any] = {
            "date": datetime.now(UTC).date().isoformat(),
            "mode": "short" if self.config.short else "full",
            "seconds": round(seconds, 1),
            "config": {k: v for k, v in asdict(self.config).items() if k not in ("results_dir",)}
            | {"results_dir": str(self.config.results_dir)},
            "faults": [asdict(r) | {"passed": r.passed} for r in self.rows],
            "failures": self.failures,
            "passed": not self.failures and bool(self.rows) and all(r.passed for r in self.rows),
        }
        (self.out / "results.json").write_text(json.dumps(results, indent=2))
        (self.out / "report.md").write_text(report.markdown(results))
        log.info("report: %s", self.out / "report.md")
        if self.config.update_docs and not self.failures:
            readme = Path(__file__).resolve().parent.parent / "docs" / "reliability.md"
            if not report.update_docs(readme, results):
                log.warning("docs/reliability.md has no chaos markers; not updated")


def parse_args(argv: list[str] | None = None) -> Config:
    parser = argparse.ArgumentParser(
        prog="chaos", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--short", action="store_true", help="the short run of `make test`")
    parser.add_argument("--faults", help="comma-separated fault names (default: all); see --list")
    parser.add_argument("--list", action="store_true", help="list the faults and exit")
    parser.add_argument("--rate", type=float, help="orders per second")
    parser.add_argument(
        "--replicas",
        type=parse_replicas,
        default=1,
        metavar="N",
        help="processes of each service (1 to 8); faults hit the first one, and order reaches\n"
        "payment through the fault proxy in front of payment's first process only",
    )
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    parser.add_argument("--keep-data", action="store_true", help="keep the data directory and logs")
    parser.add_argument("--update-docs", action="store_true", help="put the table into docs/reliability.md")
    args = parser.parse_args(argv)
    if args.list:
        for fault in FAULTS:
            print(f"{fault.name:22} {fault.what}{'  (short)' if fault.short else ''}")
        raise SystemExit(0)
    config = Config.short_mode() if args.short else Config()
    if args.faults:
        names = [n.strip() for n in args.faults.split(",") if n.strip()]
        unknown = sorted(set(names) - {f.name for f in FAULTS})
        if unknown:
            parser.error(f"unknown faults: {', '.join(unknown)} (see --list)")
        config.faults = names
    if args.rate:
        config.rate = args.rate
    config.results_dir = args.results_dir
    config.keep_data = args.keep_data
    config.replicas = args.replicas
    config.update_docs = args.update_docs
    return config


def main(argv: list[str] | None = None) -> None:
    config = parse_args(argv)
    logging.basicConfig(
        level=os.environ.get("CHAOS_LOG_LEVEL", "INFO"),
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    for noisy in ("aiokafka", "httpx", "servicekit.embedded", "servicekit.mailbox", "mail.log"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        code = asyncio.run(cancelled_on_signals(Chaos(config).run()))
    except asyncio.CancelledError:
        code = 130  # stopped by a signal, after stopping everything it had started
    raise SystemExit(code)


if __name__ == "__main__":
    main()
