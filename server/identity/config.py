"""The ``[identity]`` configuration section.

Server-level settings (registered clients, the key passphrase, worker timing) are read here; every
other key belongs to the provider (:class:`vnid.oidc.settings.ProviderSettings`), which rejects
unknown names. Example::

    [identity]
    issuer = "https://id.example.gov.vn/id"     # default: server.public_url + "/id"
    key_passphrase = "..."                      # or VNEGOV__IDENTITY__KEY_PASSPHRASE
    access_token_lifetime = 600

    [[identity.clients]]
    client_id = "dvc-hcm"
    profile = "fapi2"
    redirect_uris = ["https://dichvucong.hochiminhcity.gov.vn/oidc/callback"]
    jwks = { keys = [ { kty = "EC", crv = "P-256", x = "...", y = "..." } ] }
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from server.config import ConfigError, build_section
from vnid.errors import InvalidInput
from vnid.oauth2.clients import Client
from vnid.oidc.settings import ProviderSettings

__all__ = ["IdentityConfig"]

_SERVER_KEYS = {"enabled", "clients", "key_passphrase", "worker_interval_seconds", "http_threads",
                "client_cache_seconds", "logout_delivery_attempts", "chip"}


@dataclass(frozen=True, slots=True)
class _ServerSettings:
    """The server's own keys of ``[identity]``, typed like every other setting (values from
    environment overrides arrive as strings)."""

    enabled: bool = True
    key_passphrase: str = ""
    worker_interval_seconds: float = 1.0
    http_threads: int = -1
    client_cache_seconds: float = 30.0
    logout_delivery_attempts: int = 8


@dataclass(frozen=True, slots=True)
class ChipConfig:
    """``[identity.chip]``: level-2 proofing from the chip ID card read by the citizen app.

    ``csca_file`` is a PEM bundle of the trusted country signing CAs, or ``master_list_file`` an
    ICAO master list with ``master_list_signer_ca_file``, the PEM of the CSCA(s) trusted out of
    band to issue the list's signer (the publishing country's: a list cannot vouch for itself);
    ``crl_files`` their CRLs (PEM or DER); ``policy`` is ``chip_and_device``
    (the default: a genuine chip plus the registered device key reaches level 2) or
    ``chip_and_in_person`` (the chip fills the verified profile; the level comes from an in-person
    record). Without a trust list the chip methods answer FAILED_PRECONDITION."""

    csca_file: str = ""
    master_list_file: str = ""
    master_list_signer_ca_file: str = ""
    crl_files: tuple[str, ...] = ()
    policy: str = "chip_and_device"

    @classmethod
    def from_config(cls, data: Any) -> ChipConfig:
        if not isinstance(data, Mapping):
            raise ConfigError("identity.chip must be a table")
        unknown = set(data) - {"csca_file", "master_list_file", "master_list_signer_ca_file",
                               "crl_files", "policy"}
        if unknown:
            raise ConfigError(f"identity.chip: unknown key {sorted(unknown)[0]!r}")
        crls = data.get("crl_files", ())
        if isinstance(crls, str):
            crls = [c for c in crls.split(",") if c]
        policy = str(data.get("policy", "chip_and_device"))
        if policy not in ("chip_and_device", "chip_and_in_person"):
            raise ConfigError("identity.chip.policy must be chip_and_device or chip_and_in_person")
        master_list = str(data.get("master_list_file", ""))
        signer_ca = str(data.get("master_list_signer_ca_file", ""))
        if master_list and not signer_ca:
            raise ConfigError("identity.chip.master_list_file needs master_list_signer_ca_file: "
                              "the CSCA trusted to issue the master list's signer")
        return cls(csca_file=str(data.get("csca_file", "")), master_list_file=master_list,
                   master_list_signer_ca_file=signer_ca,
                   crl_files=tuple(str(c) for c in crls), policy=policy)


@dataclass(frozen=True, slots=True)
class IdentityConfig:
    provider: ProviderSettings
    enabled: bool = True
    clients: tuple[Client, ...] = ()
    key_passphrase: str = ""  # empty: a random one kept in the database (embedded demo only)
    worker_interval_seconds: float = 1.0
    # Where the protocol endpoints (PAR, token, userinfo, ...) and the authorization endpoint
    # run. -1 (the default): on SQLite each request is tried on the event loop, which saves a
    # thread hop per request; its write transactions take the database lock only if it is free
    # (BEGIN IMMEDIATE without busy wait) until one has committed, and when another writer holds
    # it the attempt is abandoned before anything was written and the whole request runs on one
    # of 4 threads instead, so the event loop does not wait for the lock. On PostgreSQL: 4 threads. n > 0:
    # always on n threads. 0: always on the event loop, waiting there whenever another writer
    # holds the database lock, and while it waits no other request of any kind is served: only
    # for a deployment that does nothing else. Pages (argon2 password checks) always use threads.
    http_threads: int = -1
    client_cache_seconds: float = 30.0
    logout_delivery_attempts: int = 8
    extra: Mapping[str, Any] = field(default_factory=dict)
    chip: ChipConfig = field(default_factory=lambda: ChipConfig())

    @property
    def path_prefix(self) -> str:
        """The issuer's path, under which every identity route is served (e.g. ``/id``)."""
        from urllib.parse import urlsplit

        return urlsplit(self.provider.issuer).path.rstrip("/")

    @classmethod
    def from_config(cls, data: Mapping[str, Any], *, public_url: str) -> IdentityConfig:
        if not isinstance(data, Mapping):
            raise ConfigError("identity must be a table")
        provider_part = {k: v for k, v in data.items() if k not in _SERVER_KEYS}
        try:
            provider = ProviderSettings.from_config(
                provider_part, default_issuer=public_url.rstrip("/") + "/id")
            clients = tuple(Client.from_metadata(c) for c in data.get("clients", []))
        except InvalidInput as exc:
            raise ConfigError(f"identity: {exc.message}") from None
        ids = [c.client_id for c in clients]
        if len(ids) != len(set(ids)):
            raise ConfigError("identity.clients: a client_id appears twice")
        if not provider.issuer.split("://", 1)[1].count("/"):
            raise ConfigError("identity.issuer needs a path (e.g. .../id) so that its routes do "
                              "not collide with other modules")
        server = build_section(
            _ServerSettings, {k: v for k, v in data.items()
                              if k in _SERVER_KEYS and k not in ("clients", "chip")},
            "identity", base_dir=Path("."))
        return cls(
            provider=provider, clients=clients, enabled=server.enabled,
            key_passphrase=server.key_passphrase,
            worker_interval_seconds=server.worker_interval_seconds,
            http_threads=server.http_threads, client_cache_seconds=server.client_cache_seconds,
            logout_delivery_attempts=server.logout_delivery_attempts,
            chip=ChipConfig.from_config(data.get("chip", {})),
        )
