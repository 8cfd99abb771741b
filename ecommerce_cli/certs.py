"""`ecommerce gen-certs DIR`: a certificate authority of the platform's own and a certificate for each
of its processes, for mutual TLS between them (GRPC_TLS_*, docs/security.md).

The layout, one folder per process, is what a Kubernetes TLS Secret holds (and what cert-manager
writes), so that `kubectl create secret generic grpc-tls-<name> --from-file=DIR/<name>` makes it:

    DIR/ca.crt  DIR/ca.key            the authority; keep ca.key offline, it issues the others
    DIR/<name>/ca.crt tls.crt tls.key one per service and the gateway

Running it again on the same folder keeps the authority and issues fresh certificates from it
(renewal without a moment of distrust); a folder with a certificate but no key of the authority is
refused rather than overwritten.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ecommerce_cli import ALL_SERVICES

PROCESSES = (*ALL_SERVICES, "gateway")
CA_DAYS = 3650
MAX_DAYS = 3650
# A DNS label (RFC 1123), as Kubernetes names namespaces; a cluster domain is labels joined by dots.
_LABEL = r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?"
_NAMESPACE = re.compile(_LABEL)
_DOMAIN = re.compile(rf"{_LABEL}(\.{_LABEL})*")


class CertificateError(ValueError):
    """Why the certificates cannot be made: a bad option or a folder that would lose something."""


@dataclass(frozen=True)
class Authority:
    certificate: x509.Certificate
    key: ec.EllipticCurvePrivateKey


def dns_names(name: str, namespace: str, cluster_domain: str) -> list[str]:
    """The names a peer may dial `name` by: the Service's short and qualified names, and localhost."""
    return [
        name,
        f"{name}.{namespace}",
        f"{name}.{namespace}.svc",
        f"{name}.{namespace}.svc.{cluster_domain}",
        "localhost",
    ]


def generate(
    directory: Path,
    *,
    namespace: str = "ecommerce",
    cluster_domain: str = "cluster.local",
    days: int = 365,
    names: Iterable[str] = PROCESSES,
) -> list[Path]:
    """Write (or renew) the certificates of `names` under `directory`; returns the folders written."""
    if not _NAMESPACE.fullmatch(namespace):
        raise CertificateError(f"{namespace!r} is not a Kubernetes namespace (a DNS label)")
    if len(cluster_domain) > 253 or not _DOMAIN.fullmatch(cluster_domain):
        raise CertificateError(f"{cluster_domain!r} is not a DNS domain")
    names = list(names)
    if not names or not all(_NAMESPACE.fullmatch(name) for name in names):
        raise CertificateError(f"{names!r}: each name is a DNS label, as a Service is named")
    if not 1 <= days <= MAX_DAYS:
        raise CertificateError(f"days must be from 1 to {MAX_DAYS}")
    if directory.exists() and not directory.is_dir():
        raise CertificateError(f"{directory} is not a folder")
    directory.mkdir(parents=True, exist_ok=True)
    authority = _authority(directory)
    ca_pem = authority.certificate.public_bytes(serialization.Encoding.PEM)
    written = []
    for name in names:
        folder = directory / name
        folder.mkdir(exist_ok=True)
        key = ec.generate_private_key(ec.SECP256R1())
        certificate = _issue(authority, key, name, dns_names(name, namespace, cluster_domain), days)
        (folder / "ca.crt").write_bytes(ca_pem)
        (folder / "tls.crt").write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
        _write_private(folder / "tls.key", key)
        written.append(folder)
    return written


def _authority(directory: Path) -> Authority:
    """The folder's authority, or a new one when the folder has none."""
    cert_path, key_path = directory / "ca.crt", directory / "ca.key"
    if cert_path.exists() and key_path.exists():
        try:
            certificate = x509.load_pem_x509_certificate(cert_path.read_bytes())
            key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        except ValueError as error:
            raise CertificateError(f"{directory} holds an authority that cannot be read: {error}") from None
        if not isinstance(key, ec.EllipticCurvePrivateKey) or key.public_key() != certificate.public_key():
            raise CertificateError(f"{key_path} is not the key of {cert_path}")
        return Authority(certificate, key)
    if cert_path.exists() or key_path.exists():
        raise CertificateError(
            f"{directory} holds only one of ca.crt and ca.key; restore the other or use a new folder"
        )
    key = ec.generate_private_key(ec.SECP384R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ecommerce internal CA")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA384())
    )
    _write_private(key_path, key)
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return Authority(certificate, key)


def _issue(
    authority: Authority, key: ec.EllipticCurvePrivateKey, name: str, names: list[str], days: int
) -> x509.Certificate:
    """A certificate for `name` that serves TLS and presents itself as a client: every service is both."""
    now = datetime.datetime.now(datetime.UTC)
    addresses = [ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1")]
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(authority.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
            critical=False,
        )
        .add_extension(
            x509.SubjectAlternativeName(
                [*(x509.DNSName(n) for n in names), *(x509.IPAddress(a) for a in addresses)]
            ),
            critical=False,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(authority.key.public_key()), critical=False
        )
        .sign(authority.key, hashes.SHA384())
    )


def _write_private(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    """The key in PKCS#8 PEM, readable by its owner only from the moment it exists."""
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as file:
        file.write(pem)
    os.chmod(path, 0o600)
