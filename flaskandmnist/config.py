"""Configuration in one place, read from the environment.

Every tunable of the service lives in :class:`Settings`; nothing else reads ``os.environ``.
"""

from __future__ import annotations

import os
import re
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from limits import parse_many

PACKAGE_DIR = Path(__file__).resolve().parent
#: The trained model shipped with the package (weights) and its model card.
DEFAULT_MODEL_PATH = PACKAGE_DIR / "models" / "mnist_deep.weights.h5"


class ConfigError(ValueError):
    """An environment variable holds a value the service cannot use."""


def _raw(env: Mapping[str, str], name: str) -> str | None:
    """The variable's text, or None when it is unset or blank (meaning: use the default)."""
    raw = env.get(name)
    return None if raw is None or not raw.strip() else raw


def _int(env: Mapping[str, str], name: str, default: int, minimum: int = 0) -> int:
    if (raw := _raw(env, name)) is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name} must be >= {minimum}, got {value}")
    return value


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    if (raw := _raw(env, name)) is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from None
    if value <= 0:
        raise ConfigError(f"{name} must be positive, got {value}")
    return value


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    if (raw := _raw(env, name)) is None:
        return default
    lowered = raw.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ConfigError(f"{name} must be true or false, got {raw!r}")


def _list(env: Mapping[str, str], name: str, default: tuple[str, ...]) -> tuple[str, ...]:
    if (raw := _raw(env, name)) is None:
        return default
    return tuple(part.strip() for part in raw.split(",") if part.strip())


#: Consistency level names the driver knows (cassandra.ConsistencyLevel).
CONSISTENCY_LEVELS = frozenset(
    {"ANY", "ONE", "TWO", "THREE", "QUORUM", "ALL", "LOCAL_QUORUM", "EACH_QUORUM", "LOCAL_ONE"}
)
#: "token_aware": DC-aware round robin that prefers the replicas of the row (the default);
#: "dc_aware": DC-aware round robin only; "round_robin": every node in turn, any DC.
LOAD_BALANCING_POLICIES = frozenset({"token_aware", "dc_aware", "round_robin"})
#: "default" retries reads/writes the driver deems safe; "fallthrough" never retries.
RETRY_POLICIES = frozenset({"default", "fallthrough"})
# Keyspace and data-centre names end up in CQL text (identifiers cannot be bound), so only
# plain names are accepted.
_KEYSPACE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,47}")
_DC_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def _choice(env: Mapping[str, str], name: str, default: str, choices: frozenset[str]) -> str:
    """The member of ``choices`` the variable names, compared case-insensitively."""
    raw = env.get(name) or default
    by_lower = {choice.lower(): choice for choice in choices}
    if (value := by_lower.get(raw.strip().lower())) is None:
        raise ConfigError(f"{name} must be one of {', '.join(sorted(choices))}, got {raw!r}")
    return value


def keyspace_name(value: str, name: str = "CASSANDRA_KEYSPACE") -> str:
    """``value`` if it is a plain CQL keyspace name, else :class:`ConfigError`."""
    if not _KEYSPACE_NAME.fullmatch(value):
        raise ConfigError(
            f"{name} must be a letter then up to 47 letters, digits or _, got {value!r}"
        )
    return value


def datacenter_factors(
    raw: str, name: str = "CASSANDRA_DATACENTERS"
) -> tuple[tuple[str, int], ...]:
    """Parses ``dc1:3,dc2:2`` into ``(("dc1", 3), ("dc2", 2))``."""
    factors = []
    for part in (p.strip() for p in raw.split(",")):
        if not part:
            continue
        dc, _, factor = part.rpartition(":")
        if not _DC_NAME.fullmatch(dc) or not factor.isdigit() or int(factor) < 1:
            raise ConfigError(f"{name} must look like dc1:3,dc2:2, got {raw!r}")
        factors.append((dc, int(factor)))
    return tuple(factors)


