"""Passwords, access tokens and refresh tokens.

- Passwords: bcrypt, 8 to 72 bytes of UTF-8; unknown e-mail and wrong password cost the same.
- Access tokens: RS256 JWTs with a ``kid`` and the header ``typ: at+jwt`` (RFC 9068); verifiers
  take their algorithms from configuration only, refuse any other ``typ`` and pick the key by
  ``kid`` from a JWKS they can refresh. ``iat`` has millisecond precision.
- Signing keys: a key set in one PEM bundle; the last key signs and every key is published.
- Refresh tokens: random, stored as a SHA-256 digest.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import hashlib
import json
import os
import re
import secrets
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import bcrypt
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

from servicekit.machine import cores

__all__ = [
    "MAX_PASSWORD_BYTES",
    "MAX_TOKEN_BYTES",
    "MIN_PASSWORD_BYTES",
    "Claims",
    "InvalidToken",
    "PasswordHasher",
    "SigningKey",
    "TokenIssuer",
    "TokenVerifier",
    "UnknownKeyId",
    "hash_refresh_token",
    "jwk_thumbprint",
    "jwks",
    "load_or_create_signing_key",
    "load_signing_keys",
    "new_refresh_token",
    "promote_staged_key",
    "rotate_key_file",
    "validate_password",
]

T = TypeVar("T")

MIN_PASSWORD_BYTES = 8
# bcrypt only reads the first 72 bytes; longer passwords are refused rather than truncated.
MAX_PASSWORD_BYTES = 72
MAX_TOKEN_BYTES = 8 * 1024
# Verified access tokens a verifier remembers (a few MB at most).
VERIFIED_TOKENS = 4096
MIN_RSA_KEY_BITS = 2048
ACCESS_TOKEN_TYPE = "at+jwt"
# RFC 7515 §4.1.9: the "application/" prefix may be omitted, and media types compare without case.
_ACCESS_TOKEN_TYPES = frozenset({ACCESS_TOKEN_TYPE, "application/" + ACCESS_TOKEN_TYPE})

# ---------------------------------------------------------------------------------------------
# Passwords
# ---------------------------------------------------------------------------------------------


def validate_password(password: str) -> None:
    """Raise ``ValueError`` unless the password is 8 to 72 bytes of UTF-8 without NUL."""
    if not isinstance(password, str):
        raise ValueError("password must be a string")
    try:
        size = len(password.encode("utf-8"))
    except UnicodeEncodeError:
        raise ValueError("password must be valid Unicode text") from None
    if "\x00" in password:
        raise ValueError("password must not contain a NUL character")
    if size < MIN_PASSWORD_BYTES:
        raise ValueError(f"password must be at least {MIN_PASSWORD_BYTES} bytes long in UTF-8 (got {size})")
    if size > MAX_PASSWORD_BYTES:
        raise ValueError(f"password must be at most {MAX_PASSWORD_BYTES} bytes long in UTF-8 (got {size})")


def _password_bytes(password: str) -> bytes | None:
    """The bytes bcrypt should see, or None when the password could never have been stored."""
    try:
        validate_password(password)
    except ValueError:
        return None
    return password.encode("utf-8")


class PasswordHasher:
    """bcrypt hashing with a constant-cost path for unknown accounts."""

    def __init__(self, rounds: int = 12) -> None:
        if not 4 <= rounds <= 31:
            raise ValueError("bcrypt rounds must be between 4 and 31")
        self.rounds = rounds
        # Computed once so verify_dummy costs exactly one bcrypt run at the configured cost.
        self._dummy_hash = bcrypt.hashpw(secrets.token_urlsafe(16).encode("ascii"), bcrypt.gensalt(rounds))

    def hash(self, password: str) -> str:
        """Hash a password after checking it with ``validate_password``."""
        validate_password(password)
        return bcrypt.hashpw(password.encode("utf-8"), bcrypt.gensalt(self.rounds)).decode("ascii")

    def verify(self, password: str, hashed: str) -> bool:
        """True when the password matches; False on mismatch or a malformed hash, never raises."""
        candidate = _password_bytes(password)
        try:
            stored = hashed.encode("ascii")
        except (AttributeError, UnicodeEncodeError):
            self.verify_dummy(password)
            return False
        if candidate is None:
            # A password no rule would have accepted never matches; still spend the time so the
            # answer does not come back faster than a real check.
            self.verify_dummy(password)
            return False
        try:
            return bcrypt.checkpw(candidate, stored)
        except (ValueError, TypeError):
            return False

    def verify_dummy(self, password: str) -> bool:
        """Spend the time of one real verify and return False (for an unknown account)."""
        # An unstorable password is swapped for a valid stand-in so the full bcrypt cost is still paid.
        candidate = _password_bytes(password) or b"\x01" * MIN_PASSWORD_BYTES
        bcrypt.checkpw(candidate, self._dummy_hash)
        return False

    async def hash_async(self, password: str) -> str:
        """``hash`` in a bcrypt worker thread so the event loop keeps serving."""
        return await _in_bcrypt_pool(self.hash, password)

    async def verify_async(self, password: str, hashed: str) -> bool:
        """``verify`` in a bcrypt worker thread."""
        return await _in_bcrypt_pool(self.verify, password, hashed)

    async def verify_dummy_async(self, password: str) -> bool:
        """``verify_dummy`` in a bcrypt worker thread."""
        return await _in_bcrypt_pool(self.verify_dummy, password)


# At most one bcrypt per core at a time. More threads than cores only slice the cores finer: every
# login in flight then finishes late together (past its caller's deadline under load) instead of
# the first in line finishing on time. The others wait in line, and a caller that gives up (its
# task is cancelled) leaves the line without costing a bcrypt.
_bcrypt_pool: concurrent.futures.ThreadPoolExecutor | None = None


async def _in_bcrypt_pool(fn: Callable[..., T], *args: Any) -> T:
    global _bcrypt_pool
    if _bcrypt_pool is None:
        _bcrypt_pool = concurrent.futures.ThreadPoolExecutor(max_workers=cores(), thread_name_prefix="bcrypt")
    return await asyncio.get_running_loop().run_in_executor(_bcrypt_pool, fn, *args)


# ---------------------------------------------------------------------------------------------
# Signing keys
# ---------------------------------------------------------------------------------------------


def _b64url_uint(value: int) -> str:
    raw = value.to_bytes(max(1, (value.bit_length() + 7) // 8), "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def jwk_thumbprint(public_key: rsa.RSAPublicKey) -> str:
    """RFC 7638 SHA-256 thumbprint of an RSA public key, base64url without padding."""
    numbers = public_key.public_numbers()
    # RFC 7638 §3: only the required members, sorted, no whitespace.
    canonical = json.dumps(
        {"e": _b64url_uint(numbers.e), "kty": "RSA", "n": _b64url_uint(numbers.n)},
        separators=(",", ":"),
        sort_keys=True,
    )
    digest = hashlib.sha256(canonical.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


@dataclass(frozen=True)
class SigningKey:
    """An RSA private key and the ``kid`` its tokens carry."""

    kid: str
    private_key: rsa.RSAPrivateKey = field(repr=False)

    @classmethod
    def generate(cls, kid: str | None = None) -> SigningKey:
        """A fresh RSA-2048 key; ``kid`` defaults to its RFC 7638 thumbprint."""
        key = rsa.generate_private_key(public_exponent=65537, key_size=MIN_RSA_KEY_BITS)
        return cls(kid=kid or jwk_thumbprint(key.public_key()), private_key=key)

    @classmethod
    def from_pem(cls, pem: bytes, kid: str | None = None) -> SigningKey:
        """Load an unencrypted PEM RSA private key; ``kid`` defaults to its RFC 7638 thumbprint."""
        key = serialization.load_pem_private_key(pem, password=None)
        if not isinstance(key, rsa.RSAPrivateKey):
            raise ValueError("signing key must be an RSA private key")
        if key.key_size < MIN_RSA_KEY_BITS:
            raise ValueError(f"RSA signing key must be at least {MIN_RSA_KEY_BITS} bits")
        return cls(kid=kid or jwk_thumbprint(key.public_key()), private_key=key)

    @property
    def public_key(self) -> rsa.RSAPublicKey:
        return self.private_key.public_key()

    def to_pem(self) -> bytes:
        """The private key as unencrypted PKCS#8 PEM."""
        return self.private_key.private_bytes(
            encoding=serialization.Encoding.PEM,
            format=serialization.PrivateFormat.PKCS8,
            encryption_algorithm=serialization.NoEncryption(),
        )

    def public_jwk(self) -> dict[str, str]:
        """The public JWK of this key: kty, n, e, kid, alg, use and nothing else."""
        full = RSAAlgorithm.to_jwk(self.public_key, as_dict=True)
        return {
            "kty": "RSA",
            "n": full["n"],
            "e": full["e"],
            "kid": self.kid,
            "alg": "RS256",
            "use": "sig",
        }


