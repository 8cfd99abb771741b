"""The GRPC_TLS_* settings are checked when a process starts, and `ecommerce gen-certs` makes the
files they name: a CA and one certificate per process, renewable without replacing the CA."""

from __future__ import annotations

import datetime
import ipaddress
import stat
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from pydantic import ValidationError

from ecommerce_cli.certs import PROCESSES, CertificateError, generate
from ecommerce_cli.main import main
from ecommerce_cli.stack import Infrastructure, Platform
from gateway.app import create_app
from gateway.settings import GatewaySettings
from servicekit.grpc_tls import GrpcTlsError, load_grpc_tls
from servicekit.runtime import ServiceRuntime
from servicekit.settings import PlatformSettings, ServiceSettings


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("certs")
    generate(directory, names=["account", "gateway"])
    return directory


@pytest.fixture(scope="module")
def stranger(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("stranger")
    generate(directory, names=["account"])
    return directory


def named(folder: Path, **files: Any) -> PlatformSettings:
    """TLS on with the files of `folder`, each replaceable (`ca=...`, `cert=...`, `key=...`)."""
    return PlatformSettings(
        grpc_tls_enabled=True,
        grpc_tls_ca_file=str(files.get("ca", folder / "ca.crt")),
        grpc_tls_cert_file=str(files.get("cert", folder / "tls.crt")),
        grpc_tls_key_file=str(files.get("key", folder / "tls.key")),
    )


# -- the settings ---------------------------------------------------------------------------------


def test_tls_is_off_by_default_and_then_nothing_is_read():
    assert load_grpc_tls(PlatformSettings(grpc_tls_ca_file="/nowhere/ca.crt")) is None


def test_the_files_of_one_process_load_and_the_key_never_shows_in_its_repr(certs):
    tls = load_grpc_tls(named(certs / "account"))

    assert tls is not None
    assert tls.ca == (certs / "ca.crt").read_bytes()
    assert tls.private_key == (certs / "account" / "tls.key").read_bytes()
    assert "PRIVATE" not in repr(tls)
    assert tls.channel_options() == []


def test_the_server_name_setting_overrides_the_name_checked_in_certificates(certs):
    settings = named(certs / "account").model_copy(update={"grpc_tls_server_name": "localhost"})

    tls = load_grpc_tls(settings)

    assert tls is not None
    assert tls.channel_options() == [("grpc.ssl_target_name_override", "localhost")]


@pytest.mark.parametrize("name", ["two words", "a" * 254, "line\nbreak", "ünïcode"])
def test_a_server_name_that_is_no_host_name_is_refused(name):
    with pytest.raises(ValidationError):
        PlatformSettings(grpc_tls_server_name=name)


def test_tls_on_without_the_files_names_the_missing_settings():
    with pytest.raises(GrpcTlsError, match="GRPC_TLS_ENABLED needs GRPC_TLS_CA_FILE, GRPC_TLS_KEY_FILE"):
        load_grpc_tls(PlatformSettings(grpc_tls_enabled=True, grpc_tls_cert_file="tls.crt"))


def _oversized(tmp_path: Path) -> Path:
    path = tmp_path / "huge.crt"
    path.write_bytes(b"-" * (1024 * 1024 + 1))
    return path


def _garbage(tmp_path: Path) -> Path:
    path = tmp_path / "garbage.pem"
    path.write_bytes(b"-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n")
    return path


def _encrypted_key(tmp_path: Path) -> Path:
    path = tmp_path / "encrypted.key"
    key = ec.generate_private_key(ec.SECP256R1())
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        )
    )
    return path


