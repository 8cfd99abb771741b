"""Production refuses to start with placeholder or short secrets."""

from __future__ import annotations

import base64
import secrets

import pytest
from cryptography.fernet import Fernet

from notification.__main__ import fernet_key_problem, webhook_secret_key
from notification.settings import NotificationSettings
from servicekit.runtime import ServiceRuntime
from servicekit.settings import ServiceSettings, production_secret_problems

GOOD = secrets.token_urlsafe(32)


def production(**values: str) -> ServiceSettings:
    return ServiceSettings(env="production", **{"cursor_secret": GOOD, **values})


def test_real_secrets_pass_and_an_empty_service_token_only_turns_service_calls_off():
    assert production_secret_problems(production(internal_service_token=secrets.token_hex(32))) == []
    assert production_secret_problems(production(internal_service_token="")) == []


@pytest.mark.parametrize(
    ("values", "problem"),
    [
        ({"cursor_secret": "development-cursor-secret"}, "CURSOR_SECRET is a placeholder"),
        ({"cursor_secret": "change-me-cursor-secret"}, "CURSOR_SECRET is a placeholder"),
        ({"cursor_secret": secrets.token_hex(16)}, "CURSOR_SECRET must hold at least 32 random bytes"),
        ({"cursor_secret": "a" * 64}, "CURSOR_SECRET does not look random"),
        (
            {"internal_service_token": "change-me-internal-service-token"},
            "INTERNAL_SERVICE_TOKEN is a placeholder",
        ),
        ({"internal_service_token": "x" * 10}, "INTERNAL_SERVICE_TOKEN must hold"),
    ],
)
def test_placeholder_short_or_uniform_secrets_are_refused_in_production(values, problem):
    [found] = production_secret_problems(production(**values))

    assert found.startswith(problem)


def test_development_takes_the_default_secrets():
    assert production_secret_problems(ServiceSettings(env="development")) == []


def test_a_service_refuses_to_start_in_production_with_the_default_cursor_secret():
    with pytest.raises(SystemExit, match="CURSOR_SECRET is a placeholder"):
        ServiceRuntime(ServiceSettings(env="production"), "catalog")


@pytest.mark.parametrize(
    "key",
    [
        b"change-me-fernet-key",
        base64.urlsafe_b64encode(bytes(32)),  # well formed, all zeros
        base64.urlsafe_b64encode(secrets.token_bytes(24)),
    ],
)
def test_production_refuses_a_webhook_key_that_is_not_32_random_bytes(key):
    settings = NotificationSettings(env="production", webhook_secret_key=key.decode())

    assert fernet_key_problem(key) is not None
    with pytest.raises(SystemExit, match="webhook secret key"):
        webhook_secret_key(settings)


def test_production_takes_a_real_fernet_key():
    key = Fernet.generate_key()

    assert webhook_secret_key(NotificationSettings(env="production", webhook_secret_key=key.decode())) == key