def load_or_create_signing_key(path: Path) -> SigningKey:
    """Development helper: read the PEM at ``path``, or create one there with mode 0600."""
    path = Path(path)
    try:
        return SigningKey.from_pem(path.read_bytes())
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    key = SigningKey.generate()
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(key.to_pem())
            fh.flush()
            os.fsync(fh.fileno())
        try:
            # link, not replace: if another process created the key first, both must use its key.
            os.link(tmp, path)
        except FileExistsError:
            return SigningKey.from_pem(path.read_bytes())
    finally:
        tmp.unlink(missing_ok=True)
    return key


_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z ]+)-----.+?-----END \1-----", re.DOTALL)


def load_signing_keys(pem: bytes) -> list[SigningKey]:
    """Every private key of a PEM bundle, in file order (the signing key last); at least one, no repeat."""
    blocks = [match.group(0) for match in _PEM_BLOCK.finditer(pem)]
    if not blocks:
        raise ValueError("no PEM private key found")
    keys = [SigningKey.from_pem(block) for block in blocks]
    if len({key.kid for key in keys}) != len(keys):
        raise ValueError("the same signing key appears twice")
    return keys


def rotate_key_file(path: Path, *, keep: int = 2, stage: bool = False) -> list[SigningKey]:
    """Add a new key to the PEM bundle at ``path`` (created when missing) and keep only the newest
    ``keep`` keys; returns the new set. The new key goes last, where it signs, or with ``stage``
    just before the signing key, where it is only published until ``promote_staged_key``.
    The file is replaced atomically with mode 0600."""
    if keep < 2:
        raise ValueError("keep at least 2 keys: the previous one still verifies live tokens")
    keys = _read_key_file(path)
    new = SigningKey.generate()
    keys = ([*keys[:-1], new, keys[-1]] if stage and keys else [*keys, new])[-keep:]
    _write_key_file(path, keys)
    return keys