@pytest.mark.parametrize(
    ("files", "problem"),
    [
        (lambda c, s, t: {"ca": t / "missing.crt"}, r"GRPC_TLS_CA_FILE '.*missing.crt' cannot be read"),
        (lambda c, s, t: {"cert": t}, r"GRPC_TLS_CERT_FILE '.*' cannot be read: Is a directory"),
        (lambda c, s, t: {"ca": "/dev/zero"}, r"GRPC_TLS_CA_FILE '/dev/zero' is larger than 1048576 bytes"),
        (lambda c, s, t: {"ca": _oversized(t)}, r"GRPC_TLS_CA_FILE '.*' is larger than"),
        (lambda c, s, t: {"ca": _garbage(t)}, "GRPC_TLS_CA_FILE holds no PEM certificate"),
        (lambda c, s, t: {"cert": c / "account" / "tls.key"}, "GRPC_TLS_CERT_FILE holds no PEM certificate"),
        (lambda c, s, t: {"key": c / "account" / "tls.crt"}, "GRPC_TLS_KEY_FILE holds no PEM private key"),
        (lambda c, s, t: {"key": _encrypted_key(t)}, "GRPC_TLS_KEY_FILE is encrypted"),
        (
            lambda c, s, t: {"key": c / "gateway" / "tls.key"},
            "GRPC_TLS_KEY_FILE is not the key of the certificate in GRPC_TLS_CERT_FILE",
        ),
        (
            lambda c, s, t: {"cert": s / "account" / "tls.crt", "key": s / "account" / "tls.key"},
            "the certificate in GRPC_TLS_CERT_FILE was not issued by the CA in GRPC_TLS_CA_FILE",
        ),
        (lambda c, s, t: _expired(c, t), "the certificate in GRPC_TLS_CERT_FILE expired on "),
    ],
)
def test_files_that_cannot_serve_are_refused_with_the_setting_they_came_from(
    certs, stranger, tmp_path, files, problem
):
    with pytest.raises(GrpcTlsError, match=problem):
        load_grpc_tls(named(certs / "account", **files(certs, stranger, tmp_path)))


def _expired(certs: Path, tmp_path: Path) -> dict[str, Path]:
    """A certificate the platform's CA issued that expired yesterday, with its key."""
    authority = x509.load_pem_x509_certificate((certs / "ca.crt").read_bytes())
    authority_key = serialization.load_pem_private_key((certs / "ca.key").read_bytes(), password=None)
    assert isinstance(authority_key, ec.EllipticCurvePrivateKey)
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "account")]))
        .issuer_name(authority.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=30))
        .not_valid_after(now - datetime.timedelta(days=1))
        .sign(authority_key, hashes.SHA256())
    )
    (tmp_path / "expired.crt").write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "expired.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return {"cert": tmp_path / "expired.crt", "key": tmp_path / "expired.key"}


def test_a_service_with_tls_files_that_cannot_serve_refuses_to_start(tmp_path):
    settings = ServiceSettings(grpc_tls_enabled=True, grpc_tls_ca_file=str(tmp_path / "none.crt"))

    with pytest.raises(
        SystemExit, match="catalog refuses to start: GRPC_TLS_ENABLED needs GRPC_TLS_CERT_FILE"
    ):
        ServiceRuntime(settings, "catalog")


def test_the_gateway_with_tls_files_that_cannot_serve_refuses_to_start(certs, tmp_path):
    settings = GatewaySettings(
        grpc_tls_enabled=True,
        grpc_tls_ca_file=str(tmp_path / "none.crt"),
        grpc_tls_cert_file=str(certs / "gateway" / "tls.crt"),
        grpc_tls_key_file=str(certs / "gateway" / "tls.key"),
    )

    with pytest.raises(
        SystemExit, match=r"gateway refuses to start: GRPC_TLS_CA_FILE '.*none.crt' cannot be read"
    ):
        create_app(settings)


# -- ecommerce gen-certs --------------------------------------------------------------------------


