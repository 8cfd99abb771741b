"""`ecommerce dev | serve | migrate | create-admin | seed`."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import getpass
import importlib
import json
import os
import signal
import sys
from pathlib import Path

from ecommerce_cli.stack import (
    ALL_SERVICES,
    Infrastructure,
    Platform,
    available_services,
    configured_metrics_ports,
    configured_ports,
    prepare,
)
from servicekit.errors import DomainError
from servicekit.kafka import all_topics, ensure_topics
from servicekit.logging import configure_logging
from servicekit.settings import PlatformSettings

STATE_FILE = "dev-state.json"


def _data_dir() -> Path:
    return PlatformSettings().data_dir.resolve()


@contextlib.contextmanager
def _single_instance(data_dir: Path):  # type: ignore[no-untyped-def]
    """One `ecommerce dev` per data directory; a second one says so instead of failing on ports."""
    data_dir.mkdir(parents=True, exist_ok=True)
    lock_path = data_dir / "dev.lock"
    handle = lock_path.open("a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        raise SystemExit(
            f"ecommerce dev is already running (pid {holder}) with data in {data_dir}.\n"
            "Use that one (GraphiQL at http://127.0.0.1:8000/graphql), or stop it with Ctrl-C first."
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(str(os.getpid()))
    handle.flush()
    try:
        yield
    finally:
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()


def cmd_dev(args: argparse.Namespace) -> None:
    configure_logging("ecommerce-dev", fmt="console")
    data_dir = _data_dir()
    with _single_instance(data_dir):
        asyncio.run(_dev(data_dir))


async def _dev(data_dir: Path) -> None:
    services = available_services()
    print(f"Starting PostgreSQL, Redis and the broker (data in {data_dir}) ...", flush=True)
    infra = Infrastructure(data_dir).start()
    platform = Platform(infra, services, ports=configured_ports(), metrics_ports=configured_metrics_ports())
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        print("Creating databases, running migrations, creating topics ...", flush=True)
        await prepare(infra, services)
        (data_dir / STATE_FILE).write_text(
            json.dumps({s: infra.database_url(s) for s in services} | {"redis_url": infra.redis_url})
        )
        if "catalog" in services:
            await _seed_first_start(infra)
        print(f"Starting {', '.join(services)} and the gateway ...", flush=True)
        await platform.start()
        gateway = f"http://127.0.0.1:{platform.ports['gateway']}/graphql"
        print(
            "\nThe platform is running.\n"
            f"  GraphiQL        {gateway}\n"
            + "".join(f"  {s:<15} grpc://127.0.0.1:{platform.ports[s]}\n" for s in services)
            + f"  PostgreSQL      {infra.postgres_url}\n"
            f"  Redis           {infra.redis_url}\n"
            f"  Kafka broker    {infra.kafka_bootstrap_servers}\n"
            + (
                f"  Mail (SMTP)     smtp://{infra.mailbox.host}:{infra.mailbox.port}, every e-mail saved as "
                f"an .eml file in {infra.mailbox.directory}\n"
                if infra.mailbox is not None
                else ""
            )
            + "\nCreate an administrator (in another terminal):\n"
            "  .venv/bin/ecommerce create-admin --email admin@example.com --name Admin\n"
            "\nPress Ctrl-C to stop.\n",
            flush=True,
        )
        stopped = asyncio.create_task(stop.wait())
        crashed = asyncio.create_task(_watch(platform))
        done, _ = await asyncio.wait({stopped, crashed}, return_when=asyncio.FIRST_COMPLETED)
        for task in (stopped, crashed):
            task.cancel()
        if crashed in done and not crashed.cancelled() and crashed.exception() is None:
            print(f"{crashed.result()} exited; stopping the platform.", file=sys.stderr, flush=True)
    finally:
        print("\nStopping ...", flush=True)
        platform.stop()
        infra.stop()
        with contextlib.suppress(FileNotFoundError):
            (data_dir / STATE_FILE).unlink()
        print("Stopped.", flush=True)


async def _watch(platform: Platform) -> str:
    while True:
        for name, process in platform.processes.items():
            if process.popen.poll() is not None:
                return name
        await asyncio.sleep(0.5)


def cmd_serve(args: argparse.Namespace) -> None:
    module = importlib.import_module(f"{args.service}.__main__")
    if args.service == "gateway":
        module.main()
        return
    from servicekit.runtime import run

    run(module.main())


def cmd_migrate(args: argparse.Namespace) -> None:
    configure_logging("ecommerce-migrate", fmt="console")
    services = [args.service] if args.service else available_services()

    async def migrate() -> None:
        from servicekit.db import ensure_database
        from servicekit.migrations import upgrade_async

        for service in services:
            settings = importlib.import_module(f"{service}.settings")
            cls = next(
                v for k, v in vars(settings).items() if k.endswith("Settings") and k != "ServiceSettings"
            )
            url = cls().database_url
            await ensure_database(url)
            await upgrade_async(service, url)
            print(f"{service}: migrated", flush=True)

    asyncio.run(migrate())


def _account_database_url() -> str:
    url = os.environ.get("ACCOUNT_DATABASE_URL")
    if url:
        return url
    state = _data_dir() / STATE_FILE
    if state.exists():
        return json.loads(state.read_text())["account"]
    raise SystemExit("Set ACCOUNT_DATABASE_URL, or start `ecommerce dev` first.")


async def _seed_first_start(infra: Infrastructure) -> None:
    """The demo catalog on a first start, when the catalog is still empty."""
    catalog = importlib.import_module("catalog.__main__")
    seeded = await catalog.seed(
        only_if_empty=True, database_url=infra.database_url("catalog"), redis_url=infra.redis_url
    )
    if seeded is not None:
        print(
            f"Loaded the demo catalog: {seeded.products} products in {seeded.categories} categories.",
            flush=True,
        )


def _from_dev_state(key: str, variable: str) -> str:
    """A setting from the environment, or else from the running `ecommerce dev`."""
    value = os.environ.get(variable)
    if value:
        return value
    state = _data_dir() / STATE_FILE
    if state.exists():
        return json.loads(state.read_text())[key]
    raise SystemExit(f"Set {variable}, or start `ecommerce dev` first.")


def cmd_seed(args: argparse.Namespace) -> None:
    configure_logging("ecommerce-seed", fmt="console")
    catalog = importlib.import_module("catalog.__main__")
    seeded = asyncio.run(
        catalog.seed(
            database_url=_from_dev_state("catalog", "CATALOG_DATABASE_URL"),
            redis_url=_from_dev_state("redis_url", "REDIS_URL"),
        )
    )
    print(
        f"Demo catalog loaded: {seeded.products} products and {seeded.categories} categories added "
        "(what was there already is kept)."
    )


def cmd_topics(args: argparse.Namespace) -> None:
    """Create the platform's topics (Kubernetes runs this as a Job; `ecommerce dev` does it itself)."""
    configure_logging("ecommerce-topics", fmt="console")
    settings = PlatformSettings()
    asyncio.run(
        ensure_topics(
            settings.kafka_bootstrap_servers,
            all_topics(),
            partitions=settings.kafka_topic_partitions,
            replication_factor=settings.kafka_topic_replication_factor,
        )
    )
    print(f"{len(all_topics())} topics ready on {settings.kafka_bootstrap_servers}", flush=True)


