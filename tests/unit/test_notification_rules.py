"""Rules of the notification service and the live status that need nothing running: signatures,
URL shapes, template gaps, backoff, and the order snapshots a subscription replays."""

from __future__ import annotations

import pytest
from google.protobuf import timestamp_pb2

from ecommerce.order.v1 import order_pb2
from gateway.schema.subscription import as_of
from notification.delivery import Backoff
from notification.settings import NotificationSettings
from notification.templates import TemplateRenderer
from notification.webhooks import SecretBox, UrlPolicy, UrlRefused, sign, verify_signature

OPENSSL_DIGEST = "38877139021993b830af32feea6e18a8da83eb2f6e49ee50bd9e4cf4ca4d3789"


def test_a_signature_is_the_hmac_of_timestamp_and_body():
    # printf '1700000000.{"a":1}' | openssl dgst -sha256 -hmac whsec_test
    assert sign("whsec_test", b'{"a":1}', 1_700_000_000) == f"t=1700000000,v1={OPENSSL_DIGEST}"


@pytest.mark.parametrize(
    "header",
    ["", "t=abc,v1=00", "v1=00", "t=1700000000", "t=1700000000,v1=" + "0" * 64, "garbage"],
)
def test_malformed_or_wrong_signatures_do_not_verify(header):
    assert not verify_signature("whsec_test", header, b"{}", now=1_700_000_000)


def test_a_fresh_signature_verifies_and_a_stale_one_does_not():
    header = sign("whsec_test", b"{}", 1_700_000_000)
    assert verify_signature("whsec_test", header, b"{}", now=1_700_000_100)
    assert not verify_signature("whsec_test", header, b"{}", now=1_700_000_301)


def test_secrets_are_sealed_and_opened_only_with_their_key():
    box = SecretBox(SecretBox.new_key())
    sealed = box.seal("whsec_abc")
    assert "whsec_abc" not in sealed
    assert box.open(sealed) == "whsec_abc"
    with pytest.raises(ValueError, match="cannot be decrypted"):
        SecretBox(SecretBox.new_key()).open(sealed)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ftp://example.com/x", "http or https"),
        ("//example.com/x", "http or https"),
        ("https://", "must name a host"),
        ("https://a:b@example.com/", "credentials"),
        ("https://example.com:0/", "port 0"),
        ("https://example.com:70000/", "not a valid URL"),
        ("https://exa\nmple.com/", "spaces or control characters"),
        ("https://example.com/" + "x" * 2029, "at most 2048"),
    ],
)
def test_url_shapes_that_are_refused(url, reason):
    with pytest.raises(UrlRefused, match=reason):
        UrlPolicy(allow_private=True).parse(url)


def test_a_url_of_exactly_the_limit_is_accepted():
    url = "https://example.com/" + "x" * (2048 - len("https://example.com/"))
    assert UrlPolicy(allow_private=True).parse(url).hostname == "example.com"


async def test_delivery_targets_are_pinned_to_the_checked_address():
    target = await UrlPolicy(allow_private=True).target("https://[::1]:8443/hooks?x=1")
    assert (target.url, target.host_header, target.server_name) == (
        "https://[::1]:8443/hooks?x=1",
        "[::1]:8443",
        None,
    )
    named = await UrlPolicy(allow_private=True).target("http://localhost:9000/h")
    assert named.host_header == "localhost:9000"
    assert named.url in ("http://127.0.0.1:9000/h", "http://[::1]:9000/h")


# IPv6 forms that reach an internal IPv4 address: 6to4, Teredo, IPv4-compatible and -mapped, NAT64.
INTERNAL_THROUGH_IPV6 = [
    "2002:7f00:1::1",  # 6to4 of 127.0.0.1
    "2002:a9fe:a9fe::1",  # 6to4 of 169.254.169.254
    "2002:0a01:0203::",  # 6to4 of 10.1.2.3
    "2001:0:4136:e378:8000:63bf:80ff:fffe",  # Teredo, client 127.0.0.1
    "::127.0.0.1",
    "::ffff:10.0.0.1",
    "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1
    "64:ff9b::a9fe:a9fe",
    "64:ff9b:1::a00:1",
]


@pytest.mark.parametrize("address", INTERNAL_THROUGH_IPV6)
async def test_ipv6_transition_addresses_of_internal_hosts_are_refused_at_creation_and_delivery(address):
    policy = UrlPolicy(allow_private=False)

    with pytest.raises(UrlRefused):
        await policy.check(f"http://[{address}]/hook")
    with pytest.raises(UrlRefused):
        await policy.target(f"http://[{address}]:8080/hook")


@pytest.mark.parametrize("address", ["2002:5db8:d70e::1", "::ffff:93.184.215.14", "2606:4700::1111"])
async def test_ipv6_addresses_of_public_hosts_are_accepted(address):
    assert (
        await UrlPolicy(allow_private=False).check(f"https://[{address}]/hook") == f"https://[{address}]/hook"
    )


def test_private_webhook_urls_are_allowed_by_default_except_in_production():
    assert NotificationSettings(env="development").private_webhook_urls_allowed
    assert NotificationSettings(env="test").private_webhook_urls_allowed
    assert not NotificationSettings(env="production").private_webhook_urls_allowed
    assert NotificationSettings(
        env="production", allow_private_webhook_urls=True
    ).private_webhook_urls_allowed


def test_backoff_doubles_up_to_its_maximum_and_counts_the_budget():
    backoff = Backoff(initial=1.0, maximum=5.0, max_attempts=3)
    assert [round(backoff.delay(n)) for n in (1, 2, 3, 10)] == [1, 2, 4, 5]
    assert [backoff.exhausted(n) for n in (1, 2, 3)] == [False, False, True]


def test_every_template_renders_with_no_variables_and_reports_its_gaps():
    renderer = TemplateRenderer()
    for template in ("welcome", "order_confirmed", "order_cancelled", "order_shipped", "order_delivered"):
        message = renderer.render(template, {})
        assert message.text, template
        assert message.html, template
        assert message.subject, template
        assert "name" in message.gaps, template


def test_an_unknown_template_is_refused():
    with pytest.raises(LookupError):
        TemplateRenderer().render("../../etc/passwd", {})


def _stamp(seconds: int) -> timestamp_pb2.Timestamp:
    return timestamp_pb2.Timestamp(seconds=seconds)


def test_a_subscription_replays_each_transition_as_the_order_was_then():
    statuses = [
        order_pb2.ORDER_STATUS_PENDING,
        order_pb2.ORDER_STATUS_AWAITING_PAYMENT,
        order_pb2.ORDER_STATUS_CANCELLED,
    ]
    order = order_pb2.Order(
        id="o",
        status=order_pb2.ORDER_STATUS_CANCELLED,
        cancellation_reason=order_pb2.CANCELLATION_REASON_PAYMENT_DECLINED,
        history=[order_pb2.StatusChange(status=s, at=_stamp(i)) for i, s in enumerate(statuses)],
        updated_at=_stamp(2),
    )

    snapshots = [as_of(order, i) for i in range(3)]

    assert [s.status for s in snapshots] == statuses
    assert [len(s.history) for s in snapshots] == [1, 2, 3]
    assert [s.updated_at.seconds for s in snapshots] == [0, 1, 2]
    assert [s.cancellation_reason for s in snapshots] == [
        order_pb2.CANCELLATION_REASON_UNSPECIFIED,
        order_pb2.CANCELLATION_REASON_UNSPECIFIED,
        order_pb2.CANCELLATION_REASON_PAYMENT_DECLINED,
    ]
    assert snapshots[-1] is order
