"""How the domain parts plug into the server.

A :class:`Module` contributes gRPC services, HTTP routes and background tasks. Each domain (admin
now; certificate authority, documents, identity, payments) has one, listed in :data:`MODULES`; the
application builds them all from one :class:`AppContext`.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import Any, TypeVar

import grpc
from starlette.routing import BaseRoute

from server.audit import AuditWriter
from server.config import Config
from server.jobs import JobRunner
from server.metrics import Metrics
from server.notify import ChangeListener
from server.sealing import SecretBox
from server.storage.db import Database
from server.telemetry import copy_context

__all__ = ["MODULES", "AppContext", "GrpcService", "Module"]

T = TypeVar("T")


@dataclass
class AppContext:
    """What every module may use. Modules must not read files or the environment themselves."""

    config: Config
    db: Database
    audit: AuditWriter
    metrics: Metrics
    executor: ThreadPoolExecutor
    clock: Callable[[], dt.datetime] = field(default=lambda: dt.datetime.now(dt.UTC))
    # Seals secrets kept in the database; None when no master key is configured.
    secret_box: SecretBox | None = None
    # Objects modules publish for the server and each other, set in their factory or start():
    #   "revocation_checker"   server.auth.certificates.RevocationChecker (the CA module)
    #   "certificate_status"   signing.ca.status.StatusIndex: revocation and hold, with their
    #                          dates, of the certificates this server's CA issued (the CA module)
    #   "bearer_authenticator" server.auth.authenticator.BearerAuthenticator (the identity module)
    registry: dict[str, Any] = field(default_factory=dict)
    # Durable jobs shared by every replica (server/jobs): modules register their kinds in their
    # factory and submit jobs instead of starting tasks for long-running work.
    jobs: JobRunner | None = None
    # Changes other replicas made that caches must drop at once (server/notify.py): modules
    # subscribe their caches to topics in their factory.
    changes: ChangeListener | None = None

    @property
    def job_runner(self) -> JobRunner:
        if self.jobs is None:
            raise RuntimeError("this application has no job runner")
        return self.jobs

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run blocking work (database, cryptography) on the worker threads."""
        loop = asyncio.get_running_loop()
        traced = copy_context()  # the call's trace span goes along (when traces are on)
        if traced is not None:
            return await loop.run_in_executor(self.executor, partial(traced.run, fn, *args,
                                                                     **kwargs))
        return await loop.run_in_executor(self.executor, partial(fn, *args, **kwargs))


@dataclass(frozen=True)
class GrpcService:
    name: str  # full service name, e.g. "vnegov.admin.v1.AdminService"
    servicer: Any
    add_to_server: Callable[[Any, grpc.aio.Server], None]


class Module:
    """Base class: override what the module provides."""

    name = "module"

    def grpc_services(self) -> Sequence[GrpcService]:
        return ()

    def http_routes(self) -> Sequence[BaseRoute]:
        return ()

    async def start(self) -> None:
        """Start background work (after the database is ready, before serving)."""

    async def stop(self) -> None:
        """Stop background work (after serving has stopped)."""


def _admin(ctx: AppContext) -> Module:
    from server.rpc.admin import AdminService
    from vnegov.admin.v1 import admin_pb2_grpc

    class Admin(Module):
        name = "admin"

        def grpc_services(self) -> Sequence[GrpcService]:
            return [GrpcService("vnegov.admin.v1.AdminService", AdminService(ctx.db, ctx.run),
                                admin_pb2_grpc.add_AdminServiceServicer_to_server)]

    return Admin()


def _ca(ctx: AppContext) -> Module:
    from server.ca.module import ca_module

    return ca_module(ctx)


def _documents(ctx: AppContext) -> Module:
    from server.documents.module import create_module

    return create_module(ctx)


def _identity(ctx: AppContext) -> Module:
    from server.identity.module import identity_module

    return identity_module(ctx)


def _payments(ctx: AppContext) -> Module:
    from server.payments import payments_module

    return payments_module(ctx)


# Factories of every module, in start order.
MODULES: list[Callable[[AppContext], Module]] = [_admin, _ca, _documents, _identity, _payments]
