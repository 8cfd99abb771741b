"""GraphiQL, served whole by the gateway: the page at /graphql and its files under /graphiql/.

Only where GraphiQL is enabled (outside production). The files are pinned copies from npm
(gateway/static/graphiql/README.md, `make graphiql-assets`), so the playground needs no internet.
"""

from __future__ import annotations

import functools
from pathlib import Path

from starlette.responses import HTMLResponse
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

ASSETS = Path(__file__).resolve().parent / "static" / "graphiql"
# Relative to the page at .../graphql, as index.html names them.
ASSETS_PATH = "/graphiql"


@functools.cache
def _page() -> str:
    return (ASSETS / "index.html").read_text(encoding="utf-8")


def page() -> HTMLResponse:
    """The GraphiQL page; it loads nothing from another host."""
    return HTMLResponse(_page(), headers={"Cache-Control": "no-cache"})


def routes(*, enabled: bool) -> list[Mount]:
    """The route serving the page's scripts, stylesheets and their licences; none when disabled."""
    if not enabled:
        return []
    return [Mount(ASSETS_PATH, StaticFiles(directory=ASSETS), name="graphiql")]
