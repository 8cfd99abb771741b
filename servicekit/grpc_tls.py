"""Mutual TLS between the platform's processes (GRPC_TLS_* settings).

With GRPC_TLS_ENABLED every server listens on TLS only and asks each client for a certificate that
the platform's CA issued (GRPC_TLS_CA_FILE); every client checks the server's certificate against
the same CA and the name it dials, and presents its own (GRPC_TLS_CERT_FILE, GRPC_TLS_KEY_FILE).
A plaintext client, or one without a certificate of that CA, cannot call anything.

`load_grpc_tls(settings)` reads and checks the files once, when a process starts: a missing,
unreadable or mismatched file stops the process with a message naming the setting, rather than
failing every call later.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from pathlib import Path

import grpc
from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from servicekit.settings import PlatformSettings

MAX_PEM_BYTES = 1024 * 1024


class GrpcTlsError(ValueError):
    """The GRPC_TLS_* settings name files that cannot serve: the message says which and why."""


@dataclass(frozen=True, repr=False)
class GrpcTls:
    """The PEM material of one process: the CA it trusts, its certificate chain and key."""

    ca: bytes
    certificate_chain: bytes
    private_key: bytes
    server_name: str = ""

    def server_credentials(self) -> grpc.ServerCredentials:
        """TLS only, and only for clients presenting a certificate the CA issued."""
        return grpc.ssl_server_credentials(
            [(self.private_key, self.certificate_chain)], root_certificates=self.ca, require_client_auth=True
        )

    def channel_credentials(self) -> grpc.ChannelCredentials:
        """Trusts servers the CA issued and presents this process's certificate."""
        return grpc.ssl_channel_credentials(
            root_certificates=self.ca, private_key=self.private_key, certificate_chain=self.certificate_chain
        )

    def channel_options(self) -> list[tuple[str, str]]:
        """The name checked in the server's certificate, when not the dialled host."""
        return [("grpc.ssl_target_name_override", self.server_name)] if self.server_name else []

    def __repr__(self) -> str:
        return f"GrpcTls(server_name={self.server_name!r})"  # never the key


def load_grpc_tls(settings: PlatformSettings) -> GrpcTls | None:
    """The TLS material the settings name, checked; None when GRPC_TLS_ENABLED is off.

    Raises `GrpcTlsError` when a file is not named, cannot be read, holds no PEM of its kind, when
    the key is encrypted or does not belong to the certificate, when the CA did not issue the
    certificate, or when the certificate has expired or is not yet valid.
    """
    if not settings.grpc_tls_enabled:
        return None
    named = {
        "GRPC_TLS_CA_FILE": settings.grpc_tls_ca_file,
        "GRPC_TLS_CERT_FILE": settings.grpc_tls_cert_file,
        "GRPC_TLS_KEY_FILE": settings.grpc_tls_key_file,
    }
    missing = [setting for setting, path in named.items() if not path]
    if missing:
        raise GrpcTlsError(f"GRPC_TLS_ENABLED needs {', '.join(missing)}")
    ca = _read("GRPC_TLS_CA_FILE", named["GRPC_TLS_CA_FILE"])
    chain = _read("GRPC_TLS_CERT_FILE", named["GRPC_TLS_CERT_FILE"])
    key_pem = _read("GRPC_TLS_KEY_FILE", named["GRPC_TLS_KEY_FILE"])
    authorities = _certificates("GRPC_TLS_CA_FILE", ca)
    certificates = _certificates("GRPC_TLS_CERT_FILE", chain)
    key = _private_key(key_pem)
    leaf = certificates[0]
    if key.public_key() != leaf.public_key():
        raise GrpcTlsError("GRPC_TLS_KEY_FILE is not the key of the certificate in GRPC_TLS_CERT_FILE")
    if not any(_issued_by(certificates[-1], authority) for authority in authorities):
        raise GrpcTlsError(
            "the certificate in GRPC_TLS_CERT_FILE was not issued by the CA in GRPC_TLS_CA_FILE"
        )
    now = datetime.datetime.now(datetime.UTC)
    for setting, certificate in (
        ("GRPC_TLS_CERT_FILE", leaf),
        *(("GRPC_TLS_CA_FILE", a) for a in authorities),
    ):
        if now > certificate.not_valid_after_utc:
            raise GrpcTlsError(
                f"the certificate in {setting} expired on {certificate.not_valid_after_utc:%Y-%m-%d}"
            )
        if now < certificate.not_valid_before_utc:
            raise GrpcTlsError(
                f"the certificate in {setting} is valid only from {certificate.not_valid_before_utc}"
            )
    return GrpcTls(
        ca=ca, certificate_chain=chain, private_key=key_pem, server_name=settings.grpc_tls_server_name
    )


def process_grpc_tls(settings: PlatformSettings, name: str) -> GrpcTls | None:
    """`load_grpc_tls` for a process starting: a problem stops it with a message that names it."""
    try:
        return load_grpc_tls(settings)
    except GrpcTlsError as error:
        raise SystemExit(f"{name} refuses to start: {error}") from None


def _read(setting: str, path: str) -> bytes:
    try:
        with Path(path).open("rb") as file:
            data = file.read(MAX_PEM_BYTES + 1)
    except OSError as error:
        raise GrpcTlsError(f"{setting} {path!r} cannot be read: {error.strerror or error}") from None
    if len(data) > MAX_PEM_BYTES:
        raise GrpcTlsError(f"{setting} {path!r} is larger than {MAX_PEM_BYTES} bytes")
    return data


def _certificates(setting: str, pem: bytes) -> list[x509.Certificate]:
    try:
        certificates = x509.load_pem_x509_certificates(pem)
    except ValueError:
        raise GrpcTlsError(f"{setting} holds no PEM certificate") from None
    return certificates


def _private_key(pem: bytes) -> PrivateKeyTypes:
    try:
        return serialization.load_pem_private_key(pem, password=None)
    except TypeError:
        raise GrpcTlsError("GRPC_TLS_KEY_FILE is encrypted; give the key unencrypted") from None
    except (ValueError, UnsupportedAlgorithm):
        raise GrpcTlsError("GRPC_TLS_KEY_FILE holds no PEM private key") from None


def _issued_by(certificate: x509.Certificate, authority: x509.Certificate) -> bool:
    try:
        certificate.verify_directly_issued_by(authority)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True
