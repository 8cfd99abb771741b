"""The local mail server of the embedded default: a real SMTP server that keeps every message as
an .eml file under the data directory, started by `ecommerce dev` unless another one is configured."""

from __future__ import annotations

from email.message import EmailMessage
from pathlib import Path

import aiosmtplib
import pytest

from ecommerce_cli.stack import Infrastructure, Platform
from servicekit.mailbox import Mailbox, read_message


def message(to: str, subject: str) -> EmailMessage:
    mail = EmailMessage()
    mail["From"] = "Shop <shop@example.com>"
    mail["To"] = to
    mail["Subject"] = subject
    mail.set_content("plain")
    mail.add_alternative("<p>html</p>", subtype="html")
    return mail


async def test_every_message_becomes_one_eml_file_a_mail_client_can_read(tmp_path: Path):
    with Mailbox(tmp_path / "mail") as mailbox:
        await aiosmtplib.send(message("zoë@example.com", "Grüße ✓"), hostname=mailbox.host, port=mailbox.port)
        await aiosmtplib.send(message("bob@example.com", "Second"), hostname=mailbox.host, port=mailbox.port)

        first, second = mailbox.files()

    assert first.suffix == ".eml"
    assert not list((tmp_path / "mail").glob(".*"))  # no partial files left behind
    parsed = read_message(first)
    assert (parsed["To"], parsed["Subject"], parsed["Delivered-To"]) == (
        "zoë@example.com",
        "Grüße ✓",
        "zoë@example.com",
    )
    assert parsed.get_body(preferencelist=("html",)).get_content().strip() == "<p>html</p>"
    assert read_message(second)["Subject"] == "Second"


async def test_a_restarted_mailbox_listens_where_it_did(tmp_path: Path):
    mailbox = Mailbox(tmp_path / "mail").start()
    port = mailbox.port
    mailbox.stop()

    with pytest.raises(aiosmtplib.SMTPConnectError):
        await aiosmtplib.send(message("a@example.com", "lost"), hostname=mailbox.host, port=port, timeout=5)

    with mailbox.start():
        await aiosmtplib.send(message("a@example.com", "kept"), hostname=mailbox.host, port=port)
        assert mailbox.port == port
        assert [m["Subject"] for m in mailbox.messages()] == ["kept"]


def test_the_embedded_default_starts_a_mailbox_and_tells_the_services_where(
    infra, tmp_path: Path, monkeypatch
):
    monkeypatch.delenv("INTERNAL_SERVICE_TOKEN")
    reuse = {
        "DATABASE_URL": infra.postgres_url,
        "REDIS_URL": infra.redis_url,
        "KAFKA_BOOTSTRAP_SERVERS": infra.kafka_bootstrap_servers,
    }
    local = Infrastructure(tmp_path, environ=reuse).start()
    try:
        assert local.mailbox is not None
        assert local.mailbox.directory == tmp_path / "mail"
        platform = Platform(local, ["notification"])
        env = platform.environment()
        assert (env["NOTIFICATION_SMTP_HOST"], env["NOTIFICATION_SMTP_PORT"]) == (
            local.mailbox.host,
            str(local.mailbox.port),
        )
        # One service credential per run, the same for every process it starts.
        assert (
            env["INTERNAL_SERVICE_TOKEN"]
            == platform.service_token
            == platform.environment()["INTERNAL_SERVICE_TOKEN"]
        )
        assert len(platform.service_token) >= 32
        assert Platform(local, ["notification"]).service_token != platform.service_token
    finally:
        local.stop()

    external = Infrastructure(
        tmp_path, environ={**reuse, "NOTIFICATION_SMTP_HOST": "smtp.example.com"}
    ).start()
    try:
        assert external.mailbox is None
    finally:
        external.stop()
