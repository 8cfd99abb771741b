"""The client address through trusted proxies: X-Forwarded-For counts only from them."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from gateway.forwarded import client_address, parse_networks
from gateway.settings import GatewaySettings

PROXIES = parse_networks("10.0.0.0/8, fd00::/8")


@pytest.mark.parametrize(
    ("peer", "headers", "client"),
    [
        ("203.0.113.9", ["198.51.100.1"], "203.0.113.9"),  # not a proxy: the header is ignored
        ("10.1.2.3", ["198.51.100.1"], "198.51.100.1"),
        ("10.1.2.3", ["6.6.6.6, 198.51.100.1"], "198.51.100.1"),  # the client forged the left part
        ("10.1.2.3", ["6.6.6.6, 198.51.100.1, 10.9.9.9"], "198.51.100.1"),  # through two proxies
        ("10.1.2.3", ["6.6.6.6", "198.51.100.1"], "198.51.100.1"),  # several headers, in order
        ("10.1.2.3", ["10.4.4.4, 10.5.5.5"], "10.4.4.4"),  # only proxies: the left-most
        ("10.1.2.3", ["nonsense, 198.51.100.1"], "198.51.100.1"),
        ("10.1.2.3", ["198.51.100.1, nonsense"], "10.1.2.3"),  # garbage from a proxy ends the walk
        ("10.1.2.3", [], "10.1.2.3"),
        ("fd00::5", ["2001:db8::7"], "2001:db8::7"),
        ("::ffff:10.1.2.3", ["198.51.100.1"], "198.51.100.1"),  # IPv4 seen through an IPv6 socket
        (None, ["198.51.100.1"], "unknown"),
    ],
)
def test_forwarded_for_names_the_client_only_through_trusted_proxies(peer, headers, client):
    assert client_address(peer, headers, PROXIES) == client


def test_no_trusted_proxy_by_default_so_the_header_is_ignored():
    assert client_address(
        "10.1.2.3", ["198.51.100.1"], parse_networks(GatewaySettings().trusted_proxies)
    ) == ("10.1.2.3")


def test_trusted_proxies_are_read_as_networks_and_garbage_stops_the_gateway():
    settings = GatewaySettings(trusted_proxies="10.0.0.0/8, 192.168.1.7")

    assert settings.trusted_proxies == ("10.0.0.0/8", "192.168.1.7/32")
    with pytest.raises(ValidationError):
        GatewaySettings(trusted_proxies="10.0.0.0/8, not-a-network")
