"""Behaviour of servicekit.security's signing keys: kids, PEM round trips, the published JWKS, the dev key file."""

from __future__ import annotations

import base64
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from servicekit.security import (
    SigningKey,
    jwk_thumbprint,
    jwks,
    load_or_create_signing_key,
    load_signing_keys,
    promote_staged_key,
    rotate_key_file,
)


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


def test_a_pem_bundle_loads_every_key_in_file_order(key: SigningKey, other_key: SigningKey) -> None:
    bundle = key.to_pem() + b"\n" + other_key.to_pem()
    assert [k.kid for k in load_signing_keys(bundle)] == [key.kid, other_key.kid]


@pytest.mark.parametrize(
    ("pem", "reason"),
    [
        (b"", "no PEM"),
        (b"not a key", "no PEM"),
        (b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", "deserialize"),
    ],
)
def test_a_bundle_without_a_usable_key_is_refused(pem: bytes, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        load_signing_keys(pem)


def test_a_bundle_holding_one_key_twice_is_refused(key: SigningKey) -> None:
    with pytest.raises(ValueError, match="twice"):
        load_signing_keys(key.to_pem() + key.to_pem())


def test_a_bundle_with_a_non_rsa_key_is_refused(key: SigningKey) -> None:
    ec_pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with pytest.raises(ValueError, match="RSA"):
        load_signing_keys(key.to_pem() + ec_pem)


def test_rotation_appends_a_new_key_and_keeps_the_previous_one(tmp_path: Path, key: SigningKey) -> None:
    path = tmp_path / "signing.pem"
    path.write_bytes(key.to_pem())

    first = rotate_key_file(path)
    second = rotate_key_file(path)

    assert first[0].kid == key.kid
    assert len(first) == 2
    assert [k.kid for k in second] == [first[1].kid, second[1].kid]
    assert [k.kid for k in load_signing_keys(path.read_bytes())] == [k.kid for k in second]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind


def test_rotation_creates_a_missing_file_and_refuses_to_keep_fewer_than_two(tmp_path: Path) -> None:
    path = tmp_path / "signing.pem"
    assert len(rotate_key_file(path)) == 1
    with pytest.raises(ValueError, match="at least 2"):
        rotate_key_file(path, keep=1)
    assert len(load_signing_keys(path.read_bytes())) == 1


def test_a_staged_key_is_published_before_it_signs_and_promoted_later(
    tmp_path: Path, key: SigningKey
) -> None:
    path = tmp_path / "signing.pem"
    path.write_bytes(key.to_pem())

    staged = rotate_key_file(path, stage=True)
    promoted = promote_staged_key(path)

    assert staged[-1].kid == key.kid
    assert [k.kid for k in promoted] == [key.kid, staged[0].kid]
    assert [k.kid for k in load_signing_keys(path.read_bytes())] == [k.kid for k in promoted]


def test_promoting_a_file_with_a_single_key_is_refused(tmp_path: Path, key: SigningKey) -> None:
    path = tmp_path / "signing.pem"
    path.write_bytes(key.to_pem())
    with pytest.raises(ValueError, match="no staged key"):
        promote_staged_key(path)
    assert path.read_bytes() == key.to_pem()
