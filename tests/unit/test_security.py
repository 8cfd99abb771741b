"""Behaviour of servicekit.security: passwords, access tokens, refresh tokens."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import stat
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import bcrypt
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from servicekit.security import (
    Claims,
    InvalidToken,
    PasswordHasher,
    SigningKey,
    TokenIssuer,
    TokenVerifier,
    UnknownKeyId,
    hash_refresh_token,
    jwk_thumbprint,
    jwks,
    load_or_create_signing_key,
    new_refresh_token,
    validate_password,
)

ISSUER = "https://account.test"
AUDIENCE = "ecommerce"

# --------------------------------------------------------------------------------------------
# fixtures and helpers
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def hasher() -> PasswordHasher:
    return PasswordHasher(rounds=4)  # the bcrypt minimum: fast, allowed in tests only


@pytest.fixture(scope="module")
def key() -> SigningKey:
    return SigningKey.generate()


@pytest.fixture(scope="module")
def other_key() -> SigningKey:
    return SigningKey.generate()


@pytest.fixture
def issuer(key: SigningKey) -> TokenIssuer:
    return TokenIssuer(key, ISSUER, AUDIENCE)


@pytest.fixture
def verifier(key: SigningKey) -> TokenVerifier:
    v = TokenVerifier(ISSUER, AUDIENCE)
    v.set_jwks(jwks([key]))
    return v


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


def _hmac_signer(secret: bytes) -> Callable[[bytes], bytes]:
    return lambda data: hmac.new(secret, data, hashlib.sha256).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _forge(header: dict[str, Any], payload: dict[str, Any], sign: Callable[[bytes], bytes]) -> str:
    """Build a compact JWS by hand, bypassing PyJWT's own safety checks on encode."""
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(payload).encode())}".encode()
    return f"{signing_input.decode()}.{_b64(sign(signing_input))}"


def _claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {
        "sub": "user-1",
        "role": "customer",
        "iss": ISSUER,
        "aud": AUDIENCE,
        "iat": now,
        "nbf": now,
        "exp": now + 900,
        "jti": "a" * 32,
    }
    for name, value in overrides.items():
        if value is None:
            claims.pop(name, None)
        else:
            claims[name] = value
    return claims


def _sign(key: SigningKey, claims: dict[str, Any], **headers: Any) -> str:
    return jwt.encode(claims, key.private_key, algorithm="RS256", headers={"kid": key.kid, **headers})


def _reason(verifier: TokenVerifier, token: str) -> str:
    with pytest.raises(InvalidToken) as info:
        verifier.verify(token)
    return info.value.reason


# --------------------------------------------------------------------------------------------
# passwords
# --------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------
# signing keys and JWKS
# --------------------------------------------------------------------------------------------


def test_kid_defaults_to_the_rfc7638_thumbprint() -> None:
    # The example key and thumbprint from RFC 7638 §3.1.
    n = (
        "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjB"
        "ZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8K"
        "JZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xB"
        "niIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
    )
    modulus = int.from_bytes(base64.urlsafe_b64decode(n + "=" * (-len(n) % 4)), "big")
    public = rsa.RSAPublicNumbers(65537, modulus).public_key()
    assert jwk_thumbprint(public) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


def test_pem_round_trip_keeps_the_key_and_its_thumbprint_kid(key: SigningKey) -> None:
    loaded = SigningKey.from_pem(key.to_pem())
    assert loaded.kid == key.kid == jwk_thumbprint(key.public_key)
    assert loaded.public_jwk() == key.public_jwk()


def test_from_pem_uses_an_explicit_kid(key: SigningKey) -> None:
    assert SigningKey.from_pem(key.to_pem(), kid="2024-01").kid == "2024-01"


def test_from_pem_refuses_a_non_rsa_key() -> None:
    pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with pytest.raises(ValueError, match="RSA"):
        SigningKey.from_pem(pem)


def test_jwks_publishes_public_members_only(key: SigningKey, other_key: SigningKey) -> None:
    document = jwks([key, other_key])
    assert [k["kid"] for k in document["keys"]] == [key.kid, other_key.kid]
    for entry in document["keys"]:
        assert set(entry) == {"kty", "n", "e", "kid", "alg", "use"}
        assert entry["kty"] == "RSA"
        assert entry["alg"] == "RS256"
        assert entry["use"] == "sig"


def test_signing_key_repr_does_not_show_the_private_key(key: SigningKey) -> None:
    assert "private_key" not in repr(key)


