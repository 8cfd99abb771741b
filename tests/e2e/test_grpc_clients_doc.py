"""docs/grpc-clients.md's Python examples, run as written against the running platform."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from ecommerce_cli.stack import Platform

DOC = Path(__file__).resolve().parents[2] / "docs" / "grpc-clients.md"
CLIENT, ERROR_HANDLING = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)


def run_python(source: str, platform: Platform) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", source],
        env=platform.environment(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_documented_client_registers_then_calls_two_services_with_its_token(platform: Platform):
    result = run_python(CLIENT, platform)

    assert result.returncode == 0, result.stderr
    assert re.fullmatch(
        r"signed in as shopper-[0-9a-f]{8}@example\.com ROLE_CUSTOMER\n0 orders\n", result.stdout
    )


def test_the_documented_error_handling_prints_each_field_violation(platform: Platform):
    prelude = (
        "import os, grpc\n"
        "from ecommerce.account.v1 import account_pb2, account_pb2_grpc\n"
        "accounts = account_pb2_grpc.AccountServiceStub(grpc.insecure_channel(os.environ['ACCOUNT_ADDR']))\n"
    )

    result = run_python(prelude + ERROR_HANDLING, platform)

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("StatusCode.INVALID_ARGUMENT ")
    assert [line.split(" ", 1)[0] for line in lines[1:]] == ["email", "name", "password"]
