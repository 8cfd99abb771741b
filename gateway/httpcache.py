"""HTTP caching of GraphQL answers: what a browser or a CDN in front of the gateway may keep.

- A public catalog read sent as GET without credentials (a persisted query:
  `?extensions={"persistedQuery":...}&variables=...`, or `?query=...`) is answered with
  `Cache-Control: public, max-age=<GATEWAY_HTTP_MAX_AGE>, stale-while-revalidate=<...>` and a weak
  `ETag` over its `data`; a request whose `If-None-Match` names it gets `304 Not Modified`.
  The tag leaves out `extensions` (the caller's remaining budget differs from answer to answer).
- Any answer to a request that carries `Authorization` is `private, no-store`.
- Everything else (POST, mutations, errors, reads of one's own data) is `no-store`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

from starlette.responses import Response

from gateway.settings import GatewaySettings

NO_STORE = "no-store"
PRIVATE = "private, no-store"


def etag_of(data: bytes) -> str:
    """A weak validator of an answer's serialized `data`: equal data, equal tag."""
    return f'W/"{hashlib.blake2b(data, digest_size=16).hexdigest()}"'


def public(settings: GatewaySettings) -> str:
    return f"public, max-age={settings.http_max_age}, stale-while-revalidate={settings.http_stale_while_revalidate}"


def cache_control(settings: GatewaySettings, *, method: str, authorized: bool, etag: str | None) -> str:
    """The `Cache-Control` of an answer; `etag` is set only for an answer of public catalog data."""
    if authorized:
        return PRIVATE
    if method == "GET" and etag is not None:
        return public(settings)
    return NO_STORE


def matches(if_none_match: str | None, etag: str) -> bool:
    """Whether `If-None-Match` names `etag` (weak comparison, as RFC 9110 asks for it)."""
    if not if_none_match:
        return False
    wanted = etag.removeprefix("W/")
    for candidate in if_none_match.split(","):
        candidate = candidate.strip()
        if candidate == "*" or candidate.removeprefix("W/") == wanted:
            return True
    return False


def not_modified(headers: Mapping[str, str]) -> Response:
    """304 with the validators and caching headers of the answer it stands for."""
    kept = {
        name: value for name, value in headers.items() if name.lower() in ("etag", "cache-control", "vary")
    }
    return Response(status_code=304, headers=kept)


def finish(
    response: Response, settings: GatewaySettings, *, method: str, authorized: bool, if_none_match: str | None
) -> Response:
    """Give an answer its `Cache-Control` (and `ETag` only when it may be cached publicly); a
    `304` when the client already holds it."""
    if not isinstance(response, Response) or response.status_code != 200:
        if isinstance(response, Response) and "cache-control" not in response.headers:
            response.headers["Cache-Control"] = PRIVATE if authorized else NO_STORE
        return response
    etag = response.headers.get("etag")
    control = cache_control(settings, method=method, authorized=authorized, etag=etag)
    response.headers["Cache-Control"] = control
    if etag is None:
        return response
    if control != public(settings):
        del response.headers["etag"]
        return response
    if matches(if_none_match, etag):
        return not_modified(response.headers)
    return response
