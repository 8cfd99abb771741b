"""Run and operate the e-commerce platform: the whole of it on this machine (`dev`), one
process (`serve`), its databases (`migrate`), topics, demo data, administrators and health."""

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
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from ecommerce_cli import ALL_SERVICES, parse_replicas

# Each command imports what it needs when it runs, so that `ecommerce --help` answers at once.
if TYPE_CHECKING:
    from ecommerce_cli.stack import Platform

STATE_FILE = "dev-state.json"
DEFAULT_GATEWAY_URL = "http://127.0.0.1:8000"
CHECKOUT = Path(__file__).resolve().parent.parent  # the folders `dev --reload` watches


def _data_dir() -> Path:
    from servicekit.settings import PlatformSettings

    return PlatformSettings().data_dir.resolve()


@contextlib.contextmanager
def _single_instance(data_dir: Path) -> Iterator[None]:
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
    from servicekit.logging import configure_logging

    # Readable lines in the terminal; LOG_FORMAT=json still chooses JSON.
    os.environ.setdefault("LOG_FORMAT", "console")
    configure_logging("ecommerce-dev", fmt="console")
    data_dir = _data_dir()
    with _single_instance(data_dir):
        asyncio.run(_dev(data_dir, reload=args.reload, replicas=args.replicas, grpc_tls=args.grpc_tls))