@dataclass(frozen=True)
class CassandraSettings:
    """How the storage module and csd.py reach Cassandra (``CASSANDRA_*`` variables)."""

    contact_points: tuple[str, ...] = ("127.0.0.1",)
    port: int = 9042
    keyspace: str = "flaskandmnist"
    username: str | None = None
    password: str | None = None
    #: Consistency level name as the driver spells it (ONE, LOCAL_QUORUM, QUORUM, ...).
    consistency: str = "LOCAL_QUORUM"
    #: Data centre the load-balancing policy prefers; None lets the driver pick the first seen.
    local_dc: str | None = None
    #: One of LOAD_BALANCING_POLICIES.
    load_balancing: str = "token_aware"
    #: One of RETRY_POLICIES.
    retry_policy: str = "default"
    connect_timeout_s: float = 10.0
    request_timeout_s: float = 10.0
    #: Milliseconds before a second attempt of a statement goes to the next replica
    #: (speculative execution); 0 turns it off. Well below the outbox's write deadline, so
    #: that a stalled coordinator is routed around before a request gives up on Cassandra.
    speculative_delay_ms: int = 300
    #: CQL native protocol version: 5 for Cassandra 4.0 and later, 4 for 3.x. Fixed rather
    #: than negotiated, which costs two failed handshakes and warnings on every connect.
    protocol_version: int = 5
    #: Keyspace replication when csd.py creates it: SimpleStrategy with this factor ...
    replication_factor: int = 1
    #: ... or, when given, NetworkTopologyStrategy with these (data centre, factor) pairs.
    datacenters: tuple[tuple[str, int], ...] = ()
    #: TLS to the nodes (their client_encryption_options enabled).
    ssl: bool = False
    #: PEM file of the CA(s) that signed the nodes' certificates; None trusts the system's CAs.
    ssl_ca_file: str | None = None
    #: Client certificate and key (PEM), for nodes that require one (require_client_auth);
    #: the key may also be in the certificate's file.
    ssl_cert_file: str | None = None
    ssl_key_file: str | None = None
    #: Whether a node's certificate must name the address the driver reaches it at.
    ssl_verify_hostname: bool = True

    def ssl_context(self) -> ssl.SSLContext | None:
        """The TLS context for connections to the nodes, or None without TLS.

        Certificates are always verified (against ``ssl_ca_file`` when given); raises
        OSError (ssl.SSLError included) when a file cannot be read or is not PEM.
        """
        if not self.ssl:
            return None
        context = ssl.create_default_context(cafile=self.ssl_ca_file)
        context.check_hostname = self.ssl_verify_hostname
        if self.ssl_cert_file:
            context.load_cert_chain(self.ssl_cert_file, self.ssl_key_file)
        return context

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> CassandraSettings:
        env = os.environ if env is None else env
        settings = cls(
            contact_points=_list(env, "CASSANDRA_CONTACT_POINTS", cls.contact_points),
            port=_int(env, "CASSANDRA_PORT", cls.port, minimum=1),
            keyspace=keyspace_name(env.get("CASSANDRA_KEYSPACE") or cls.keyspace),
            username=env.get("CASSANDRA_USERNAME") or None,
            password=env.get("CASSANDRA_PASSWORD") or None,
            consistency=_choice(env, "CASSANDRA_CONSISTENCY", cls.consistency, CONSISTENCY_LEVELS),
            local_dc=env.get("CASSANDRA_LOCAL_DC") or None,
            load_balancing=_choice(
                env, "CASSANDRA_LOAD_BALANCING", cls.load_balancing, LOAD_BALANCING_POLICIES
            ),
            retry_policy=_choice(env, "CASSANDRA_RETRY_POLICY", cls.retry_policy, RETRY_POLICIES),
            connect_timeout_s=_float(env, "CASSANDRA_CONNECT_TIMEOUT", cls.connect_timeout_s),
            request_timeout_s=_float(env, "CASSANDRA_REQUEST_TIMEOUT", cls.request_timeout_s),
            speculative_delay_ms=_int(
                env, "CASSANDRA_SPECULATIVE_DELAY_MS", cls.speculative_delay_ms
            ),
            protocol_version=_int(
                env, "CASSANDRA_PROTOCOL_VERSION", cls.protocol_version, minimum=3
            ),
            replication_factor=_int(
                env, "CASSANDRA_REPLICATION_FACTOR", cls.replication_factor, minimum=1
            ),
            datacenters=datacenter_factors(env.get("CASSANDRA_DATACENTERS") or ""),
            ssl=_bool(env, "CASSANDRA_SSL", cls.ssl),
            ssl_ca_file=env.get("CASSANDRA_SSL_CA_FILE") or None,
            ssl_cert_file=env.get("CASSANDRA_SSL_CERT_FILE") or None,
            ssl_key_file=env.get("CASSANDRA_SSL_KEY_FILE") or None,
            ssl_verify_hostname=_bool(
                env, "CASSANDRA_SSL_VERIFY_HOSTNAME", cls.ssl_verify_hostname
            ),
        )
        files = (settings.ssl_ca_file, settings.ssl_cert_file, settings.ssl_key_file)
        if not settings.ssl and any(files):
            # Files without the switch would mean a plain-text connection nobody meant.
            raise ConfigError("CASSANDRA_SSL_*_FILE is set but CASSANDRA_SSL is not")
        if settings.ssl_key_file and not settings.ssl_cert_file:
            raise ConfigError("CASSANDRA_SSL_KEY_FILE needs CASSANDRA_SSL_CERT_FILE")
        try:
            settings.ssl_context()  # bad files stop the start, not the first query
        except OSError as error:
            raise ConfigError(f"CASSANDRA_SSL files cannot be used: {error}") from None
        return settings


