"""Behaviour of servicekit.security's access tokens: what the verifier accepts and every way it refuses one."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from servicekit.security import (
    Claims,
    InvalidToken,
    SigningKey,
    TokenIssuer,
    TokenVerifier,
    UnknownKeyId,
    jwks,
)

ISSUER = "https://account.test"
AUDIENCE = "ecommerce"


@pytest.fixture
def issuer(key: SigningKey) -> TokenIssuer:
    return TokenIssuer(key, ISSUER, AUDIENCE)


@pytest.fixture
def verifier(key: SigningKey) -> TokenVerifier:
    v = TokenVerifier(ISSUER, AUDIENCE)
    v.set_jwks(jwks([key]))
    return v


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
    return jwt.encode(
        claims, key.private_key, algorithm="RS256", headers={"kid": key.kid, "typ": "at+jwt", **headers}
    )


def _reason(verifier: TokenVerifier, token: str) -> str:
    with pytest.raises(InvalidToken) as info:
        verifier.verify(token)
    return info.value.reason


# --------------------------------------------------------------------------------------------
# access tokens: accepted
# --------------------------------------------------------------------------------------------


def test_issued_token_round_trips(issuer: TokenIssuer, verifier: TokenVerifier, key: SigningKey) -> None:
    token, claims = issuer.issue("user-1", "customer", {"email_verified": True})
    assert jwt.get_unverified_header(token) == {"alg": "RS256", "typ": "at+jwt", "kid": key.kid}
    assert claims["exp"] - int(claims["iat"]) == 900
    assert claims["nbf"] == int(claims["iat"])
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
        {"alg": "RS256", "typ": "at+jwt", "kid": key.kid},
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
    token = jwt.encode(_claims(), key.private_key, algorithm="RS256", headers={"typ": "at+jwt"})
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


@pytest.mark.parametrize("typ", ["JWT", "refresh+jwt", "at+jwt+evil", "", 7])
def test_a_token_of_another_type_is_not_an_access_token(
    key: SigningKey, verifier: TokenVerifier, typ: Any
) -> None:
    token = _forge({"alg": "RS256", "typ": typ, "kid": key.kid}, _claims(), _rsa_signer(key))
    assert _reason(verifier, token) == "not an access token"


def test_a_token_without_a_type_is_not_an_access_token(key: SigningKey, verifier: TokenVerifier) -> None:
    token = _forge({"alg": "RS256", "kid": key.kid}, _claims(), _rsa_signer(key))
    assert _reason(verifier, token) == "not an access token"


@pytest.mark.parametrize("typ", ["at+jwt", "AT+JWT", "application/at+jwt"])
def test_the_access_token_type_is_accepted_in_each_spelling_rfc_7515_allows(
    key: SigningKey, verifier: TokenVerifier, typ: str
) -> None:
    token = _forge({"alg": "RS256", "typ": typ, "kid": key.kid}, _claims(), _rsa_signer(key))
    assert verifier.verify(token).subject == "user-1"


def test_iat_carries_milliseconds(issuer: TokenIssuer, verifier: TokenVerifier) -> None:
    before = time.time()
    token, claims = issuer.issue("user-1", "customer")
    after = time.time()
    assert round(before, 3) <= claims["iat"] <= round(after, 3)
    assert claims["iat"] == round(claims["iat"], 3)
    assert verifier.verify(token).issued_at.timestamp() == pytest.approx(claims["iat"], abs=1e-6)


def _rsa_signer(key: SigningKey) -> Callable[[bytes], bytes]:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    return lambda data: key.private_key.sign(data, padding.PKCS1v15(), hashes.SHA256())
