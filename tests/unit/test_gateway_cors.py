"""GATEWAY_CORS_ORIGINS: preflights answered and headers set for the listed origins only."""

from __future__ import annotations

import httpx
import pytest
from pydantic import ValidationError

from gateway.app import create_app
from gateway.settings import GatewaySettings

SHOP = "https://shop.example.com"
ADMIN = "https://admin.example.com"


def client(origins: str | None) -> httpx.AsyncClient:
    settings = GatewaySettings() if origins is None else GatewaySettings(cors_origins=origins)
    transport = httpx.ASGITransport(app=create_app(settings))
    return httpx.AsyncClient(transport=transport, base_url="http://gateway")


async def preflight(origins: str | None, origin: str) -> httpx.Response:
    async with client(origins) as http:
        return await http.options(
            "/graphql",
            headers={
                "Origin": origin,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization, content-type, apollo-require-preflight",
            },
        )


async def test_a_preflight_from_a_listed_origin_is_answered_with_credentials_allowed():
    response = await preflight(f"{SHOP},{ADMIN}", ADMIN)

    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == ADMIN
    assert response.headers["access-control-allow-credentials"] == "true"
    assert "POST" in response.headers["access-control-allow-methods"]
    assert "authorization" in response.headers["access-control-allow-headers"].lower()


@pytest.mark.parametrize("origin", ["https://evil.example.com", "https://shop.example.com.evil.com", "null"])
async def test_a_preflight_from_an_origin_not_listed_is_refused_without_cors_headers(origin: str):
    response = await preflight(f"{SHOP},{ADMIN}", origin)

    assert response.status_code == 400
    assert "access-control-allow-origin" not in response.headers  # so the browser refuses


async def test_a_request_from_a_listed_origin_gets_the_headers_and_one_from_elsewhere_does_not():
    async with client(SHOP) as http:
        allowed = await http.get("/healthz", headers={"Origin": SHOP})
        refused = await http.get("/healthz", headers={"Origin": ADMIN})

    assert allowed.headers["access-control-allow-origin"] == SHOP
    assert allowed.headers["access-control-allow-credentials"] == "true"
    assert "access-control-allow-origin" not in refused.headers


async def test_no_origin_is_allowed_by_default():
    response = await preflight(None, SHOP)

    assert response.status_code != 200
    assert "access-control-allow-origin" not in response.headers


async def test_any_origin_with_a_star_but_never_with_credentials():
    response = await preflight("*", "https://anyone.example.org")

    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "*"
    assert "access-control-allow-credentials" not in response.headers


def test_origins_are_read_comma_separated_from_the_environment(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("GATEWAY_CORS_ORIGINS", f" {SHOP} ,{ADMIN},")
    assert GatewaySettings().cors_origins == (SHOP, ADMIN)


@pytest.mark.parametrize(
    "value",
    [
        f"*,{SHOP}",
        "https://shop.example.com/",
        "https://shop.example.com/graphql",
        "https://user:secret@shop.example.com",
        "https://shop.example.com?x=1",
        "https://shop.example.com:99999",
        "javascript:alert(1)",
        "ftp://shop.example.com",
        "shop.example.com",
        "null",
        "https://sh op.example.com",
        "https://shöp.example.com",
        "https://" + "a" * 400 + ".com",
    ],
)
def test_a_value_that_is_not_an_origin_is_refused_at_start(value: str):
    with pytest.raises(ValidationError, match="cors_origins"):
        GatewaySettings(cors_origins=value)
