"""Signed webhooks: which URLs may receive them, how a body is signed, and one delivery attempt.

A receiver verifies `X-Ecommerce-Signature: t=<unix seconds>,v1=<hex>` by computing
HMAC-SHA256 over `"<t>.<raw body>"` with the webhook's secret, comparing in constant time, and
refusing stale timestamps (`verify_signature` is that check).

Server-side request forgery is refused twice: when the webhook is created, and again at every
delivery, because a name that resolved to a public address yesterday may resolve to 10.0.0.1
today (DNS rebinding). At delivery the name is resolved once, every address is checked, and the
connection goes to the checked address (with the original Host header and TLS server name), so
no second lookup can swap it.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import socket
import time
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit, urlunsplit

import httpx
from cryptography.fernet import Fernet, InvalidToken

MAX_URL_LENGTH = 2048
SIGNATURE_HEADER = "X-Ecommerce-Signature"
DEFAULT_TOLERANCE = 300
USER_AGENT = "ecommerce-webhooks/1"

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class UrlRefused(ValueError):
    """Why a URL may not receive webhooks, in words for the caller."""


# -- signing --------------------------------------------------------------------------------


def sign(secret: str, body: bytes, timestamp: int) -> str:
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def verify_signature(
    secret: str, header: str, body: bytes, *, tolerance: int = DEFAULT_TOLERANCE, now: float | None = None
) -> bool:
    """What a receiver does: the signature matches the body and the timestamp is recent."""
    parts: dict[str, list[str]] = {}
    for item in header.split(","):
        key, _, value = item.strip().partition("=")
        parts.setdefault(key, []).append(value)
    try:
        timestamp = int(parts["t"][0])
    except (KeyError, ValueError):
        return False
    if abs((time.time() if now is None else now) - timestamp) > tolerance:
        return False
    expected = sign(secret, body, timestamp).partition(",v1=")[2]
    return any(hmac.compare_digest(expected, candidate) for candidate in parts.get("v1", []))


class SecretBox:
    """Webhook secrets at rest: encrypted with a key the database never sees."""

    def __init__(self, key: bytes) -> None:
        self._fernet = Fernet(key)

    @staticmethod
    def new_key() -> bytes:
        return Fernet.generate_key()

    def seal(self, secret: str) -> str:
        return self._fernet.encrypt(secret.encode()).decode()

    def open(self, sealed: str) -> str:
        try:
            return self._fernet.decrypt(sealed.encode()).decode()
        except InvalidToken:
            raise ValueError("the webhook secret cannot be decrypted with the configured key") from None


# -- which URLs ------------------------------------------------------------------------------


_SIX_TO_FOUR = ipaddress.IPv6Network("2002::/16")
_NAT64 = (ipaddress.IPv6Network("64:ff9b::/96"), ipaddress.IPv6Network("64:ff9b:1::/48"))
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")


def _embedded_ipv4(address: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 transition address reaches: IPv4-mapped and -compatible, 6to4
    (2002::/16), Teredo (2001::/32: its server and client) and NAT64 (64:ff9b::/96, 64:ff9b:1::/48)."""
    value = int(address)
    found: list[ipaddress.IPv4Address] = []
    if address.ipv4_mapped is not None:
        found.append(address.ipv4_mapped)
    if address in _IPV4_COMPATIBLE or any(address in network for network in _NAT64):
        found.append(ipaddress.IPv4Address(value & 0xFFFFFFFF))
    if address.sixtofour is not None:
        found.append(address.sixtofour)
    if address.teredo is not None:
        found.extend(address.teredo)
    return found


