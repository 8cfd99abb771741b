"""Settings shared by every process. Each service subclasses `ServiceSettings` with its own prefix.

Infrastructure addresses are unprefixed so that one value serves every process
(`REDIS_URL`, `KAFKA_BOOTSTRAP_SERVERS`, `ACCOUNT_ADDR`); what belongs to one service is
prefixed with its name (`ACCOUNT_DATABASE_URL`, `CATALOG_GRPC_PORT`).
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

Environment = Literal["development", "test", "production"]
KafkaSecurityProtocol = Literal["PLAINTEXT", "SASL_PLAINTEXT", "SASL_SSL"]
KafkaSaslMechanism = Literal["SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN"]

MAX_TARGET_LENGTH = 2048
TARGET_SCHEMES = ("dns:", "ipv4:", "ipv6:", "unix:")


def grpc_target(address: str) -> str:
    """The gRPC target of a peer setting such as `CATALOG_ADDR`.

    One `host:port` is kept as it is; a comma-separated list of IP addresses with ports
    (`127.0.0.1:50052,127.0.0.1:50062`) becomes an `ipv4:` (or `ipv6:`) target over all of them;
    a target with its scheme (`dns:///catalog.shop.svc.cluster.local:50051`, `ipv4:...`) is kept.
    Raises ValueError for anything else: empty, blank parts, a missing or out-of-range port,
    host names in a list (use `dns:///` for names), whitespace or control characters.
    """
    if not address:
        raise ValueError("a gRPC address is required")
    if len(address) > MAX_TARGET_LENGTH:
        raise ValueError(f"a gRPC address has at most {MAX_TARGET_LENGTH} characters")
    if not address.isprintable() or any(c.isspace() for c in address):
        raise ValueError("a gRPC address has no spaces or control characters")
    if address.startswith(TARGET_SCHEMES):
        if address.rstrip("/").endswith(":") or address.split(":", 1)[1].strip("/") == "":
            raise ValueError(f"{address!r} names no address")
        return address
    parts = address.split(",")
    if len(parts) == 1:
        _split_host_port(address)
        return address
    hosts = [_split_host_port(part)[0] for part in parts]
    try:
        versions = {ipaddress.ip_address(host.strip("[]")).version for host in hosts}
    except ValueError:
        raise ValueError(
            f"{address!r}: a list of addresses takes IP addresses; use dns:///<name>:<port> for names"
        ) from None
    if len(versions) != 1:
        raise ValueError(f"{address!r}: a list of addresses is all IPv4 or all IPv6")
    return f"ipv{versions.pop()}:{address}"


def _split_host_port(address: str) -> tuple[str, int]:
    host, sep, port = address.rpartition(":")
    if not sep or not host or not (port.isascii() and port.isdigit()) or not 0 < int(port) <= 65535:
        raise ValueError(f"{address!r} is not host:port with a port from 1 to 65535")
    return host, int(port)


GrpcTarget = Annotated[str, AfterValidator(grpc_target)]


# A port to listen on; 0 lets the system pick a free one (as the tests do).
Port = Annotated[int, Field(ge=0, le=65535)]


def shared(name: str, *, default: Any = ..., **kwargs: Any) -> Any:
    """A field read from one unprefixed environment variable, whatever the class prefix."""
    return Field(default, validation_alias=AliasChoices(name, name.lower()), **kwargs)


class PlatformSettings(BaseSettings):
    """What every process of the platform reads."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    env: Environment = shared("ECOMMERCE_ENV", default="development")
    data_dir: Path = shared("ECOMMERCE_DATA_DIR", default=Path(".data"))
    log_level: str = shared("LOG_LEVEL", default="INFO")
    log_format: Literal["json", "console"] = shared("LOG_FORMAT", default="json")
    log_access: Literal["all", "errors", "off"] = shared(
        "LOG_ACCESS",
        default="all",
        description="Access lines (one per RPC and per GraphQL operation): all, only the failed ones "
        "(errors), or none (off). Errors of the code itself are logged whatever this says.",
    )

    redis_url: str = shared(
        "REDIS_URL",
        default="redis://127.0.0.1:6379/0",
        description="Security state: token denylist, login throttles, cost budgets, the persisted-query "
        "allowlist. Run it with `maxmemory-policy noeviction`: nothing here may be evicted.",
    )
    cache_redis_url: str = shared(
        "CACHE_REDIS_URL",
        default="",
        description="What may be evicted: the catalog cache and automatically persisted queries. Run it "
        "with `maxmemory-policy allkeys-lru`, apart from REDIS_URL; empty uses REDIS_URL.",
    )
    kafka_bootstrap_servers: str = shared("KAFKA_BOOTSTRAP_SERVERS", default="127.0.0.1:9092")
    # Tansu (the embedded broker) has no idempotent producer; real Kafka does, and we use it there.
    kafka_idempotent_producer: bool = shared("KAFKA_IDEMPOTENT_PRODUCER", default=False)
    kafka_topic_partitions: int = shared("KAFKA_TOPIC_PARTITIONS", default=3, ge=1, le=256)
    kafka_topic_replication_factor: int = shared("KAFKA_TOPIC_REPLICATION_FACTOR", default=1, ge=1, le=16)
    kafka_session_timeout_ms: int = shared(
        "KAFKA_SESSION_TIMEOUT_MS",
        default=10_000,
        ge=1_000,
        le=300_000,
        description="How long a consumer may go without a heartbeat before its group gives its partitions "
        "to the others. The embedded broker also holds a new member's join for half of it.",
    )

    # -- Kafka client authentication (docs/security.md, "The broker") ------------------------------
    # Every Kafka client of the platform is built from these by `servicekit.kafka.broker_access`.
    # In production KAFKA_SECURITY_PROTOCOL must be given: unset, a process refuses to start.
    kafka_security_protocol: KafkaSecurityProtocol = shared(
        "KAFKA_SECURITY_PROTOCOL",
        default="PLAINTEXT",
        description="PLAINTEXT (no authentication: the embedded broker), SASL_PLAINTEXT or SASL_SSL. "
        "Production refuses to start unless it is set; PLAINTEXT set there starts with a warning.",
    )
    kafka_sasl_mechanism: KafkaSaslMechanism = shared("KAFKA_SASL_MECHANISM", default="SCRAM-SHA-512")
    kafka_sasl_username: str = shared(
        "KAFKA_SASL_USERNAME", default="", max_length=256, description="This process's principal."
    )
    kafka_sasl_password: SecretStr = shared("KAFKA_SASL_PASSWORD", default=SecretStr(""))
    kafka_ssl_ca_file: Path | None = shared(
        "KAFKA_SSL_CA_FILE",
        default=None,
        description="PEM bundle that verifies the brokers' certificates with SASL_SSL; unset, the "
        "system's certificate authorities.",
    )

    @model_validator(mode="after")
    def _kafka_credentials_fit_the_protocol(self) -> PlatformSettings:
        sasl = self.kafka_security_protocol != "PLAINTEXT"
        if sasl and not (self.kafka_sasl_username and self.kafka_sasl_password.get_secret_value()):
            raise ValueError(
                f"KAFKA_SECURITY_PROTOCOL={self.kafka_security_protocol} needs KAFKA_SASL_USERNAME "
                "and KAFKA_SASL_PASSWORD"
            )
        if not sasl and (self.kafka_sasl_username or self.kafka_sasl_password.get_secret_value()):
            raise ValueError(
                "KAFKA_SASL_USERNAME or KAFKA_SASL_PASSWORD is set but KAFKA_SECURITY_PROTOCOL is "
                "PLAINTEXT, which would send no credentials: set SASL_PLAINTEXT or SASL_SSL"
            )
        if self.kafka_ssl_ca_file is not None and self.kafka_security_protocol != "SASL_SSL":
            raise ValueError("KAFKA_SSL_CA_FILE is only used with KAFKA_SECURITY_PROTOCOL=SASL_SSL")
        return self

    @property
    def kafka_security_chosen(self) -> bool:
        """Whether KAFKA_SECURITY_PROTOCOL was given rather than left to its default."""
        return "kafka_security_protocol" in self.model_fields_set

    # Traces are recorded and exported over OTLP only when this is set (servicekit.tracing).
    otel_exporter_otlp_endpoint: str = shared("OTEL_EXPORTER_OTLP_ENDPOINT", default="")

    jwt_issuer: str = shared("JWT_ISSUER", default="ecommerce-account")
    jwt_audience: str = shared("JWT_AUDIENCE", default="ecommerce")
    jwt_algorithms: tuple[str, ...] = shared("JWT_ALGORITHMS", default=("RS256",))

    account_addr: GrpcTarget = shared("ACCOUNT_ADDR", default="127.0.0.1:50051")
    catalog_addr: GrpcTarget = shared("CATALOG_ADDR", default="127.0.0.1:50052")
    order_addr: GrpcTarget = shared("ORDER_ADDR", default="127.0.0.1:50053")
    payment_addr: GrpcTarget = shared("PAYMENT_ADDR", default="127.0.0.1:50054")
    notification_addr: GrpcTarget = shared("NOTIFICATION_ADDR", default="127.0.0.1:50055")

    # -- gRPC over mutual TLS between the processes (servicekit.grpc_tls, docs/security.md) -----
    grpc_tls_enabled: bool = shared(
        "GRPC_TLS_ENABLED",
        default=False,
        description="Serve and call gRPC over mutual TLS only: a server takes no plaintext and only "
        "clients whose certificate the CA of GRPC_TLS_CA_FILE issued. Off by default (one machine); "
        "on in the production overlay.",
    )
    grpc_tls_ca_file: str = shared(
        "GRPC_TLS_CA_FILE", default="", description="PEM of the CA that issues every process's certificate."
    )
    grpc_tls_cert_file: str = shared(
        "GRPC_TLS_CERT_FILE",
        default="",
        description="PEM certificate (chain) this process serves and presents as a client.",
    )
    grpc_tls_key_file: str = shared(
        "GRPC_TLS_KEY_FILE", default="", description="PEM private key of GRPC_TLS_CERT_FILE, unencrypted."
    )
    grpc_tls_server_name: str = shared(
        "GRPC_TLS_SERVER_NAME",
        default="",
        max_length=253,
        pattern=r"^[A-Za-z0-9.:\-\[\]]*$",
        description="The name a client expects in every server's certificate, instead of the host it "
        "dials; empty: the host of each peer address.",
    )

    internal_service_token: str = shared(
        "INTERNAL_SERVICE_TOKEN",
        default="",
        description="Shared secret a service presents as `x-service-token` to call another service as "
        "itself (role SERVICE); empty disables it. `ecommerce dev` generates one per run; in "
        "production at least 32 random bytes, like CURSOR_SECRET.",
    )

    # -- account lifecycle: the links e-mailed to shoppers, and who may check out ---------------
    shop_url: str = shared(
        "SHOP_URL",
        default="http://127.0.0.1:8000",
        description="The shop's public address: password-reset and e-mail verification links start "
        "with it (`<SHOP_URL>/reset-password?token=...`, `<SHOP_URL>/verify-email?token=...`).",
    )
    account_require_email_verification: bool = shared(
        "ACCOUNT_REQUIRE_EMAIL_VERIFICATION",
        default=False,
        description="When true, `register` answers alike whether or not the e-mail is taken, and an "
        "account whose e-mail is not verified may sign in but not check out.",
    )

    cursor_secret: str = shared(
        "CURSOR_SECRET",
        default="development-cursor-secret",
        description="Signs page cursors; in production at least 32 random bytes (43 characters of "
        "URL-safe base64, or 64 hex digits).",
    )

    @property
    def production(self) -> bool:
        return self.env == "production"

    @property
    def cache_redis(self) -> str:
        """The URL of the evictable cache: CACHE_REDIS_URL, or REDIS_URL when it is not set."""
        return self.cache_redis_url or self.redis_url