def test_dev_key_is_created_with_mode_0600_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "jwt.pem"
    created = load_or_create_signing_key(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create_signing_key(path).kid == created.kid
    assert list(path.parent.iterdir()) == [path]  # no temporary file left behind


def test_dev_key_reads_an_existing_pem(tmp_path: Path, key: SigningKey) -> None:
    path = tmp_path / "jwt.pem"
    path.write_bytes(key.to_pem())
    assert load_or_create_signing_key(path).kid == key.kid


# --------------------------------------------------------------------------------------------
# access tokens: accepted
# --------------------------------------------------------------------------------------------


def test_issued_token_round_trips(issuer: TokenIssuer, verifier: TokenVerifier, key: SigningKey) -> None:
    token, claims = issuer.issue("user-1", "customer", {"email_verified": True})
    assert jwt.get_unverified_header(token) == {"alg": "RS256", "typ": "JWT", "kid": key.kid}
    assert claims["exp"] - claims["iat"] == 900
    assert claims["nbf"] == claims["iat"]
    assert len(claims["jti"]) == 32
    int(claims["jti"], 16)

    verified = verifier.verify(token)
    assert isinstance(verified, Claims)
    assert verified.subject == "user-1"
    assert verified.role == "customer"
    assert verified.jti == claims["jti"]
    assert verified.expires_at == datetime.fromtimestamp(claims["exp"], UTC)
    assert verified.issued_at == datetime.fromtimestamp(claims["iat"], UTC)
    assert verified.raw["email_verified"] is True


def test_every_token_gets_a_fresh_jti(issuer: TokenIssuer) -> None:
    assert issuer.issue("u", "customer")[1]["jti"] != issuer.issue("u", "customer")[1]["jti"]


def test_extra_claims_cannot_override_registered_ones(issuer: TokenIssuer) -> None:
    with pytest.raises(ValueError, match="role"):
        issuer.issue("user-1", "customer", {"role": "admin"})


def test_kid_selects_the_key_when_two_are_trusted(key: SigningKey, other_key: SigningKey) -> None:
    verifier = TokenVerifier(ISSUER, AUDIENCE)
    verifier.set_jwks(jwks([key, other_key]))
    old_token, _ = TokenIssuer(key, ISSUER, AUDIENCE).issue("user-old", "customer")
    new_token, _ = TokenIssuer(other_key, ISSUER, AUDIENCE).issue("user-new", "admin")
    assert verifier.verify(old_token).subject == "user-old"
    assert verifier.verify(new_token).role == "admin"


def test_retired_key_is_reported_as_unknown_after_rotation(key: SigningKey, other_key: SigningKey) -> None:
    verifier = TokenVerifier(ISSUER, AUDIENCE)
    verifier.set_jwks(jwks([key, other_key]))
    token, _ = TokenIssuer(key, ISSUER, AUDIENCE).issue("user-1", "customer")
    verifier.set_jwks(jwks([other_key]))
    with pytest.raises(UnknownKeyId):
        verifier.verify(token)


def test_a_token_verified_before_rotation_is_refused_after_it(key: SigningKey, other_key: SigningKey) -> None:
    verifier = TokenVerifier(ISSUER, AUDIENCE)
    verifier.set_jwks(jwks([key, other_key]))
    token, _ = TokenIssuer(key, ISSUER, AUDIENCE).issue("user-1", "customer")
    assert verifier.verify(token).subject == "user-1"  # remembered now

    verifier.set_jwks(jwks([other_key]))

    with pytest.raises(UnknownKeyId):
        verifier.verify(token)


def test_a_remembered_token_is_refused_once_it_expires(key: SigningKey) -> None:
    """Remembered or not, a token past its expiry (and the leeway) is refused: the memory keeps
    the expiry and checks it on every use. Expired 3 s ago, the token passes a 5 s leeway and is
    remembered; with no leeway left it has expired."""
    verifier = TokenVerifier(ISSUER, AUDIENCE, leeway=5)
    verifier.set_jwks(jwks([key]))
    token, _ = TokenIssuer(key, ISSUER, AUDIENCE, ttl_seconds=-3).issue("user-1", "customer")
    assert verifier.verify(token).subject == "user-1"
    assert verifier.verify(token).subject == "user-1"  # from memory

    verifier.leeway = 0

    assert _reason(verifier, token) == "token expired"


def test_token_expired_within_the_leeway_is_accepted(key: SigningKey, verifier: TokenVerifier) -> None:
    token, _ = TokenIssuer(key, ISSUER, AUDIENCE, ttl_seconds=-10).issue("user-1", "customer")
    assert verifier.verify(token).subject == "user-1"


def test_audience_list_containing_ours_is_accepted(key: SigningKey, verifier: TokenVerifier) -> None:
    token = _sign(key, _claims(aud=["other", AUDIENCE]))
    assert verifier.verify(token).subject == "user-1"


def test_private_members_in_a_fetched_jwks_are_ignored(key: SigningKey) -> None:
    private_jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.private_key))
    verifier = TokenVerifier(ISSUER, AUDIENCE)
    verifier.set_jwks({"keys": [{**private_jwk, "kid": key.kid}]})
    token, _ = TokenIssuer(key, ISSUER, AUDIENCE).issue("user-1", "customer")
    assert verifier.verify(token).subject == "user-1"


