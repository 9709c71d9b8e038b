"""The identity module: the OpenID provider's HTTP routes, the IdentityService, the bearer-token
authenticator for gRPC, and the background work (back-channel logout delivery, key rotation,
clean-up of expired protocol state)."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import Sequence

from starlette.routing import BaseRoute

from server.identity.bearer import TokenBearerAuthenticator
from server.identity.config import IdentityConfig
from server.identity.http import IdentityHttp
from server.identity.logout import LogoutDelivery, purge_expired
from server.identity.state import ClientDirectory, KeyManager, load_secrets
from server.identity.store import SqlStore, TotpSealer
from server.modules import AppContext, GrpcService, Module
from vnid.account_admin import AccountAdmin
from vnid.oidc.provider import OpenIDProvider

__all__ = ["IdentityModule", "identity_module"]

log = logging.getLogger("server.identity")

_ROTATION_EVERY = dt.timedelta(hours=1)
_PURGE_EVERY = dt.timedelta(minutes=10)


class IdentityModule(Module):
    name = "identity"

    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx
        self.config = IdentityConfig.from_config(ctx.config.extensions.get("identity", {}),
                                                 public_url=ctx.config.server.public_url)
        now = ctx.clock()
        secrets = load_secrets(ctx.db, now)
        passphrase = self.config.key_passphrase.encode() or secrets["key_passphrase"]
        self.keys = KeyManager(ctx.db, self.config.provider.keys, passphrase)
        self.keys.rotate(now)
        self.clients = ClientDirectory(ctx.db, self.config.clients,
                                       self.config.client_cache_seconds)
        self.store = SqlStore(ctx.db, TotpSealer(secrets["totp_key"]), clock=ctx.clock)
        self.provider = OpenIDProvider(
            self.config.provider, self.store, self.clients, lambda: self.keys.ring,
            pairwise_salt=secrets["pairwise_salt"], nonce_secret=secrets["dpop_nonce"])
        self.admin = AccountAdmin(self.provider.core)
        self.delivery = LogoutDelivery(ctx.db, attempts=self.config.logout_delivery_attempts,
                                       clock=ctx.clock)
        self._wake = asyncio.Event()
        self.http = IdentityHttp(ctx, self.provider, on_logout=self._wake.set)
        self._task: asyncio.Task[None] | None = None
        ctx.registry["bearer_authenticator"] = TokenBearerAuthenticator(self.provider)
        ctx.registry["identity_provider"] = self.provider

    def grpc_services(self) -> Sequence[GrpcService]:
        from server.identity.servicer import IdentityServicer
        from vnegov.identity.v1 import identity_pb2_grpc

        servicer = IdentityServicer(self.ctx, self.provider, self.admin, self.clients)
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
