"""The identity module: the OpenID provider's HTTP routes, the IdentityService, the bearer-token
authenticator for gRPC, and the background work (back-channel logout delivery, key rotation,
clean-up of expired protocol state)."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from starlette.routing import BaseRoute

from server.config import Config, ConfigError
from server.identity.bearer import TokenBearerAuthenticator
from server.identity.config import IdentityConfig
from server.identity.http import IdentityHttp
from server.identity.logout import LogoutDelivery, purge_expired
from server.identity.state import (
    ClientDirectory,
    KeyManager,
    SqlBreachedPasswords,
    load_secrets,
)
from server.identity.store import SqlStore, TotpSealer
from server.modules import AppContext, GrpcService, Module
from server.notify import CLIENTS, IDENTITY_KEYS
from server.sealing import secret_box
from server.storage.db import Database
from vnid.account_admin import AccountAdmin
from vnid.errors import VnidError
from vnid.icao9303 import CscaTrustList
from vnid.oidc.provider import OpenIDProvider
from vnid.proofing import ChipPolicy, ChipProofing

__all__ = ["IdentityModule", "IdentityParts", "assemble", "identity_module"]

log = logging.getLogger("server.identity")

_ROTATION_EVERY = dt.timedelta(hours=1)
_PURGE_EVERY = dt.timedelta(minutes=10)


@dataclass
class IdentityParts:
    """The provider assembled on a database: what the module serves and the CLI administers."""

    config: IdentityConfig
    keys: KeyManager
    clients: ClientDirectory
    store: SqlStore
    provider: OpenIDProvider
    admin: AccountAdmin
    chip: ChipProofing | None = None


def assemble(config: Config, db: Database, clock: Callable[[], dt.datetime]) -> IdentityParts:
    identity = IdentityConfig.from_config(config.extensions.get("identity", {}),
                                          public_url=config.server.public_url)
    now = clock()
    secrets = load_secrets(db, now, secret_box(config))
    passphrase = identity.key_passphrase.encode() or secrets["key_passphrase"]
    keys = KeyManager(db, identity.provider.keys, passphrase)
    keys.rotate(now)
    clients = ClientDirectory(db, identity.clients, identity.client_cache_seconds)
    store = SqlStore(db, TotpSealer(secrets["totp_key"]), clock=clock)
    provider = OpenIDProvider(identity.provider, store, clients, lambda: keys.ring,
                              pairwise_salt=secrets["pairwise_salt"],
                              nonce_secret=secrets["dpop_nonce"],
                              breached=SqlBreachedPasswords(db))
    return IdentityParts(identity, keys, clients, store, provider, AccountAdmin(provider.core),
                         chip_proofing(identity, store))


def chip_proofing(identity: IdentityConfig, store: SqlStore) -> ChipProofing | None:
    """The chip-proofing service, when a CSCA trust list is configured."""
    chip = identity.chip
    if not chip.csca_file and not chip.master_list_file:
        return None
    try:
        crls = [Path(p).read_bytes() for p in chip.crl_files]
        if chip.master_list_file:
            anchors = x509.load_pem_x509_certificates(
                Path(chip.master_list_signer_ca_file).read_bytes())
            trust = CscaTrustList.from_master_list(Path(chip.master_list_file).read_bytes(), crls,
                                                   signer_issuers=anchors)
        else:
            trust = CscaTrustList.from_pem(Path(chip.csca_file).read_bytes(), crls)
    except (OSError, ValueError, VnidError) as exc:
        raise ConfigError(f"identity.chip: the CSCA trust list cannot be read: {exc}") from None
    if not trust.certificates:
        raise ConfigError("identity.chip: the CSCA trust list holds no certificate")
    return ChipProofing(store, trust, audience=identity.provider.issuer,
                        policy=ChipPolicy(chip.policy))


class IdentityModule(Module):
    name = "identity"

    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx
        parts = assemble(ctx.config, ctx.db, ctx.clock)
        self.config = parts.config
        self.keys = parts.keys
        self.clients = parts.clients
        self.store = parts.store
        self.provider = parts.provider
        self.admin = parts.admin
        self.chip = parts.chip
        self.delivery = LogoutDelivery(ctx.db, attempts=self.config.logout_delivery_attempts,
                                       clock=ctx.clock)
        self._wake = asyncio.Event()
        self.http = IdentityHttp(ctx, self.provider, on_logout=self._wake.set,
                                 threads=self.config.http_threads, store=self.store)
        self._task: asyncio.Task[None] | None = None
        ctx.registry["bearer_authenticator"] = TokenBearerAuthenticator(self.provider)
        ctx.registry["identity_provider"] = self.provider
        ctx.registry["identity_chip"] = self.chip
        if ctx.changes is not None:  # another replica disabled a client or rotated the keys
            ctx.changes.subscribe(CLIENTS, lambda _detail: self.clients.invalidate())
            ctx.changes.subscribe(IDENTITY_KEYS, lambda _detail: self.keys.reload())

    def grpc_services(self) -> Sequence[GrpcService]:
        from server.identity.servicer import IdentityServicer
        from vnegov.identity.v1 import identity_pb2_grpc

        servicer = IdentityServicer(self.ctx, self.provider, self.admin, self.clients,
                                    self.store, chip=self.chip)
        return [GrpcService("vnegov.identity.v1.IdentityService", servicer,
                            identity_pb2_grpc.add_IdentityServiceServicer_to_server)]

    def http_routes(self) -> Sequence[BaseRoute]:
        return self.http.routes()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._work(), name="identity-worker")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.delivery.close()
        await asyncio.to_thread(self.http.close)
        self.store.close()

    async def _work(self) -> None:
        last_rotation = last_purge = self.ctx.clock()
        while True:
            try:
                await self.delivery.deliver_due()
                now = self.ctx.clock()
                if now - last_rotation >= _ROTATION_EVERY:
                    last_rotation = now
                    await self.ctx.run(self.keys.rotate, now)
                if now - last_purge >= _PURGE_EVERY:
                    last_purge = now
                    await self.ctx.run(purge_expired, self.ctx.db, now)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("identity background work failed; retrying")
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.config.worker_interval_seconds)


def identity_module(ctx: AppContext) -> Module:
    config = ctx.config.extensions.get("identity", {})
    if isinstance(config, dict) and config.get("enabled") is False:
        return Module()
    return IdentityModule(ctx)