async def _dev(data_dir: Path, *, reload: bool = False, replicas: int = 1, grpc_tls: bool = False) -> None:
    from ecommerce_cli.demo import seed_first_start
    from ecommerce_cli.stack import (
        Infrastructure,
        Platform,
        available_services,
        configured_metrics_ports,
        configured_ports,
        prepare,
    )

    services = available_services()
    grpc_tls_dir = None
    if grpc_tls:
        from ecommerce_cli.certs import generate

        grpc_tls_dir = data_dir / "grpc-tls"
        generate(grpc_tls_dir)  # the CA is kept; the certificates are renewed at every start
    print(f"Starting PostgreSQL, Redis and the broker (data in {data_dir}) ...", flush=True)
    infra = Infrastructure(data_dir).start()
    platform = Platform(
        infra,
        services,
        ports=configured_ports(),
        metrics_ports=configured_metrics_ports(),
        replicas=replicas,
        grpc_tls_dir=grpc_tls_dir,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        print("Creating databases, running migrations, creating topics ...", flush=True)
        await prepare(infra, services, partitions=max(3, replicas))
        (data_dir / STATE_FILE).write_text(
            json.dumps({s: infra.database_url(s) for s in services} | {"redis_url": infra.redis_url})
        )
        await seed_first_start(
            {s: infra.database_url(s) for s in services if s in ("catalog", "order")}, infra.redis_url
        )
        print(f"Starting {', '.join(services)} and the gateway ...", flush=True)
        await platform.start()
        gateway = f"http://127.0.0.1:{platform.ports['gateway']}/graphql"
        print(
            "\nThe platform is running.\n"
            f"  GraphiQL        {gateway}\n"
            + "".join(f"  {s:<15} {platform.service_target(s)}\n" for s in services)
            + (f"  gRPC            mutual TLS only, certificates in {grpc_tls_dir}\n" if grpc_tls_dir else "")
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
            + ("\nReloading: a process restarts when its code changes.\n" if reload else "")
            + "\nPress Ctrl-C to stop.\n",
            flush=True,
        )
        stopped = asyncio.create_task(stop.wait())
        crashed = asyncio.create_task(_watch_reloading(platform) if reload else _watch(platform))
        watchers = {stopped, crashed}
        if reload:
            watchers.add(asyncio.create_task(_reload(platform)))
        done, _ = await asyncio.wait(watchers, return_when=asyncio.FIRST_COMPLETED)
        for task in watchers:
            task.cancel()
        if crashed in done and not crashed.cancelled() and crashed.exception() is None:
            print(f"{crashed.result()} exited; stopping the platform.", file=sys.stderr, flush=True)
        for task in done - {stopped, crashed}:
            if not task.cancelled() and task.exception() is not None:
                print(
                    f"Reloading failed ({task.exception()}); stopping the platform.",
                    file=sys.stderr,
                    flush=True,
                )
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


async def _watch_reloading(platform: Platform) -> str:
    """While reloading, a process that exits waits for the next change instead of stopping all."""
    reported: set[int] = set()
    while True:
        for name, process in list(platform.processes.items()):
            code = process.popen.poll()
            if code is not None and process.popen.pid not in reported:
                reported.add(process.popen.pid)
                print(f"{name} exited with code {code}; it restarts when its code changes.", flush=True)
        await asyncio.sleep(0.5)


async def _reload(platform: Platform) -> None:
    from ecommerce_cli.reload import reload_on_changes, watched_folders

    async def restart(changed: list[str]) -> None:
        names = [
            n for name in changed for n in (platform.process_names(name) if name != "gateway" else [name])
        ]
        print(f"Code changed: restarting {', '.join(names)} ...", flush=True)
        results = await asyncio.gather(*(platform.restart(name) for name in names), return_exceptions=True)
        for name, result in zip(names, results, strict=True):
            if isinstance(result, Exception):
                print(f"{name} did not restart ({result}); fix it and save again.", flush=True)
            else:
                print(f"{name} restarted.", flush=True)

    await reload_on_changes(watched_folders(CHECKOUT, [*platform.services, "gateway"]), restart)


def cmd_serve(args: argparse.Namespace) -> None:
    module = importlib.import_module(f"{args.service}.__main__")
    if args.service == "gateway":
        module.main()
        return
    from servicekit.runtime import run

    run(module.main())


def cmd_migrate(args: argparse.Namespace) -> None:
    from ecommerce_cli.stack import available_services
    from servicekit.logging import configure_logging

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
    from ecommerce_cli.demo import seed_all
    from servicekit.logging import configure_logging

    configure_logging("ecommerce-seed", fmt="console")
    asyncio.run(
        seed_all(
            _from_dev_state("catalog", "CATALOG_DATABASE_URL"),
            _from_dev_state("order", "ORDER_DATABASE_URL"),
            _from_dev_state("redis_url", "REDIS_URL"),
        )
    )


def cmd_topics(args: argparse.Namespace) -> None:
    """Create the platform's topics (Kubernetes runs this as a Job; `ecommerce dev` does it itself)."""
    from servicekit.kafka import all_topics, broker_access, ensure_topics
    from servicekit.logging import configure_logging
    from servicekit.settings import PlatformSettings

    configure_logging("ecommerce-topics", fmt="console")
    settings = PlatformSettings()
    asyncio.run(
        ensure_topics(
            broker_access(settings),
            all_topics(),
            partitions=settings.kafka_topic_partitions,
            replication_factor=settings.kafka_topic_replication_factor,
        )
    )
    print(f"{len(all_topics())} topics ready on {settings.kafka_bootstrap_servers}", flush=True)


def cmd_kafka_acls(args: argparse.Namespace) -> None:
    """Print what each principal may do on the broker, from servicekit/topics.py."""
    from servicekit import broker_acls

    sys.stdout.write(broker_acls.render(args.format))


def cmd_register_queries(args: argparse.Namespace) -> None:
    from gateway.persisted import main as register_queries

    raise SystemExit(register_queries(args.files))


def cmd_create_admin(args: argparse.Namespace) -> None:
    from servicekit.errors import DomainError

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


def cmd_rotate_keys(args: argparse.Namespace) -> None:
    from servicekit.security import promote_staged_key, rotate_key_file

    try:
        if args.promote:
            keys = promote_staged_key(args.file)
        else:
            keys = rotate_key_file(args.file, keep=args.keep, stage=args.stage)
    except (ValueError, OSError) as error:
        raise SystemExit(f"Not rotated: {error}") from None
    for key in keys[:-1]:
        print(f"verifies  {key.kid}")
    print(f"signs     {keys[-1].kid}")


def cmd_gen_certs(args: argparse.Namespace) -> None:
    from ecommerce_cli.certs import CertificateError, generate

    try:
        folders = generate(
            args.directory, namespace=args.namespace, cluster_domain=args.cluster_domain, days=args.days
        )
    except (CertificateError, OSError) as error:
        raise SystemExit(f"No certificates made: {error}") from None
    print(f"CA in {args.directory / 'ca.crt'} (keep ca.key offline: it issues the certificates).")
    print(f"One Secret per process, in the namespace {args.namespace}:")
    for folder in folders:
        print(
            f"  kubectl -n {args.namespace} create secret generic grpc-tls-{folder.name} "
            f"--from-file={folder} --dry-run=client -o yaml | kubectl apply -f -"
        )


def cmd_status(args: argparse.Namespace) -> None:
    import httpx

    url = args.url.rstrip("/") + "/status"
    try:
        response = httpx.get(url, timeout=10)
        report = response.json()
        checks = report["checks"]
    except (httpx.HTTPError, httpx.InvalidURL, ValueError, KeyError, TypeError) as exc:
        raise SystemExit(f"No status from {url}: {exc or type(exc).__name__}") from None
    print(status_table(checks))
    failing = report.get("failing") or []
    print(f"\n{'All up.' if not failing else 'Failing: ' + ', '.join(failing)}")
    if response.status_code != 200:
        raise SystemExit(1)


def status_table(checks: list[dict]) -> str:
    """One line per check: name, up or DOWN, latency, and the reason it failed."""
    width = max([len("CHECK"), *(len(str(c.get("name", ""))) for c in checks)])
    lines = [f"{'CHECK':<{width}}  STATUS  {'LATENCY':>10}  ERROR"]
    for check in checks:
        state = "up" if check.get("ok") else "DOWN"
        latency = f"{check.get('latency_ms', 0):.1f} ms"
        lines.append(
            f"{check.get('name', '?'):<{width}}  {state:<6}  {latency:>10}  {check.get('error') or ''}".rstrip()
        )
    return "\n".join(lines)


def _command(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    summary: str,
    description: str,
    examples: list[str],
) -> argparse.ArgumentParser:
    return commands.add_parser(
        name,
        help=summary,
        description=textwrap.fill(description, 100),
        epilog="Examples:\n" + "".join(f"  {example}\n" for example in examples),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ecommerce",
        description=__doc__,
        epilog="Run `ecommerce <command> --help` for a command's options and examples.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="<command>")

    dev = _command(
        commands,
        "dev",
        "run the whole platform on embedded servers",
        "Start PostgreSQL, Redis, the broker and a mail catcher (embedded, data in ECOMMERCE_DATA_DIR), "
        "migrate, load the demo catalog and shop terms on a first start, then run every service and the gateway "
        "until Ctrl-C. Each process logs readable lines prefixed with its name (LOG_FORMAT=json for "
        "JSON; NO_COLOR for no colour).",
        [
            "ecommerce dev",
            "ecommerce dev --reload",
            "ecommerce dev --replicas 2",
            "ecommerce dev --grpc-tls",
            "LOG_FORMAT=json ecommerce dev",
        ],
    )
    dev.add_argument(
        "--replicas",
        type=parse_replicas,
        default=1,
        metavar="N",
        help="processes of each service (1 to 8), the further ones on their port plus 10, 20 ...; "
        "calls are spread over all of them and the topics get at least N partitions",
    )
    dev.add_argument(
        "--reload",
        action="store_true",
        help="restart a process when its code changes (servicekit/ restarts them all)",
    )
    dev.add_argument(
        "--grpc-tls",
        action="store_true",
        help="gRPC between the processes over mutual TLS only, with certificates made in "
        "ECOMMERCE_DATA_DIR/grpc-tls (as the production overlay runs it)",
    )
    dev.set_defaults(func=cmd_dev)

    serve = _command(
        commands,
        "serve",
        "run one service (for Kubernetes)",
        "Run one service or the gateway in the foreground, configured by its environment variables.",
        ["ecommerce serve catalog", "GATEWAY_PORT=8080 ecommerce serve gateway"],
    )
    serve.add_argument("service", choices=[*ALL_SERVICES, "gateway"])
    serve.set_defaults(func=cmd_serve)

    migrate = _command(
        commands,
        "migrate",
        "create and migrate service databases",
        "Create each service's database if missing and apply its migrations "
        "(<SERVICE>_DATABASE_URL); all services unless one is named.",
        ["ecommerce migrate", "ecommerce migrate order"],
    )
    migrate.add_argument("service", nargs="?", choices=ALL_SERVICES)
    migrate.set_defaults(func=cmd_migrate)

    admin = _command(
        commands,
        "create-admin",
        "create or promote an administrator; the password is read from standard input",
        "Create an administrator account, or promote an existing account. The password is asked "
        "twice on a terminal, or read from the first line of standard input. Uses "
        "ACCOUNT_DATABASE_URL, or the running `ecommerce dev`.",
        [
            "ecommerce create-admin --email admin@example.com --name Admin",
            "printf '%s\\n' \"$ADMIN_PASSWORD\" | ecommerce create-admin --email admin@example.com --name Admin",
        ],
    )
    admin.add_argument("--email", required=True)
    admin.add_argument("--name", required=True)
    admin.set_defaults(func=cmd_create_admin)

    rotate = _command(
        commands,
        "rotate-keys",
        "add a new JWT signing key to a key file, keeping the previous one",
        "Add a fresh RS256 key to the PEM file given as ACCOUNT_JWT_PRIVATE_KEY_FILE (created when "
        "missing) and keep only the last --keep keys. The last key of the file signs, every key is "
        "published. With several account replicas, --stage the key first (published, not signing), "
        "roll out, then --promote it and roll out again. See docs/security.md.",
        [
            "ecommerce rotate-keys signing.pem",
            "ecommerce rotate-keys --stage signing.pem",
            "ecommerce rotate-keys --promote signing.pem",
        ],
    )
    rotate.add_argument("file", type=Path, help="the PEM key file, the signing key last")
    rotate.add_argument(
        "--keep", type=int, default=2, help="keys kept, the new one included (default 2, at least 2)"
    )
    step = rotate.add_mutually_exclusive_group()
    step.add_argument("--stage", action="store_true", help="add the key before the signing key")
    step.add_argument("--promote", action="store_true", help="make the staged key the signing key")
    rotate.set_defaults(func=cmd_rotate_keys)

    certs = _command(
        commands,
        "gen-certs",
        "make the CA and the certificates of mutual TLS between the processes",
        "Write a certificate authority (DIR/ca.crt, ca.key) and, for each service and the gateway, "
        "DIR/<name>/ca.crt, tls.crt and tls.key: the files of GRPC_TLS_CA_FILE, GRPC_TLS_CERT_FILE "
        "and GRPC_TLS_KEY_FILE, named for the Kubernetes Services of the namespace and for localhost. "
        "Run again on the same DIR, it keeps the CA and renews the certificates. See docs/security.md.",
        ["ecommerce gen-certs grpc-tls", "ecommerce gen-certs --namespace shop --days 90 grpc-tls"],
    )
    certs.add_argument("directory", type=Path, metavar="DIR", help="where the files go (created if missing)")
    certs.add_argument(
        "--namespace", default="ecommerce", help="the Kubernetes namespace (default ecommerce)"
    )
    certs.add_argument(
        "--cluster-domain", default="cluster.local", help="the cluster's DNS domain (default cluster.local)"
    )
    certs.add_argument(
        "--days", type=int, default=365, help="validity of the certificates, 1 to 3650 (default 365)"
    )
    certs.set_defaults(func=cmd_gen_certs)

    seed = _command(
        commands,
        "seed",
        "load the demo catalog and shop terms (idempotent: adds only what is missing)",
        "Add the demo categories and products to the catalog, and the demo shipping methods, tax "
        "rates and coupon to the order service; what is there already is kept. Uses "
        "CATALOG_DATABASE_URL, ORDER_DATABASE_URL and REDIS_URL, or the running `ecommerce dev`.",
        ["ecommerce seed"],
    )
    seed.set_defaults(func=cmd_seed)

    topics = _command(
        commands,
        "topics",
        "create the Kafka topics (KAFKA_TOPIC_PARTITIONS, KAFKA_TOPIC_REPLICATION_FACTOR)",
        "Create the platform's topics and their dead-letter topics on KAFKA_BOOTSTRAP_SERVERS; "
        "existing topics are left as they are.",
        ["KAFKA_BOOTSTRAP_SERVERS=kafka:9092 KAFKA_TOPIC_REPLICATION_FACTOR=3 ecommerce topics"],
    )
    topics.set_defaults(func=cmd_topics)

    acls = _command(
        commands,
        "kafka-acls",
        "print the broker's ACLs: what each service may read and write",
        "Print every principal's ACLs on a Kafka cluster (each service writes only the topics it "
        "publishes and reads only those it consumes, in its own consumer group), made from "
        "servicekit/topics.py: as a table, as JSON, or as the shell script that creates the SCRAM "
        "users and applies the ACLs with Kafka's own tools (k8s/overlays/prod runs it). See "
        "docs/security.md.",
        [
            "ecommerce kafka-acls",
            "ecommerce kafka-acls --format json",
            "ecommerce kafka-acls --format script > k8s/overlays/prod/kafka-access.sh",
        ],
    )
    acls.add_argument("--format", choices=("table", "json", "script"), default="table")
    acls.set_defaults(func=cmd_kafka_acls)

    queries = _command(
        commands,
        "register-queries",
        "add GraphQL documents to the gateway's persisted query allowlist",
        "Register GraphQL documents in the allowlist the gateway reads in allowlist mode "
        "(GATEWAY_PERSISTED_QUERIES_ONLY).",
        ["ecommerce register-queries storefront.graphql", "ecommerce register-queries queries.json"],
    )
    queries.add_argument("files", nargs="+", help=".graphql (one document) or .json (many)")
    queries.set_defaults(func=cmd_register_queries)

    status = _command(
        commands,
        "status",
        "show the platform's health: services, databases, Redis, broker",
        "Ask the gateway's /status for every part of the platform, checked by a round trip, and "
        "print a table. Exits with 1 when a part is failing.",
        ["ecommerce status", "ecommerce status --url https://api.example.com"],
    )
    status.add_argument(
        "--url", default=DEFAULT_GATEWAY_URL, help=f"the gateway (default {DEFAULT_GATEWAY_URL})"
    )
    status.set_defaults(func=cmd_status)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()