def promote_staged_key(path: Path) -> list[SigningKey]:
    """Make the key just before the signing key (the one ``rotate_key_file(stage=True)`` added)
    the signing key; the former signing key stays published. Returns the new set."""
    keys = _read_key_file(path)
    if len(keys) < 2:
        raise ValueError("no staged key: the file holds a single key")
    keys = [*keys[:-2], keys[-1], keys[-2]]
    _write_key_file(path, keys)
    return keys


def _read_key_file(path: Path) -> list[SigningKey]:
    try:
        return load_signing_keys(Path(path).read_bytes())
    except FileNotFoundError:
        return []


def _write_key_file(path: Path, keys: list[SigningKey]) -> None:
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(b"".join(key.to_pem() for key in keys))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def jwks(keys: Iterable[SigningKey]) -> dict[str, list[dict[str, str]]]:
    """The public JWK Set for the given keys (public members only)."""
    return {"keys": [key.public_jwk() for key in keys]}


# ---------------------------------------------------------------------------------------------
# Access tokens
# ---------------------------------------------------------------------------------------------

_REGISTERED = frozenset({"sub", "role", "iss", "aud", "iat", "nbf", "exp", "jti"})


class TokenIssuer:
    """Issues RS256 access tokens signed with one key."""

    algorithm = "RS256"

    def __init__(self, key: SigningKey, issuer: str, audience: str, ttl_seconds: int = 900) -> None:
        self.key = key
        self.issuer = issuer
        self.audience = audience
        self.ttl_seconds = ttl_seconds

    def issue(
        self, subject: str, role: str, extra: Mapping[str, Any] | None = None
    ) -> tuple[str, dict[str, Any]]:
        """Sign a token for ``subject``; returns the token and the claims it carries."""
        if not subject:
            raise ValueError("subject must not be empty")
        if extra and (clash := _REGISTERED.intersection(extra)):
            raise ValueError(f"extra claims must not override {sorted(clash)}")
        now = time.time()
        # Milliseconds in iat (RFC 7519 NumericDate may be fractional): a token issued in the same
        # second as, but after, a password change or role change still passes the account's cut-off.
        claims: dict[str, Any] = {
            **(extra or {}),
            "sub": subject,
            "role": role,
            "iss": self.issuer,
            "aud": self.audience,
            "iat": round(now, 3),
            "nbf": int(now),
            "exp": int(now) + self.ttl_seconds,
            "jti": uuid.uuid4().hex,
        }
        token = jwt.encode(
            claims,
            self.key.private_key,
            algorithm=self.algorithm,
            headers={"kid": self.key.kid, "typ": ACCESS_TOKEN_TYPE},
        )
        return token, claims