def cmd_register_queries(args: argparse.Namespace) -> None:
    from gateway.persisted import main as register_queries

    raise SystemExit(register_queries(args.files))


def cmd_create_admin(args: argparse.Namespace) -> None:
    if sys.stdin.isatty():
        password = getpass.getpass("Password: ")
        if getpass.getpass("Repeat password: ") != password:
            raise SystemExit("The passwords differ.")
    else:
        password = sys.stdin.readline().rstrip("\n")
    os.environ["ACCOUNT_DATABASE_URL"] = _account_database_url()
    admin = importlib.import_module("account.__main__")
    try:
        created = asyncio.run(admin.create_admin(email=args.email, name=args.name, password=password))
    except DomainError as error:
        raise SystemExit(f"Not created: {error.message}") from None
    print(f"{'Created' if created else 'Promoted'} administrator {args.email.strip().lower()}.")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="ecommerce", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    dev = commands.add_parser("dev", help="run the whole platform on embedded servers")
    dev.set_defaults(func=cmd_dev)

    serve = commands.add_parser("serve", help="run one service (for Kubernetes)")
    serve.add_argument("service", choices=[*ALL_SERVICES, "gateway"])
    serve.set_defaults(func=cmd_serve)

    migrate = commands.add_parser("migrate", help="create and migrate service databases")
    migrate.add_argument("service", nargs="?", choices=ALL_SERVICES)
    migrate.set_defaults(func=cmd_migrate)

    admin = commands.add_parser(
        "create-admin", help="create or promote an administrator; the password is read from standard input"
    )
    admin.add_argument("--email", required=True)
    admin.add_argument("--name", required=True)
    admin.set_defaults(func=cmd_create_admin)

    seed = commands.add_parser("seed", help="load the demo catalog (idempotent: adds only what is missing)")
    seed.set_defaults(func=cmd_seed)

    topics = commands.add_parser(
        "topics", help="create the Kafka topics (KAFKA_TOPIC_PARTITIONS, KAFKA_TOPIC_REPLICATION_FACTOR)"
    )
    topics.set_defaults(func=cmd_topics)

    queries = commands.add_parser(
        "register-queries", help="add GraphQL documents to the gateway's persisted query allowlist"
    )
    queries.add_argument("files", nargs="+", help=".graphql (one document) or .json (many)")
    queries.set_defaults(func=cmd_register_queries)

    args = parser.parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()
