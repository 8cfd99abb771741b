"""Session fixtures: real PostgreSQL, Redis and broker, started once.

The embedded servers are used unless `DATABASE_URL`, `REDIS_URL` or `KAFKA_BOOTSTRAP_SERVERS`
name external ones. Nothing here depends on the machine's own PostgreSQL or Redis.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

# Tests run with the lowest bcrypt cost, set through its setting.
os.environ.setdefault("ACCOUNT_BCRYPT_ROUNDS", "4")
os.environ.setdefault("ECOMMERCE_ENV", "test")
os.environ.setdefault("LOG_FORMAT", "json")
# Services call each other as themselves with this shared credential (the notification service
# looking up recipients); `ecommerce dev` makes one per run, the tests one per session.
os.environ.setdefault("INTERNAL_SERVICE_TOKEN", secrets.token_urlsafe(32))
# The embedded broker holds a new group member's join for half its session timeout: 5 s at the
# default 10 s, paid by every consumer a test starts. Kafka itself refuses less than 6 s.
if not os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
    os.environ.setdefault("KAFKA_SESSION_TIMEOUT_MS", "3000")


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("ecommerce-data")


@pytest.fixture(scope="session")
def infra(data_dir: Path) -> Iterator[object]:
    from ecommerce_cli.stack import Infrastructure

    infrastructure = Infrastructure(data_dir).start()
    try:
        yield infrastructure
    finally:
        infrastructure.stop()