class ServiceSettings(PlatformSettings):
    """What a gRPC service reads; subclasses set `env_prefix` to `<SERVICE>_`."""

    database_url: str = Field(
        "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres",
        description="SQLAlchemy URL of this service's own database (asyncpg driver).",
    )
    # Connections the pool keeps open; a burst may open a quarter more (`servicekit.db.create_engine`).
    database_pool_size: int = Field(20, ge=1, le=200)
    grpc_host: str = "127.0.0.1"
    grpc_port: Port = 0
    metrics_port: Port = 0
    grpc_shutdown_grace: float = Field(5.0, ge=0)
    grpc_max_connection_age: float | None = Field(
        None,
        gt=0,
        description="Seconds after which the server asks a client to reconnect (GOAWAY), so that "
        "clients resolve their target again and spread calls over replicas started since (a DNS "
        "target, as in Kubernetes). Unset (unbounded) by default: a list of addresses never changes.",
    )
    grpc_max_connection_age_grace: float = Field(
        15.0,
        ge=0,
        description="Seconds the calls in flight on such a connection have to finish; longer than the "
        "longest call (CreateOrder waits up to 10 s).",
    )
    outbox_poll_interval: float = Field(1.0, gt=0, description="Relay poll when no NOTIFY arrives.")
    consumer_max_attempts: int = Field(
        5, ge=1, description="Handler attempts for one message before it goes to the dead-letter topic."
    )