#: A folder of the user's that survives restarts (XDG's state directory), not the checkout.
DEFAULT_OUTBOX_DIR = Path.home() / ".local" / "state" / "flaskandmnist" / "outbox"


@dataclass(frozen=True)
class OutboxSettings:
    """Where predictions wait while Cassandra cannot take them, and how long a request waits
    for Cassandra (:mod:`flaskandmnist.recorder`)."""

    #: Whether a prediction Cassandra did not store in time is queued locally and answered;
    #: when off, it is answered 503 instead.
    enabled: bool = True
    #: Folder of the queue files (one SQLite file per process): a local disk that survives
    #: restarts, one folder per service (files are adopted by keyspace name).
    directory: Path = DEFAULT_OUTBOX_DIR
    #: Milliseconds a request waits for Cassandra to store its predictions before queueing.
    write_deadline_ms: int = 1000

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> OutboxSettings:
        env = os.environ if env is None else env
        return cls(
            enabled=_bool(env, "OUTBOX_ENABLED", cls.enabled),
            directory=Path(env.get("OUTBOX_DIR") or cls.directory),
            write_deadline_ms=_int(
                env, "CASSANDRA_WRITE_DEADLINE_MS", cls.write_deadline_ms, minimum=1
            ),
        )


@dataclass(frozen=True)
class MetricsSettings:
    """Prometheus metrics (:mod:`flaskandmnist.metrics`)."""

    #: Folder where prometheus_client's multiprocess mode keeps each process's values
    #: (``PROMETHEUS_MULTIPROC_DIR``, which prometheus_client also reads when imported);
    #: gunicorn_conf makes a temporary one when unset. None: one process, nothing shared.
    multiproc_dir: Path | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> MetricsSettings:
        env = os.environ if env is None else env
        folder = _raw(env, "PROMETHEUS_MULTIPROC_DIR")
        return cls(multiproc_dir=Path(folder) if folder else None)


@dataclass(frozen=True)
class WebSettings:
    """The web service and its gunicorn server (``WEB_*`` and a few conventional names)."""

    #: Address and port gunicorn listens on (``WEB_HOST``, ``PORT``).
    host: str = "0.0.0.0"
    port: int = 5000
    #: gunicorn worker processes (each loads the model) and threads per worker.
    workers: int = 2
    threads: int = 8
    #: Seconds a worker may stay silent before gunicorn restarts it.
    timeout_s: int = 30
    #: Signs sessions and CSRF tokens; must be the same in every worker and replica. When
    #: unset, a random key is made per process (fine for one worker, logged as a warning).
    secret_key: str | None = None
    #: Predictions per page in the history and the listing API.
    page_size: int = 24
    #: Most images in one batch request.
    max_batch_images: int = 16
    #: Largest request body in bytes (a base64 JSON body is 4/3 of the image).
    max_request_bytes: int = 16 * 1024 * 1024

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> WebSettings:
        env = os.environ if env is None else env
        return cls(
            host=env.get("WEB_HOST") or cls.host,
            port=_int(env, "PORT", cls.port, minimum=1),
            workers=_int(env, "WEB_WORKERS", cls.workers, minimum=1),
            threads=_int(env, "WEB_THREADS", cls.threads, minimum=1),
            timeout_s=_int(env, "WEB_TIMEOUT", cls.timeout_s, minimum=1),
            secret_key=env.get("SECRET_KEY") or None,
            page_size=_int(env, "HISTORY_PAGE_SIZE", cls.page_size, minimum=1),
            max_batch_images=_int(env, "MAX_BATCH_IMAGES", cls.max_batch_images, minimum=1),
            max_request_bytes=_int(env, "MAX_REQUEST_BYTES", cls.max_request_bytes, minimum=1),
        )


#: werkzeug.security.generate_password_hash's format: method$salt$hex digest.
_PASSWORD_HASH = re.compile(r"(scrypt|pbkdf2)[^$]*\$[^$]+\$[0-9a-f]+")


