"""Behaviour of servicekit.security's refresh tokens: random, URL-safe, stored as a SHA-256 digest."""

from __future__ import annotations

import hashlib

from servicekit.security import hash_refresh_token, new_refresh_token


def test_refresh_tokens_are_long_random_and_url_safe() -> None:
    tokens = {new_refresh_token() for _ in range(50)}
    assert len(tokens) == 50
    for token in tokens:
        assert len(token) == 64  # 48 bytes in base64url
        assert set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def test_refresh_token_hash_is_stable_sha256_hex() -> None:
    token = new_refresh_token()
    digest = hash_refresh_token(token)
    assert digest == hash_refresh_token(token) == hashlib.sha256(token.encode()).hexdigest()
    assert len(digest) == 64
    assert digest != hash_refresh_token(new_refresh_token())
