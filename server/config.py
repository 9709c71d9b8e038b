"""Server configuration: frozen dataclasses built from a TOML file plus environment overrides.

Only the entry point (:mod:`server.cli`) calls :func:`load_config`; everything else receives the
resulting :class:`Config`. Unknown keys, in the file or in the environment, are errors that name the
key: a misspelt setting must never be silently ignored.

Environment overrides have the form ``VNEGOV__<SECTION>__<KEY>=value``, e.g.
``VNEGOV__STORAGE__URL=postgresql+psycopg://...`` or ``VNEGOV__SERVER__GRPC_PORT=50052``; the value
is parsed as the setting's type (integers, ``true``/``false``, comma-separated lists).
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import tomllib
import types
import typing
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

__all__ = [
    "AuthConfig",
    "CallerPermission",
    "Config",
    "ConfigError",
    "GrpcLimits",
    "HttpLimits",
    "LimitsConfig",
    "LoggingConfig",
    "RouteClassLimits",
    "SecretsConfig",
    "ServerConfig",
    "StorageConfig",
    "TelemetryConfig",
    "TlsConfig",
    "build_section",
    "load_config",
    "parse_bool",
    "parse_float",
    "parse_int",
]

ENV_PREFIX = "VNEGOV__"


class ConfigError(ValueError):
    """The configuration is invalid; the message names the offending key."""

    def __init__(self, message: str, key: str = "") -> None:
        super().__init__(message)
        self.key = key


@dataclass(frozen=True, slots=True)
class ServerConfig:
    grpc_host: str = "127.0.0.1"
    grpc_port: int = 50051
    http_host: str = "127.0.0.1"
    http_port: int = 8080
    # Base URL under which the HTTP front is reachable (CRL/OCSP/issuer URLs, OIDC issuer, links).
    public_url: str = "http://127.0.0.1:8080"
    # Serve gRPC without TLS. For local development only; the server logs a warning at start.
    plaintext: bool = False
    shutdown_grace_seconds: float = 30.0
    # With a balancer listener: how long a stopping replica keeps serving after its /readyz
    # turned 503, before it refuses new calls (longer than the balancer's check interval:
    # deploy/haproxy/vnegov.cfg checks every 500 ms).
    shutdown_drain_seconds: float = 1.5
    worker_threads: int = 16
    # "uvloop" (libuv: about a fifth more cached OCSP answers per core over HTTP) or "asyncio"
    # (the standard library's loop).
    event_loop: str = "uvloop"
    # Proxies and balancers (addresses or networks, e.g. "10.0.0.0/8") whose X-Forwarded-For the
    # HTTP front believes. Empty (the default): the header is ignored and the TCP peer is the
    # client (server/http/client.py).
    trusted_proxies: tuple[str, ...] = ()
    # Processes serving the same ports on this host (server/workers.py): 1 serves in-process.
    workers: int = 1
    # Durable jobs (server/jobs): a job whose owner stops heartbeating for this long is resumed
    # by another process; idle processes look for due jobs this often.
    job_lease_seconds: float = 30.0
    job_poll_seconds: float = 2.0
    # The production front door (deploy/haproxy): a gRPC listener (HTTP/2 without TLS) for the
    # balancer only, "unix:/run/vnegov/grpc.sock" (reached by the balancer's group) or
    # "host:port" (then only the addresses in balancer_peers may call on it). Calls there carry
    # the client certificate the balancer verified in RFC 9440 Client-Cert headers, which are
    # read on this listener and nowhere else (server/auth/forwarded.py). Empty: no such listener.
    # With server.workers > 1 a Unix socket gets the worker's index appended (SOCKET.0, ...).
    balancer_listen: str = ""
    balancer_peers: tuple[str, ...] = ()
    # Balancers that pass TLS through (TCP mode) and announce the client's address with the
    # PROXY protocol v2: connections from these addresses on the gRPC port must begin with a
    # PROXY v2 header; connections from anywhere else must not. Empty: PROXY protocol off.
    proxy_protocol_from: tuple[str, ...] = ()
    # The admin listener (HTTP: /metrics, /healthz, /readyz), kept off the public port. -1: no
    # admin listener, and /metrics stays on the public HTTP port (development).
    admin_host: str = "127.0.0.1"
    admin_port: int = -1

    def __post_init__(self) -> None:
        if self.workers < 1 or self.workers > 256:
            raise ConfigError("server.workers must be between 1 and 256", "server.workers")
        if self.job_lease_seconds < 1 or self.job_poll_seconds <= 0:
            raise ConfigError("server.job_lease_seconds must be at least 1 and "
                              "server.job_poll_seconds positive", "server.job_lease_seconds")
        if self.event_loop not in {"uvloop", "asyncio"}:
            raise ConfigError("server.event_loop must be 'uvloop' or 'asyncio', not "
                              f"{self.event_loop!r}", "server.event_loop")
        from server.http.client import TrustedProxies

        try:
            TrustedProxies(self.trusted_proxies)
        except ValueError as exc:
            raise ConfigError(f"server.trusted_proxies: {exc}", "server.trusted_proxies") from None
        for key in ("balancer_peers", "proxy_protocol_from"):
            try:
                TrustedProxies(getattr(self, key))
            except ValueError as exc:
                raise ConfigError(f"server.{key}: {exc}", f"server.{key}") from None
        listen = self.balancer_listen
        if listen and not listen.startswith("unix:"):
            host, sep, port = listen.rpartition(":")
            if not sep or not host or not port.isdigit():
                raise ConfigError("server.balancer_listen must be 'unix:<path>' or "
                                  f"'<host>:<port>', not {listen!r}", "server.balancer_listen")
            if not self.balancer_peers:
                raise ConfigError("server.balancer_listen on a TCP address needs "
                                  "server.balancer_peers (the balancer's addresses)",
                                  "server.balancer_peers")


@dataclass(frozen=True, slots=True)
class RouteClassLimits:
    """Limits of one class of HTTP routes (server/http/limits.py)."""

    body_bytes: int = 64 * 1024
    # Requests per second per client address (0: not limited), and the burst allowed above it.
    rate_per_second: float = 0.0
    burst: int = 0

    def __post_init__(self) -> None:
        if self.body_bytes < 0 or self.rate_per_second < 0 or self.burst < 0:
            raise ConfigError("limits.http: body_bytes, rate_per_second and burst must not be "
                              "negative")


@dataclass(frozen=True, slots=True)
class HttpLimits:
    """What the HTTP front accepts before a route runs (docs/operations.md, "Limits")."""

    max_head_bytes: int = 16 * 1024  # request line and headers: 431 above
    max_headers: int = 64  # header fields: 431 above
    max_url_bytes: int = 8 * 1024  # request target: 414 above
    head_timeout_seconds: float = 10.0  # to send the request head: 408 after
    body_timeout_seconds: float = 10.0  # between two pieces of a body: 408 after
    max_connections: int = 2048  # open connections and running requests: 503 above
    rate_limit_clients: int = 65536  # client addresses remembered per route class
    callback: RouteClassLimits = field(
        default_factory=lambda: RouteClassLimits(8 * 1024, 100.0, 200))
    ocsp: RouteClassLimits = field(default_factory=lambda: RouteClassLimits(8 * 1024, 500.0, 1000))
    tsa: RouteClassLimits = field(default_factory=lambda: RouteClassLimits(8 * 1024, 50.0, 100))
    pki_public: RouteClassLimits = field(default_factory=lambda: RouteClassLimits(1024))
    receipt_lookup: RouteClassLimits = field(
        default_factory=lambda: RouteClassLimits(1024, 20.0, 100))
    login: RouteClassLimits = field(default_factory=lambda: RouteClassLimits(16 * 1024, 20.0, 100))
    protocol: RouteClassLimits = field(default_factory=lambda: RouteClassLimits(64 * 1024))
    app: RouteClassLimits = field(default_factory=lambda: RouteClassLimits(16 * 1024))
    public: RouteClassLimits = field(default_factory=lambda: RouteClassLimits(1024))
    operations: RouteClassLimits = field(default_factory=lambda: RouteClassLimits(1024))
    default: RouteClassLimits = field(default_factory=lambda: RouteClassLimits(64 * 1024))

    def classes(self) -> dict[str, RouteClassLimits]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if isinstance(getattr(self, f.name), RouteClassLimits)}

    def per_worker(self, workers: int) -> HttpLimits:
        """The limits one of ``workers`` processes sharing the port enforces: rates and bursts
        per client address are divided among them (the kernel spreads a client's connections
        over the workers), so the host as a whole allows what is configured."""
        if workers <= 1:
            return self
        shares: dict[str, Any] = {
            name: dataclasses.replace(
                c, rate_per_second=c.rate_per_second / workers,
                burst=max(1, c.burst // workers) if c.burst else 0)
            for name, c in self.classes().items()}
        return dataclasses.replace(self, **shares)


@dataclass(frozen=True, slots=True)
class GrpcLimits:
    """What the gRPC server accepts (docs/operations.md, "Limits")."""

    # Largest request message per method class (server/rpc/limits.py): over it, the call is
    # INVALID_ARGUMENT (MESSAGE_TOO_LARGE) before the message is parsed.
    max_message_bytes: int = 1 << 20
    max_document_message_bytes: int = (4 << 20) + (1 << 20)  # a 4 MiB chunk and its header
    max_bulk_message_bytes: int = 16 << 20  # statements and channel lists
    max_concurrent_streams: int = 256  # per connection (a client may open many before it hears this)
    max_metadata_bytes: int = 16 * 1024
    # The server pings a connection idle this long, and drops it when no answer comes in time.
    keepalive_time_seconds: float = 120.0
    keepalive_timeout_seconds: float = 20.0
    # A client pinging more often than this (without calls in flight) is told to calm down
    # (GOAWAY ENHANCE_YOUR_CALM) after max_ping_strikes such pings.
    min_ping_interval_seconds: float = 60.0
    max_ping_strikes: int = 2
    # Check every request against its .proto constraints (protovalidate). Off only to measure
    # what the checks cost (benchmarks/server_grpc.py).
    validate_requests: bool = True


@dataclass(frozen=True, slots=True)
class LimitsConfig:
    http: HttpLimits = field(default_factory=HttpLimits)
    grpc: GrpcLimits = field(default_factory=GrpcLimits)


@dataclass(frozen=True, slots=True)
class TlsConfig:
    cert_file: str = ""  # server certificate chain (PEM: leaf first)
    key_file: str = ""  # server private key (PEM, PKCS#8, may be encrypted)
    key_passphrase_file: str = ""
    # Trust anchors for client certificates (PEM, one or more roots) and the intermediates a
    # client may omit from its handshake.
    client_ca_files: tuple[str, ...] = ()
    client_intermediate_files: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class StorageConfig:
    url: str = ""
    pool_size: int = 10
    echo: bool = False


@dataclass(frozen=True, slots=True)
class PkiConfig:
    """Where the embedded deployment keeps its CA keys (encrypted PKCS#8) and certificates."""

    directory: str = ""
    key_passphrase_file: str = ""


@dataclass(frozen=True, slots=True)
class SecretsConfig:
    """The master key that seals secrets kept in the database (``server.sealing``)."""

    key_file: str = ""


@dataclass(frozen=True, slots=True)
class LoggingConfig:
    level: str = "INFO"
    format: str = "json"  # "json" or "text"

    def __post_init__(self) -> None:
        if self.format not in {"json", "text"}:
            raise ConfigError(f"logging.format must be 'json' or 'text', not {self.format!r}")


@dataclass(frozen=True, slots=True)
class TelemetryConfig:
    # OTLP over HTTP, e.g. "http://otel-collector:4318/v1/traces". Empty: no traces.
    otlp_endpoint: str = ""
    service_name: str = "vnegov"
    # The share of traces started here that are kept (a caller's sampled traceparent is
    # always followed).
    sample_ratio: float = 1.0
    # Extra OTLP headers, "key=value" each (e.g. an API key of the collector).
    otlp_headers: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not 0.0 <= self.sample_ratio <= 1.0:
            raise ConfigError("telemetry.sample_ratio must be between 0 and 1",
                              "telemetry.sample_ratio")
        if self.otlp_endpoint and not self.otlp_endpoint.startswith(("http://", "https://")):
            raise ConfigError("telemetry.otlp_endpoint must be an http(s) URL",
                              "telemetry.otlp_endpoint")
        for header in self.otlp_headers:
            if "=" not in header:
                raise ConfigError("telemetry.otlp_headers entries are key=value",
                                  "telemetry.otlp_headers")


@dataclass(frozen=True, slots=True)
class CallerPermission:
    """One row of the permissions table: which callers get which scopes in which provinces.

    A caller matches when its certificate's agency code equals ``agency_code`` and, if ``name`` is
    set, its certificate's common name equals ``name``. ``provinces`` lists 2-digit province codes,
    or ``["*"]`` for every province (the national portal).
    """

    agency_code: str
    name: str = ""
    scopes: tuple[str, ...] = ()
    provinces: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class AuthConfig:
    callers: tuple[CallerPermission, ...] = ()
    # In plaintext mode every call is made as this caller (agency code of a permissions row).
    plaintext_caller: str = ""


@dataclass(frozen=True, slots=True)
class Config:
    data_dir: str = ""
    server: ServerConfig = field(default_factory=ServerConfig)
    tls: TlsConfig = field(default_factory=TlsConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)
    pki: PkiConfig = field(default_factory=PkiConfig)
    secrets: SecretsConfig = field(default_factory=SecretsConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    auth: AuthConfig = field(default_factory=AuthConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    telemetry: TelemetryConfig = field(default_factory=TelemetryConfig)
    # Sections of the domain packages; each is validated by its own from_config when it is wired.
    extensions: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    @classmethod
    def from_config(cls, data: Mapping[str, Any], *, base_dir: Path | None = None) -> Config:
        return _build(cls, data, "", base_dir or Path.cwd())

    def path(self, value: str) -> Path:
        """A path from the configuration (already absolute after loading)."""
        return Path(value)


T = TypeVar("T")

# Settings whose values are file-system paths, resolved against the configuration file's directory.
_PATH_FIELDS = frozenset({
    "data_dir", "cert_file", "key_file", "key_passphrase_file", "client_ca_files",
    "client_intermediate_files", "directory",
})
# Sections that belong to domain packages and are passed through (validated where wired).
EXTENSION_SECTIONS = frozenset({"identity", "ca", "documents", "payments"})


def build_section(cls: type[T], data: Any, name: str, *, base_dir: Path,
                  paths: Collection[str] = ()) -> T:
    """Build a module's ``[name]`` section into the frozen dataclass ``cls`` the way the core
    configuration is built: unknown keys (at any depth) are errors naming the key; values are
    converted to the field's type (environment overrides arrive as strings); fields named in
    ``paths`` are resolved against ``base_dir`` (the data directory)."""
    return _build(cls, data, name + ".", base_dir, frozenset(paths))


def _default(field_: dataclasses.Field[Any]) -> Any:
    if field_.default is not dataclasses.MISSING:
        return field_.default
    if field_.default_factory is not dataclasses.MISSING:
        return field_.default_factory()
    return None


def _build(cls: type[T], data: Mapping[str, Any], prefix: str, base_dir: Path,
           paths: frozenset[str] = _PATH_FIELDS, base: Any = None) -> T:
    """``cls`` from ``data``; keys ``data`` leaves out keep their values in ``base`` (the field's
    default, for a nested section whose defaults differ from its class's, such as the limits of
    each route class) or the class's defaults."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{prefix.rstrip('.') or 'configuration'} must be a table",
                          prefix.rstrip("."))
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    kwargs: dict[str, Any] = {}
    extensions: dict[str, Any] = {}
    for key, value in data.items():
        if cls is Config and key in EXTENSION_SECTIONS:
            extensions[key] = value
            continue
        if not isinstance(key, str) or key not in fields or key == "extensions":
            raise ConfigError(f"unknown configuration key '{prefix}{key}'", f"{prefix}{key}")
        nested = _default(fields[key]) if dataclasses.is_dataclass(hints[key]) else None
        kwargs[key] = _convert(hints[key], value, f"{prefix}{key}", base_dir, paths,
                               base=nested)
    if cls is Config:
        kwargs["extensions"] = extensions
    try:
        if base is not None:
            return dataclasses.replace(base, **kwargs)  # type: ignore[no-any-return]
        return cls(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"{prefix.rstrip('.') or 'configuration'}: {exc}",
                          prefix.rstrip(".")) from None


def _convert(tp: Any, value: Any, key: str, base_dir: Path, paths: frozenset[str],
             name: str | None = None, base: Any = None) -> Any:
    name = name or key.rsplit(".", 1)[-1]
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, key + ".", base_dir, paths, base)  # type: ignore[arg-type]
    if origin is tuple:
        (item_tp, _ellipsis) = typing.get_args(tp)
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, list | tuple):
            raise ConfigError(f"configuration key {key!r} must be a list", key)
        return tuple(_convert(item_tp, v, f"{key}[{i}]", base_dir, paths, name)
                     for i, v in enumerate(value))
    if tp is Mapping or origin is Mapping:
        if not isinstance(value, Mapping):
            raise ConfigError(f"configuration key {key!r} must be a table", key)
        return value
    if origin in (types.UnionType, typing.Union):
        return value
    return _scalar(tp, value, key, name, base_dir, paths)


_INTEGER = re.compile(r"[+-]?[0-9]+")
_NUMBER = re.compile(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?")
_TRUE, _FALSE = frozenset({"true", "yes", "1"}), frozenset({"false", "no", "0"})


def parse_bool(value: Any, key: str) -> bool:
    """A boolean setting: TOML true/false, or (from the environment) one of true/false, yes/no,
    1/0 in any case. Anything else is an error naming the key."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
    raise ConfigError(f"configuration key {key!r} must be true or false, not {value!r}", key)


def parse_int(value: Any, key: str) -> int:
    """An integer setting: a TOML integer or a string of decimal digits (no fractions, no
    underscores, no booleans)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and _INTEGER.fullmatch(value.strip()):
        return int(value.strip())
    raise ConfigError(f"configuration key {key!r} must be an integer, not {value!r}", key)


def parse_float(value: Any, key: str) -> float:
    """A number setting: a TOML integer or float, or a decimal string; never NaN or infinite."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        number = float(value)
    elif isinstance(value, str) and _NUMBER.fullmatch(value.strip()):
        number = float(value.strip())
    else:
        raise ConfigError(f"configuration key {key!r} must be a number, not {value!r}", key)
    if not math.isfinite(number):
        raise ConfigError(f"configuration key {key!r} must be a finite number", key)
    return number


def _scalar(tp: Any, value: Any, key: str, name: str, base_dir: Path,
            paths: frozenset[str] = _PATH_FIELDS) -> Any:
    if tp is bool:
        return parse_bool(value, key)
    if tp is int:
        return parse_int(value, key)
    if tp is float:
        return parse_float(value, key)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"configuration key {key!r} must be a string", key)
        if name in paths and value:
            return str((base_dir / os.path.expanduser(value)).resolve())
        return value
    raise ConfigError(f"configuration key {key!r} has an unsupported type", key)  # pragma: no cover


def _apply_env(data: dict[str, Any], environ: Mapping[str, str]) -> dict[str, str]:
    """Merge overrides into ``data``; returns dotted key -> environment variable name."""
    sources: dict[str, str] = {}
    for env_key, value in environ.items():
        if not env_key.startswith(ENV_PREFIX):
            continue
        parts = [p.lower() for p in env_key[len(ENV_PREFIX):].split("__")]
        if not all(parts):
            raise ConfigError(f"malformed configuration override {env_key!r}")
        target = data
        for part in parts[:-1]:
            child = target.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"configuration override {env_key!r} does not name a setting")
            target = child
        target[parts[-1]] = value
        sources[".".join(parts)] = env_key
    return sources


def load_config(path: Path | None, environ: Mapping[str, str]) -> Config:
    """Read ``path`` (TOML; optional) and apply ``VNEGOV__...`` overrides from ``environ``."""
    data: dict[str, Any] = {}
    base_dir = Path.cwd()
    if path is not None:
        try:
            with path.open("rb") as fh:
                data = tomllib.load(fh)
        except FileNotFoundError:
            raise ConfigError(f"configuration file {path} does not exist") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"configuration file {path} is not valid TOML: {exc}") from None
        base_dir = path.parent.resolve()
    sources = _apply_env(data, environ)
    try:
        config = Config.from_config(data, base_dir=base_dir)
    except ConfigError as exc:
        if exc.key in sources:
            raise ConfigError(f"{exc} (from environment variable {sources[exc.key]})",
                              exc.key) from None
        raise
    if not config.storage.url:
        if not config.data_dir:
            raise ConfigError("storage.url is not set and there is no data_dir to default it to")
        db_path = Path(config.data_dir) / "vnegov.db"
        config = dataclasses.replace(
            config, storage=dataclasses.replace(config.storage, url=f"sqlite:///{db_path}")
        )
    return config