def _internal(address: IPAddress) -> bool:
    """Whether the address, or an IPv4 address it embeds, is not on the public Internet."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if any(_not_global(v4) for v4 in embedded):
            return True
        if address.ipv4_mapped is not None:
            return False  # the IPv4 address it names is public
    return _not_global(address)


def _not_global(address: IPAddress) -> bool:
    return (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
        or not address.is_global
    )


@dataclass(frozen=True)
class Target:
    """Where one delivery connects: the checked address, and the names the endpoint expects."""

    url: str
    host_header: str
    server_name: str | None


class UrlPolicy:
    def __init__(self, *, allow_private: bool, resolve_timeout: float = 3.0) -> None:
        self.allow_private = allow_private
        self.resolve_timeout = resolve_timeout

    def parse(self, url: str) -> SplitResult:
        """The URL's parts if its shape is acceptable; UrlRefused otherwise (no network)."""
        if len(url) > MAX_URL_LENGTH:
            raise UrlRefused(f"must be at most {MAX_URL_LENGTH} characters")
        if not url.isprintable() or any(ch.isspace() for ch in url):
            raise UrlRefused("must not contain spaces or control characters")
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError:
            raise UrlRefused("is not a valid URL") from None
        if parts.scheme.lower() not in ("http", "https"):
            raise UrlRefused("must be an http or https URL")
        if not parts.hostname:
            raise UrlRefused("must name a host")
        if parts.username is not None or parts.password is not None:
            raise UrlRefused("must not carry credentials")
        if port == 0:
            raise UrlRefused("must not use port 0")
        return parts

    async def resolve(self, parts: SplitResult) -> list[IPAddress]:
        """Every address the host resolves to, each checked; UrlRefused if any is internal."""
        host = parts.hostname or ""
        try:
            addresses: list[IPAddress] = [ipaddress.ip_address(host)]
        except ValueError:
            addresses = await self._lookup(host, parts.port or (443 if parts.scheme == "https" else 80))
        if not self.allow_private:
            for address in addresses:
                if _internal(address):
                    raise UrlRefused("points to a private, loopback or link-local address")
        return addresses

    async def check(self, url: str) -> str:
        """The URL, normalised, when it may receive webhooks; UrlRefused otherwise."""
        parts = self.parse(url)
        await self.resolve(parts)
        return urlunsplit(parts._replace(scheme=parts.scheme.lower()))

    async def target(self, url: str) -> Target:
        """Resolve and check again for one delivery, and pin the connection to the address."""
        parts = self.parse(url)
        address = (await self.resolve(parts))[0]
        host = parts.hostname or ""
        literal = f"[{address}]" if address.version == 6 else str(address)
        netloc = literal if parts.port is None else f"{literal}:{parts.port}"
        host_header = parts.netloc.rpartition("@")[2]
        pinned = urlunsplit(parts._replace(scheme=parts.scheme.lower(), netloc=netloc))
        server_name = host if parts.scheme.lower() == "https" and host != str(address) else None
        return Target(pinned, host_header, server_name)

    async def _lookup(self, host: str, port: int) -> list[IPAddress]:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.resolve_timeout):
                infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (OSError, TimeoutError, UnicodeError):
            raise UrlRefused("names a host that does not resolve") from None
        addresses: list[IPAddress] = []
        for info in infos:
            address = ipaddress.ip_address(str(info[4][0]).partition("%")[0])
            if address not in addresses:
                addresses.append(address)
        if not addresses:
            raise UrlRefused("names a host that does not resolve")
        return addresses


# -- one attempt -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Attempt:
    delivered: bool
    retryable: bool
    response_status: int
    error: str


class WebhookSender:
    def __init__(self, policy: UrlPolicy, *, timeout: float) -> None:
        self.policy = policy
        self.client = httpx.AsyncClient(
            timeout=timeout, follow_redirects=False, trust_env=False, headers={"User-Agent": USER_AGENT}
        )

    async def close(self) -> None:
        await self.client.aclose()

    async def deliver(
        self, *, url: str, secret: str, body: bytes, event_id: str, event_type: str, delivery_id: str
    ) -> Attempt:
        try:
            target = await self.policy.target(url)
        except UrlRefused as refused:
            return Attempt(False, False, 0, f"url refused: {refused}")
        headers = {
            "Host": target.host_header,
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(secret, body, int(time.time())),
            "X-Ecommerce-Event": event_type,
            "X-Ecommerce-Event-Id": event_id,
            "X-Ecommerce-Delivery": delivery_id,
        }
        extensions = {"sni_hostname": target.server_name} if target.server_name else {}
        try:
            # Streamed and never read: the answer's status is all we keep, whatever its size.
            async with self.client.stream(
                "POST", target.url, content=body, headers=headers, extensions=extensions
            ) as response:
                status = response.status_code
        except httpx.TimeoutException:
            return Attempt(False, True, 0, "timeout")
        except httpx.HTTPError as exc:
            return Attempt(False, True, 0, f"connection failed: {type(exc).__name__}")
        if 200 <= status < 300:
            return Attempt(True, False, status, "")
        # 5xx may pass; a 4xx (or a redirect, which we never follow) will answer the same again.
        return Attempt(False, status >= 500, status, f"HTTP {status}")