class InvalidToken(Exception):
    """The token is not acceptable; ``reason`` says why (for logs, not for the caller)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class UnknownKeyId(InvalidToken):
    """The token's ``kid`` is not in the key set: refetch the JWKS and retry once."""

    def __init__(self, kid: str) -> None:
        super().__init__(f"unknown key id {kid!r}")
        self.kid = kid


@dataclass(frozen=True)
class Claims:
    """The verified claims of an access token."""

    subject: str
    role: str
    jti: str
    expires_at: datetime
    issued_at: datetime
    raw: dict[str, Any] = field(compare=False, hash=False, repr=False)


_JWK_LOADERS: dict[str, Any] = {"RSA": RSAAlgorithm, "EC": ECAlgorithm, "OKP": OKPAlgorithm}
_PRIVATE_KEY_TYPES = (
    rsa.RSAPrivateKey,
    ec.EllipticCurvePrivateKey,
    ed25519.Ed25519PrivateKey,
    ed448.Ed448PrivateKey,
)


class TokenVerifier:
    """Verifies access tokens against a refreshable JWKS.

    Algorithms come from configuration only; the token header merely names the key.
    Callers that refetch the JWKS on ``UnknownKeyId`` should rate-limit the refetch.
    """

    def __init__(
        self,
        issuer: str,
        audience: str,
        algorithms: Iterable[str] = ("RS256",),
        leeway: int = 30,
    ) -> None:
        self.issuer = issuer
        self.audience = audience
        self.algorithms: tuple[str, ...] = tuple(algorithms)
        if not self.algorithms:
            raise ValueError("at least one algorithm must be configured")
        if "none" in {a.lower() for a in self.algorithms} or any(a.startswith("HS") for a in self.algorithms):
            # Public keys are published; a symmetric or unsigned algorithm would let anyone mint tokens.
            raise ValueError("only asymmetric signature algorithms may be configured")
        self.leeway = leeway
        self._keys: dict[str, Any] = {}
        # Tokens that verified, most recently used last: {token: (claims, exp as a timestamp)}.
        self._verified: OrderedDict[str, tuple[Claims, float]] = OrderedDict()

    @property
    def kids(self) -> frozenset[str]:
        """The key ids currently trusted."""
        return frozenset(self._keys)

    def set_jwks(self, jwks: Mapping[str, Any]) -> None:
        """Replace the trusted keys with the public keys of a JWK Set."""
        entries = jwks.get("keys") if isinstance(jwks, Mapping) else None
        if not isinstance(entries, list):
            raise ValueError("JWKS must be an object with a 'keys' list")
        keys: dict[str, Any] = {}
        for entry in entries:
            if not isinstance(entry, Mapping):
                raise ValueError("every JWKS entry must be an object")
            if entry.get("use", "sig") != "sig" or entry.get("kty") not in _JWK_LOADERS:
                continue
            if "alg" in entry and entry["alg"] not in self.algorithms:
                continue
            kid = entry.get("kid")
            if not isinstance(kid, str) or not kid:
                raise ValueError("every JWKS signing key must have a kid")
            try:
                key = _JWK_LOADERS[entry["kty"]].from_jwk(dict(entry))
            except (jwt.PyJWTError, ValueError, TypeError, KeyError) as exc:
                raise ValueError(f"JWKS key {kid!r} is malformed: {exc}") from exc
            # Trust only the public half even if a private JWK was published by mistake.
            keys[kid] = key.public_key() if isinstance(key, _PRIVATE_KEY_TYPES) else key
        self._keys = keys
        self._verified.clear()

    def verify(self, token: str) -> Claims:
        """Verify signature and claims; raise ``InvalidToken`` (or ``UnknownKeyId``) otherwise.

        A token that verified before is not checked again, only its expiry: its signature, issuer,
        audience and claims cannot have changed, and time only moves on past its `nbf` and `iat`.
        The keys being replaced forgets every such token.
        """
        remembered = self._verified.get(token) if isinstance(token, str) else None
        if remembered is not None:
            claims, expires = remembered
            if time.time() <= expires + self.leeway:
                self._verified.move_to_end(token)
                return claims
            del self._verified[token]  # expired: the full check below says so
        claims = self._verify(token)
        self._verified[token] = (claims, claims.expires_at.timestamp())
        if len(self._verified) > VERIFIED_TOKENS:
            self._verified.popitem(last=False)
        return claims

    def _verify(self, token: str) -> Claims:
        if not isinstance(token, str) or not token:
            raise InvalidToken("malformed token")
        if len(token) > MAX_TOKEN_BYTES:
            raise InvalidToken("token too large")
        if not token.isascii():
            raise InvalidToken("malformed token")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise InvalidToken("malformed token") from None
        if header.get("alg") not in self.algorithms:
            raise InvalidToken("algorithm not allowed")
        typ = header.get("typ")
        if not isinstance(typ, str) or typ.lower() not in _ACCESS_TOKEN_TYPES:
            raise InvalidToken("not an access token")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise InvalidToken("missing key id")
        key = self._keys.get(kid)
        if key is None:
            raise UnknownKeyId(kid)
        try:
            payload = jwt.decode(
                token,
                key,
                algorithms=list(self.algorithms),
                audience=self.audience,
                issuer=self.issuer,
                options={"require": ["exp", "iat", "iss", "aud", "sub"]},
                leeway=self.leeway,
            )
        except jwt.ExpiredSignatureError:
            raise InvalidToken("token expired") from None
        except jwt.ImmatureSignatureError:
            raise InvalidToken("token not yet valid") from None
        except jwt.InvalidAudienceError:
            raise InvalidToken("wrong audience") from None
        except jwt.InvalidIssuerError:
            raise InvalidToken("wrong issuer") from None
        except jwt.MissingRequiredClaimError as exc:
            raise InvalidToken(f"missing claim {exc.claim}") from None
        except jwt.InvalidSignatureError:
            raise InvalidToken("bad signature") from None
        except jwt.PyJWTError as exc:
            raise InvalidToken(f"invalid token: {type(exc).__name__}") from None
        return self._claims(payload)

    @staticmethod
    def _claims(payload: dict[str, Any]) -> Claims:
        subject, role, jti = payload.get("sub"), payload.get("role"), payload.get("jti")
        if not isinstance(subject, str) or not subject:
            raise InvalidToken("invalid claim sub")
        # Authorisation needs the role and revocation needs the jti; our issuer always sets both.
        if not isinstance(role, str) or not role:
            raise InvalidToken("missing claim role")
        if not isinstance(jti, str) or not jti:
            raise InvalidToken("missing claim jti")
        try:
            expires_at = datetime.fromtimestamp(payload["exp"], UTC)
            issued_at = datetime.fromtimestamp(payload["iat"], UTC)
        except (TypeError, ValueError, OverflowError, OSError):
            raise InvalidToken("invalid time claims") from None
        return Claims(
            subject=subject, role=role, jti=jti, expires_at=expires_at, issued_at=issued_at, raw=dict(payload)
        )


# ---------------------------------------------------------------------------------------------
# Refresh tokens
# ---------------------------------------------------------------------------------------------


def new_refresh_token() -> str:
    """A new opaque refresh token (48 random bytes, URL-safe)."""
    return secrets.token_urlsafe(48)


def hash_refresh_token(token: str) -> str:
    """The SHA-256 hex digest under which a refresh token is stored."""
    # 384 random bits cannot be guessed or brute-forced, so a slow KDF adds nothing but latency;
    # a plain digest still keeps a leaked table from yielding usable tokens and allows an index lookup.
    return hashlib.sha256(token.encode("utf-8")).hexdigest()
