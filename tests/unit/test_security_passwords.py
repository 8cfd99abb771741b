"""Behaviour of servicekit.security's passwords: what is accepted, hashing at the configured cost, verifying in constant work."""

from __future__ import annotations

import asyncio
import threading

import bcrypt
import pytest

from servicekit.security import PasswordHasher, validate_password


@pytest.fixture(scope="module")
def hasher() -> PasswordHasher:
    return PasswordHasher(rounds=4)  # the bcrypt minimum: fast, allowed in tests only


@pytest.fixture
def checkpw_calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, bytes]]:
    """Records (thread id, stored hash) for every bcrypt.checkpw call while still running it."""
    calls: list[tuple[int, bytes]] = []
    real_checkpw = bcrypt.checkpw

    def spy(password: bytes, hashed: bytes) -> bool:
        calls.append((threading.get_ident(), hashed))
        return real_checkpw(password, hashed)

    monkeypatch.setattr(bcrypt, "checkpw", spy)
    return calls


def test_password_of_7_bytes_is_rejected() -> None:
    with pytest.raises(ValueError, match="at least 8 bytes"):
        validate_password("a" * 7)


def test_password_of_8_bytes_is_accepted() -> None:
    validate_password("a" * 8)


def test_password_of_72_bytes_is_accepted() -> None:
    validate_password("a" * 72)


def test_password_of_73_bytes_is_rejected_not_truncated() -> None:
    with pytest.raises(ValueError, match="at most 72 bytes"):
        validate_password("a" * 73)


def test_multibyte_characters_are_counted_in_bytes() -> None:
    validate_password("é" * 4)  # 4 characters, 8 bytes
    validate_password("€" * 24)  # 24 characters, 72 bytes
    with pytest.raises(ValueError, match="at most 72 bytes"):
        validate_password("€" * 24 + "a")  # 25 characters, 73 bytes
    with pytest.raises(ValueError, match="at least 8 bytes"):
        validate_password("a" * 3 + "é" * 2)  # 5 characters, 7 bytes


def test_password_with_nul_is_rejected() -> None:
    with pytest.raises(ValueError, match="NUL"):
        validate_password("password\x00suffix")


def test_password_that_is_not_encodable_is_rejected() -> None:
    with pytest.raises(ValueError, match="Unicode"):
        validate_password("password\ud800")


def test_hash_refuses_an_invalid_password(hasher: PasswordHasher) -> None:
    with pytest.raises(ValueError, match="at most 72 bytes"):
        hasher.hash("a" * 73)


def test_hash_uses_the_configured_cost(hasher: PasswordHasher) -> None:
    assert hasher.hash("correct horse").startswith("$2b$04$")


def test_rounds_outside_bcrypt_limits_are_refused() -> None:
    with pytest.raises(ValueError, match="rounds"):
        PasswordHasher(rounds=3)


def test_right_password_verifies(hasher: PasswordHasher) -> None:
    assert hasher.verify("correct horse", hasher.hash("correct horse"))


def test_wrong_password_does_not_verify(hasher: PasswordHasher) -> None:
    assert hasher.verify("wrong horse", hasher.hash("correct horse")) is False


def test_multibyte_password_round_trips(hasher: PasswordHasher) -> None:
    password = "пароль-€-密码"
    assert hasher.verify(password, hasher.hash(password))
    assert not hasher.verify(password[:-1], hasher.hash(password))


@pytest.mark.parametrize("hashed", ["", "not a hash", "$2b$04$short", "$2b$04$" + "a" * 53, "pässwörd"])
def test_malformed_hash_does_not_verify_and_does_not_raise(hasher: PasswordHasher, hashed: str) -> None:
    assert hasher.verify("correct horse", hashed) is False


def test_password_longer_than_72_bytes_never_matches_its_truncation(hasher: PasswordHasher) -> None:
    stored = hasher.hash("a" * 72)
    assert hasher.verify("a" * 73, stored) is False


def test_dummy_verify_returns_false(hasher: PasswordHasher) -> None:
    assert hasher.verify_dummy("anything at all") is False
    assert hasher.verify_dummy("x") is False


def test_dummy_verify_does_one_bcrypt_check_at_the_configured_cost(
    hasher: PasswordHasher, checkpw_calls: list[tuple[int, bytes]]
) -> None:
    hasher.verify_dummy("unknown user password")
    hasher.verify_dummy("a" * 100)  # even an unstorable password pays the full cost
    assert len(checkpw_calls) == 2
    assert all(hashed.startswith(b"$2b$04$") for _, hashed in checkpw_calls)


def test_verify_of_an_unstorable_password_still_pays_the_bcrypt_cost(
    hasher: PasswordHasher, checkpw_calls: list[tuple[int, bytes]]
) -> None:
    stored = hasher.hash("correct horse")
    assert hasher.verify("short", stored) is False
    assert len(checkpw_calls) == 1


def test_async_helpers_run_bcrypt_off_the_event_loop_thread(
    hasher: PasswordHasher, checkpw_calls: list[tuple[int, bytes]]
) -> None:
    async def scenario() -> tuple[bool, bool, bool]:
        stored = await hasher.hash_async("correct horse")
        return (
            await hasher.verify_async("correct horse", stored),
            await hasher.verify_async("wrong horse", stored),
            await hasher.verify_dummy_async("correct horse"),
        )

    assert asyncio.run(scenario()) == (True, False, False)
    assert len(checkpw_calls) == 3
    assert threading.get_ident() not in {thread for thread, _ in checkpw_calls}