# --------------------------------------------------------------------------------------------
# access tokens: rejected
# --------------------------------------------------------------------------------------------


def test_alg_none_token_is_rejected(key: SigningKey, verifier: TokenVerifier) -> None:
    token = _forge({"alg": "none", "typ": "JWT", "kid": key.kid}, _claims(), lambda _: b"")
    assert _reason(verifier, token) == "algorithm not allowed"


def test_alg_none_token_without_signature_segment_is_rejected(
    key: SigningKey, verifier: TokenVerifier
) -> None:
    token = _forge({"alg": "none", "kid": key.kid}, _claims(), lambda _: b"").rstrip(".")
    with pytest.raises(InvalidToken):
        verifier.verify(token)


def test_hs256_token_signed_with_the_public_key_is_rejected(key: SigningKey, verifier: TokenVerifier) -> None:
    public_pem = key.public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    for secret in (public_pem, json.dumps(jwks([key])["keys"][0]).encode()):
        token = _forge(
            {"alg": "HS256", "typ": "JWT", "kid": key.kid},
            _claims(role="admin"),
            _hmac_signer(secret),
        )
        assert _reason(verifier, token) == "algorithm not allowed"


def test_hs256_token_is_rejected_even_if_the_header_claims_rs256(
    key: SigningKey, verifier: TokenVerifier
) -> None:
    public_pem = key.public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    token = _forge(
        {"alg": "RS256", "kid": key.kid},
        _claims(role="admin"),
        _hmac_signer(public_pem),
    )
    assert _reason(verifier, token) == "bad signature"


@pytest.mark.parametrize("algorithms", [("HS256",), ("RS256", "none"), ()])
def test_verifier_refuses_symmetric_or_none_algorithms_in_configuration(algorithms: tuple[str, ...]) -> None:
    with pytest.raises(ValueError, match="algorithm"):
        TokenVerifier(ISSUER, AUDIENCE, algorithms=algorithms)


def test_token_with_an_unknown_kid_raises_unknown_key_id(
    other_key: SigningKey, verifier: TokenVerifier
) -> None:
    token, _ = TokenIssuer(other_key, ISSUER, AUDIENCE).issue("user-1", "customer")
    with pytest.raises(UnknownKeyId) as info:
        verifier.verify(token)
    assert isinstance(info.value, InvalidToken)
    assert info.value.kid == other_key.kid


def test_verifier_with_no_keys_reports_unknown_key_id(issuer: TokenIssuer) -> None:
    token, _ = issuer.issue("user-1", "customer")
    with pytest.raises(UnknownKeyId):
        TokenVerifier(ISSUER, AUDIENCE).verify(token)


def test_token_without_kid_is_rejected_but_not_as_unknown_key(
    key: SigningKey, verifier: TokenVerifier
) -> None:
    token = jwt.encode(_claims(), key.private_key, algorithm="RS256")
    with pytest.raises(InvalidToken) as info:
        verifier.verify(token)
    assert not isinstance(info.value, UnknownKeyId)
    assert info.value.reason == "missing key id"


def test_token_signed_by_another_key_under_a_trusted_kid_is_rejected(
    key: SigningKey, other_key: SigningKey, verifier: TokenVerifier
) -> None:
    impostor = SigningKey(kid=key.kid, private_key=other_key.private_key)
    token, _ = TokenIssuer(impostor, ISSUER, AUDIENCE).issue("user-1", "admin")
    assert _reason(verifier, token) == "bad signature"


def test_tampered_payload_is_rejected(issuer: TokenIssuer, verifier: TokenVerifier) -> None:
    token, _ = issuer.issue("user-1", "customer")
    header, _, signature = token.split(".")
    payload = _b64(json.dumps(_claims(role="admin")).encode())
    assert _reason(verifier, f"{header}.{payload}.{signature}") == "bad signature"


