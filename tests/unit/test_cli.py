"""The `ecommerce` command explains itself, answers --help at once, and `make help` lists targets."""

from __future__ import annotations

import argparse
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from ecommerce_cli.main import build_parser, main, status_table
from ecommerce_cli.stack import _ephemeral_start, free_port

ROOT = Path(__file__).resolve().parents[2]


def subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


@pytest.mark.parametrize("name", sorted(subcommands()))
def test_every_command_has_a_description_and_an_example(name: str, capsys: pytest.CaptureFixture[str]):
    with pytest.raises(SystemExit) as exited:
        main([name, "--help"])
    out = capsys.readouterr().out

    assert exited.value.code == 0
    description = out.split("\n\n")[1]
    assert len(description.split()) >= 8, out
    examples = out.split("Examples:\n", 1)[1].splitlines()
    assert examples
    assert all(line.startswith("  ") and f"ecommerce {name}" in line for line in examples if line), out


def test_help_imports_none_of_the_platforms_heavy_libraries():
    code = (
        "import sys\n"
        "from ecommerce_cli.main import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = ('grpc', 'sqlalchemy', 'aiokafka', 'strawberry', 'httpx', 'pydantic', 'redis', 'alembic')\n"
        "print('loaded:', sorted(m for m in heavy if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True, cwd=ROOT
    )
    assert done.stdout.splitlines()[-1] == "loaded: []"


def test_status_is_a_table_with_each_part_its_state_latency_and_reason():
    table = status_table(
        [
            {"name": "account", "ok": True, "latency_ms": 1.234, "error": None},
            {"name": "notification.database", "ok": False, "latency_ms": 2000.0, "error": "UNAVAILABLE"},
        ]
    )
    assert table.splitlines() == [
        "CHECK                  STATUS     LATENCY  ERROR",
        "account                up          1.2 ms",
        "notification.database  DOWN     2000.0 ms  UNAVAILABLE",
    ]


@pytest.mark.parametrize(
    "url", [lambda: f"http://127.0.0.1:{free_port()}", lambda: "not a url", lambda: "http://[::1"]
)
def test_status_says_so_when_no_gateway_answers(url, capsys: pytest.CaptureFixture[str]):
    address = url()
    with pytest.raises(SystemExit) as exited:
        main(["status", "--url", address])
    assert str(exited.value.code).startswith(f"No status from {address}/status")


def test_make_help_lists_every_target_with_what_it_does():
    done = subprocess.run(
        ["make", "--no-print-directory", "help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        cwd=ROOT,
    )
    makefile = (ROOT / "Makefile").read_text()
    phony = re.search(r"^\.PHONY: (.+)$", makefile, re.MULTILINE)
    assert phony is not None
    listed = {line.split()[0]: line for line in done.stdout.splitlines() if line.strip()}

    assert set(listed) == set(phony.group(1).split())
    assert all(len(line.split()) >= 2 for line in listed.values())


def test_rotate_keys_adds_a_signing_key_and_keeps_the_previous_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    from servicekit.security import load_signing_keys

    path = tmp_path / "signing.pem"
    main(["rotate-keys", str(path)])
    [first] = load_signing_keys(path.read_bytes())
    main(["rotate-keys", str(path)])
    previous, newest = load_signing_keys(path.read_bytes())

    assert previous.kid == first.kid
    assert capsys.readouterr().out.splitlines()[-2:] == [f"verifies  {first.kid}", f"signs     {newest.kid}"]


@pytest.mark.parametrize(
    ("content", "argv", "message"),
    [
        (b"not a key", [], "no PEM"),
        (None, ["--keep", "1"], "at least 2"),
        (None, ["--keep", "-3"], "at least 2"),
        (None, ["--promote"], "no PEM|single key"),
    ],
)
def test_rotate_keys_refuses_a_bad_file_or_count_and_leaves_the_file_alone(
    tmp_path: Path, content: bytes | None, argv: list[str], message: str
):
    path = tmp_path / "signing.pem"
    if content is not None:
        path.write_bytes(content)

    with pytest.raises(SystemExit, match=message):
        main(["rotate-keys", *argv, str(path)])

    assert (path.read_bytes() if path.exists() else None) == content


def test_free_ports_lie_below_the_ephemeral_range_and_are_never_handed_out_twice():
    """Outgoing connections take their local ports from the ephemeral range: a port picked there
    could be taken by one before the service binds it."""
    ports = [free_port() for _ in range(50)]

    assert len(set(ports)) == 50
    assert all(20_000 <= port < _ephemeral_start() for port in ports)
    for port in ports[:5]:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))  # nothing listens there