def test_gen_certs_writes_a_ca_and_a_certificate_per_process_named_for_its_service(tmp_path, capsys):
    main(["gen-certs", "--namespace", "shop", str(tmp_path / "tls")])
    out = capsys.readouterr().out

    authority = x509.load_pem_x509_certificate((tmp_path / "tls" / "ca.crt").read_bytes())
    for name in PROCESSES:
        folder = tmp_path / "tls" / name
        assert sorted(p.name for p in folder.iterdir()) == ["ca.crt", "tls.crt", "tls.key"]
        assert stat.S_IMODE((folder / "tls.key").stat().st_mode) == 0o600
        assert load_grpc_tls(named(folder)) is not None  # key, CA and dates agree
        certificate = x509.load_pem_x509_certificate((folder / "tls.crt").read_bytes())
        certificate.verify_directly_issued_by(authority)
        names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert names.get_values_for_type(x509.DNSName) == [
            name,
            f"{name}.shop",
            f"{name}.shop.svc",
            f"{name}.shop.svc.cluster.local",
            "localhost",
        ]
        assert ipaddress.ip_address("127.0.0.1") in names.get_values_for_type(x509.IPAddress)
        usages = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        assert set(usages) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
        assert f"kubectl -n shop create secret generic grpc-tls-{name} --from-file={folder}" in out
    assert stat.S_IMODE((tmp_path / "tls" / "ca.key").stat().st_mode) == 0o600


def test_gen_certs_again_keeps_the_ca_and_renews_the_certificates(tmp_path):
    generate(tmp_path, names=["order"])
    ca, certificate = (tmp_path / "ca.crt").read_bytes(), (tmp_path / "order" / "tls.crt").read_bytes()

    generate(tmp_path, names=["order"])

    assert (tmp_path / "ca.crt").read_bytes() == ca
    assert (tmp_path / "order" / "tls.crt").read_bytes() != certificate
    assert load_grpc_tls(named(tmp_path / "order")) is not None


def test_gen_certs_refuses_a_folder_with_half_an_authority_and_changes_nothing(tmp_path):
    generate(tmp_path, names=["order"])
    (tmp_path / "ca.key").unlink()
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}

    with pytest.raises(SystemExit, match=r"holds only one of ca\.crt and ca\.key"):
        main(["gen-certs", str(tmp_path)])

    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        ({"namespace": "Shop_1"}, "is not a Kubernetes namespace"),
        ({"namespace": "a" * 64}, "is not a Kubernetes namespace"),
        ({"cluster_domain": "cluster..local"}, "is not a DNS domain"),
        ({"cluster_domain": "x" * 254}, "is not a DNS domain"),
        ({"days": 0}, "days must be from 1 to 3650"),
        ({"days": 3651}, "days must be from 1 to 3650"),
        ({"names": ["../escape"]}, "each name is a DNS label"),
        ({"names": []}, "each name is a DNS label"),
    ],
)
def test_gen_certs_refuses_bad_options_before_writing_anything(tmp_path, options, problem):
    with pytest.raises(CertificateError, match=problem):
        generate(tmp_path / "out", **options)

    assert not (tmp_path / "out").exists()


def test_gen_certs_refuses_a_file_as_its_folder(tmp_path):
    (tmp_path / "file").write_text("mine")

    with pytest.raises(SystemExit, match="is not a folder"):
        main(["gen-certs", str(tmp_path / "file")])

    assert (tmp_path / "file").read_text() == "mine"


# -- ecommerce dev --grpc-tls ---------------------------------------------------------------------


def test_dev_with_grpc_tls_gives_every_process_its_own_certificate(tmp_path):
    generate(tmp_path / "tls")
    infra = Infrastructure(tmp_path)
    infra.postgres_url = "postgresql://postgres@127.0.0.1:5432/postgres"
    platform = Platform(infra, ["catalog"], replicas=2, grpc_tls_dir=tmp_path / "tls")

    for name, folder in (("catalog", "catalog"), ("catalog-2", "catalog"), ("gateway", "gateway")):
        env = platform.process_environment(name)
        assert {k: v for k, v in env.items() if k.startswith("GRPC_TLS_")} == {
            "GRPC_TLS_ENABLED": "true",
            "GRPC_TLS_CA_FILE": str(tmp_path / "tls" / folder / "ca.crt"),
            "GRPC_TLS_CERT_FILE": str(tmp_path / "tls" / folder / "tls.crt"),
            "GRPC_TLS_KEY_FILE": str(tmp_path / "tls" / folder / "tls.key"),
            # catalog's two replicas are dialled as one list of addresses
            "GRPC_TLS_SERVER_NAME": "localhost",
        }, name
    assert "GRPC_TLS_ENABLED" not in Platform(infra, ["catalog"]).process_environment("catalog")