def test_expired_token_is_rejected(key: SigningKey, verifier: TokenVerifier) -> None:
    token, _ = TokenIssuer(key, ISSUER, AUDIENCE, ttl_seconds=-120).issue("user-1", "customer")
    assert _reason(verifier, token) == "token expired"


def test_not_yet_valid_token_is_rejected(key: SigningKey, verifier: TokenVerifier) -> None:
    now = int(time.time())
    token = _sign(key, _claims(nbf=now + 3600, exp=now + 7200))
    assert _reason(verifier, token) == "token not yet valid"


def test_token_issued_in_the_future_is_rejected(key: SigningKey, verifier: TokenVerifier) -> None:
    now = int(time.time())
    token = _sign(key, _claims(iat=now + 3600, nbf=None, exp=now + 7200))
    assert _reason(verifier, token) == "token not yet valid"


def test_token_from_another_issuer_is_rejected(key: SigningKey, verifier: TokenVerifier) -> None:
    token, _ = TokenIssuer(key, "https://evil.test", AUDIENCE).issue("user-1", "customer")
    assert _reason(verifier, token) == "wrong issuer"


def test_token_for_another_audience_is_rejected(key: SigningKey, verifier: TokenVerifier) -> None:
    token, _ = TokenIssuer(key, ISSUER, "another-app").issue("user-1", "customer")
    assert _reason(verifier, token) == "wrong audience"


@pytest.mark.parametrize("claim", ["exp", "iat", "iss", "aud", "sub"])
def test_token_missing_a_required_claim_is_rejected(
    key: SigningKey, verifier: TokenVerifier, claim: str
) -> None:
    token = _sign(key, _claims(**{claim: None}))
    assert _reason(verifier, token) == f"missing claim {claim}"


@pytest.mark.parametrize("claim", ["role", "jti"])
def test_token_missing_role_or_jti_is_rejected(key: SigningKey, verifier: TokenVerifier, claim: str) -> None:
    token = _sign(key, _claims(**{claim: None}))
    assert _reason(verifier, token) == f"missing claim {claim}"


def test_token_with_a_non_string_subject_is_rejected(key: SigningKey, verifier: TokenVerifier) -> None:
    with pytest.raises(InvalidToken):
        verifier.verify(_sign(key, _claims(sub=42)))


@pytest.mark.parametrize(
    "garbage",
    [
        "",
        "not-a-token",
        "a.b.c",
        "a.b",
        "....",
        "eyJhbGciOiJSUzI1NiJ9.e30.",
        "ëyJ.é.ø",
        _b64(b"{not json}") + "." + _b64(b"{}") + "." + _b64(b"sig"),
        _b64(b"[1, 2]") + "." + _b64(b"{}") + "." + _b64(b"sig"),
    ],
)
def test_garbage_is_rejected(verifier: TokenVerifier, garbage: str) -> None:
    with pytest.raises(InvalidToken):
        verifier.verify(garbage)


def test_non_string_token_is_rejected(verifier: TokenVerifier) -> None:
    with pytest.raises(InvalidToken):
        verifier.verify(None)  # type: ignore[arg-type]


def test_validly_signed_token_over_8_kb_is_rejected(issuer: TokenIssuer, verifier: TokenVerifier) -> None:
    token, _ = issuer.issue("user-1", "customer", {"padding": "x" * 8192})
    assert len(token) > 8 * 1024
    assert _reason(verifier, token) == "token too large"


def test_invalid_token_carries_its_reason() -> None:
    error = InvalidToken("token expired")
    assert error.reason == "token expired"
    assert str(error) == "token expired"
    assert issubclass(UnknownKeyId, InvalidToken)


@pytest.mark.parametrize(
    "document",
    [{}, {"keys": "nope"}, {"keys": [42]}, {"keys": [{"kty": "RSA", "n": "AQAB", "e": "AQAB"}]}, []],
)
def test_malformed_jwks_is_refused(document: Any) -> None:
    with pytest.raises(ValueError, match="JWKS"):
        TokenVerifier(ISSUER, AUDIENCE).set_jwks(document)


def test_jwks_entries_not_meant_for_signing_are_skipped(key: SigningKey) -> None:
    verifier = TokenVerifier(ISSUER, AUDIENCE)
    entry = jwks([key])["keys"][0]
    verifier.set_jwks(
        {
            "keys": [
                {**entry, "use": "enc"},
                {**entry, "alg": "RS512"},
                {"kty": "oct", "k": "c2VjcmV0", "kid": key.kid},
            ]
        }
    )
    assert verifier.kids == frozenset()


# --------------------------------------------------------------------------------------------
# refresh tokens
# --------------------------------------------------------------------------------------------


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