@dataclass(frozen=True)
class SecuritySettings:
    """Rate limiting, access to stored predictions and HTTPS headers
    (:mod:`flaskandmnist.web.security`)."""

    #: Posts (predictions, corrections) per client address, in flask-limiter's notation
    #: ("120/minute", "10/second;1000/day"); "" (``RATE_LIMIT=off``) counts nothing.
    rate_limit: str = "120/minute"
    #: Where the counts are kept: memory:// is per process; redis://host:6379 is shared.
    rate_limit_storage_uri: str = "memory://"
    #: How many proxies in front append to X-Forwarded-For; 0 believes no such header, so
    #: that a client cannot choose the address it is counted under.
    trust_proxy: int = 0
    #: With a username, stored predictions (history, records, images, corrections) need HTTP
    #: Basic authentication with it and the password, or a password matching the hash
    #: (werkzeug.security.generate_password_hash).
    auth_username: str | None = None
    auth_password: str | None = None
    auth_password_hash: str | None = None
    #: Strict-Transport-Security max-age in seconds; 0 sends none (for HTTPS deployments).
    hsts_seconds: int = 0

    @property
    def auth_required(self) -> bool:
        return self.auth_username is not None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> SecuritySettings:
        env = os.environ if env is None else env
        rate_limit = (_raw(env, "RATE_LIMIT") or cls.rate_limit).strip()
        if rate_limit.lower() == "off":
            rate_limit = ""
        elif not _is_rate_limit(rate_limit):
            raise ConfigError(f"RATE_LIMIT must look like 120/minute or off, got {rate_limit!r}")
        settings = cls(
            rate_limit=rate_limit,
            rate_limit_storage_uri=env.get("RATE_LIMIT_STORAGE_URI") or cls.rate_limit_storage_uri,
            trust_proxy=_int(env, "TRUST_PROXY", cls.trust_proxy),
            auth_username=env.get("AUTH_USERNAME") or None,
            auth_password=env.get("AUTH_PASSWORD") or None,
            auth_password_hash=env.get("AUTH_PASSWORD_HASH") or None,
            hsts_seconds=_int(env, "HSTS_SECONDS", cls.hsts_seconds),
        )
        password, password_hash = settings.auth_password, settings.auth_password_hash
        if password and password_hash:
            raise ConfigError("set AUTH_PASSWORD or AUTH_PASSWORD_HASH, not both")
        if settings.auth_required != bool(password or password_hash):
            raise ConfigError("AUTH_USERNAME and AUTH_PASSWORD (or _HASH) go together")
        if password_hash and not _PASSWORD_HASH.fullmatch(password_hash):
            raise ConfigError(
                "AUTH_PASSWORD_HASH must come from werkzeug.security.generate_password_hash"
            )
        return settings


def _is_rate_limit(text: str) -> bool:
    try:
        return bool(parse_many(text))
    except ValueError:
        return False


@dataclass(frozen=True)
class Settings:
    """All settings of the service; build with :meth:`from_env`."""

    #: Folder with the four MNIST IDX files (gzipped or raw).
    mnist_dir: Path = Path("data/mnist")
    #: Whether a missing MNIST folder may be fetched from a public mirror (needs internet).
    mnist_download: bool = False
    #: Weights of the trained model; its model card sits beside it as ``<stem>.json``.
    model_path: Path = DEFAULT_MODEL_PATH
    #: Largest accepted image in pixels (width x height), checked before decoding.
    max_image_pixels: int = 40_000_000
    #: Largest accepted image file in bytes.
    max_image_bytes: int = 10 * 1024 * 1024
    cassandra: CassandraSettings = field(default_factory=CassandraSettings)
    web: WebSettings = field(default_factory=WebSettings)
    security: SecuritySettings = field(default_factory=SecuritySettings)
    outbox: OutboxSettings = field(default_factory=OutboxSettings)
    metrics: MetricsSettings = field(default_factory=MetricsSettings)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        return cls(
            mnist_dir=Path(env.get("MNIST_DIR") or cls.mnist_dir),
            mnist_download=_bool(env, "MNIST_DOWNLOAD", cls.mnist_download),
            model_path=Path(env.get("MODEL_PATH") or cls.model_path),
            max_image_pixels=_int(env, "MAX_IMAGE_PIXELS", cls.max_image_pixels, minimum=1),
            max_image_bytes=_int(env, "MAX_IMAGE_BYTES", cls.max_image_bytes, minimum=1),
            cassandra=CassandraSettings.from_env(env),
            web=WebSettings.from_env(env),
            security=SecuritySettings.from_env(env),
            outbox=OutboxSettings.from_env(env),
            metrics=MetricsSettings.from_env(env),
        )
