"""The GraphiQL playground's files: the pinned copies, and served only where GraphiQL is."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from gateway.app import create_app
from gateway.playground import ASSETS
from gateway.settings import GatewaySettings
from tools import graphiql_assets

PAGE = (ASSETS / "index.html").read_text()


def referenced() -> dict[str, str]:
    """Each file index.html loads, with its `integrity` digest."""
    tags = re.findall(r'(?:src|href)="([^"]+)"\s+integrity="sha384-([^"]+)"', PAGE)
    return dict(tags)


def test_every_committed_file_is_the_pinned_one_with_its_licence():
    assert graphiql_assets.check() == 0


def test_the_page_loads_exactly_the_pinned_files_from_its_own_origin():
    pins = {f"graphiql/{asset.name}": asset.sha384 for asset in graphiql_assets.ASSETS}

    assert referenced() == pins
    assert not re.search(r"(?:src|href)=\"(?:https?:)?//", PAGE)
    assert "unpkg" not in PAGE
    assert "cdn" not in PAGE.lower()


@contextlib.contextmanager
def client(env: str) -> Iterator[TestClient]:
    """The app without its lifespan: the files need no service (the page itself is driven in a
    browser against the whole platform, tests/e2e/test_graphiql_browser.py)."""
    yield TestClient(create_app(GatewaySettings(env=env)))


def test_development_serves_the_scripts_and_their_licences():
    with client("development") as http:
        script = http.get("/graphiql/graphiql.min.js")
        licence = http.get("/graphiql/LICENSE.react")

    assert licence.status_code == 200
    assert "MIT License" in licence.text
    assert script.status_code == 200
    assert script.headers["content-type"].startswith(("text/javascript", "application/javascript"))
    assert script.content == (ASSETS / "graphiql.min.js").read_bytes()


@pytest.mark.parametrize("path", ["/graphiql/../app.py", "/graphiql/%2e%2e/app.py", "/graphiql/nothing.js"])
def test_nothing_outside_the_assets_is_served(path):
    with client("development") as http:
        assert http.get(path).status_code == 404


@pytest.mark.parametrize("path", ["/graphiql/graphiql.min.js", "/graphiql/index.html", "/graphiql/"])
def test_production_serves_none_of_the_files(path):
    with client("production") as http:
        assert http.get(path).status_code == 404