# 32 random bytes written in URL-safe base64 (the densest usual encoding) take 43 characters.
MIN_SECRET_CHARACTERS = 43
_PLACEHOLDERS = ("change-me", "changeme", "replace", "placeholder", "example", "development-cursor-secret")


def secret_problem(name: str, value: str) -> str | None:
    """Why `value` cannot be a production secret (a placeholder, too short, too uniform), or None."""
    lowered = value.lower()
    if any(placeholder in lowered for placeholder in _PLACEHOLDERS):
        return f"{name} is a placeholder"
    if len(value) < MIN_SECRET_CHARACTERS:
        return f"{name} must hold at least 32 random bytes ({MIN_SECRET_CHARACTERS} characters of URL-safe base64)"
    if len(set(value)) < 8:
        return f"{name} does not look random"
    return None


def production_secret_problems(settings: PlatformSettings) -> list[str]:
    """What stops a service from starting in production: CURSOR_SECRET must be a real secret, and
    INTERNAL_SERVICE_TOKEN too unless it is empty (calls between services as themselves off)."""
    if not settings.production:
        return []
    problems = [secret_problem("CURSOR_SECRET", settings.cursor_secret)]
    if settings.internal_service_token:
        problems.append(secret_problem("INTERNAL_SERVICE_TOKEN", settings.internal_service_token))
    return [problem for problem in problems if problem is not None]
