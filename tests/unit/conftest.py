"""Fixtures shared by the unit tests: RSA signing keys, generated once per module."""

from __future__ import annotations

import pytest

from servicekit.security import SigningKey


@pytest.fixture(scope="module")
def key() -> SigningKey:
    return SigningKey.generate()


@pytest.fixture(scope="module")
def other_key() -> SigningKey:
    return SigningKey.generate()
