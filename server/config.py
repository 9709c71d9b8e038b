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
import os
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
    "LoggingConfig",
    "SecretsConfig",
    "ServerConfig",
    "StorageConfig",
    "TlsConfig",
    "build_section",
    "load_config",
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
    worker_threads: int = 16
    # "uvloop" (libuv: about a fifth more cached OCSP answers per core over HTTP) or "asyncio"
    # (the standard library's loop).
    event_loop: str = "uvloop"

    def __post_init__(self) -> None:
        if self.event_loop not in {"uvloop", "asyncio"}:
            raise ConfigError("server.event_loop must be 'uvloop' or 'asyncio', not "
                              f"{self.event_loop!r}")


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


def _build(cls: type[T], data: Mapping[str, Any], prefix: str, base_dir: Path,
           paths: frozenset[str] = _PATH_FIELDS) -> T:
    if not isinstance(data, Mapping):
        raise ConfigError(f"{prefix.rstrip('.') or 'configuration'} must be a table")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    kwargs: dict[str, Any] = {}
    extensions: dict[str, Any] = {}
    for key, value in data.items():
        if cls is Config and key in EXTENSION_SECTIONS:
            extensions[key] = value
            continue
        if key not in names or key == "extensions":
            raise ConfigError(f"unknown configuration key '{prefix}{key}'", f"{prefix}{key}")
        kwargs[key] = _convert(hints[key], value, f"{prefix}{key}", base_dir, paths)
    if cls is Config:
        kwargs["extensions"] = extensions
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"{prefix.rstrip('.') or 'configuration'}: {exc}") from None


def _convert(tp: Any, value: Any, key: str, base_dir: Path, paths: frozenset[str],
             name: str | None = None) -> Any:
    name = name or key.rsplit(".", 1)[-1]
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, key + ".", base_dir, paths)  # type: ignore[arg-type]
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


def _scalar(tp: Any, value: Any, key: str, name: str, base_dir: Path,
            paths: frozenset[str] = _PATH_FIELDS) -> Any:
    if tp is bool:
        if isinstance(value, str) and value.lower() in {"true", "1", "yes", "false", "0", "no"}:
            return value.lower() in {"true", "1", "yes"}
        if not isinstance(value, bool):
            raise ConfigError(f"configuration key {key!r} must be true or false")
        return value
    if tp is int:
        try:
            if isinstance(value, bool):
                raise ValueError
            return int(value)
        except (TypeError, ValueError):
            raise ConfigError(f"configuration key {key!r} must be an integer") from None
    if tp is float:
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"configuration key {key!r} must be a number") from None
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"configuration key {key!r} must be a string")
        if name in paths and value:
            return str((base_dir / os.path.expanduser(value)).resolve())
        return value
    raise ConfigError(f"configuration key {key!r} has an unsupported type")  # pragma: no cover


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
