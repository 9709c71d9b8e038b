"""The certificate authority as a server module: gRPC service, ``/pki`` HTTP endpoints, the
revocation checker for mutual TLS, and the background work (status refresh, CRL schedule,
reorganisation runs)."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from prometheus_client import Counter, Histogram
from starlette.routing import BaseRoute, Mount

from server.ca.publishing import CrlPublisher, StatusRefresher
from server.ca.records import Actor
from server.ca.renewal import ServiceCertificateRenewer
from server.ca.reorg import ReorganisationRunner
from server.ca.runtime import CaRuntime, load_runtime
from server.ca.service import CaService, Changes
from server.ca.settings import CaSettings
from server.config import Config
from server.jobs import JobContext, JobInterrupted
from server.modules import AppContext, GrpcService, Module
from server.notify import CERTIFICATE_STATUS
from server.storage.db import Database
from signing.ca import read_subject_info
from signing.ca.subject import subject_data_from_certificate

__all__ = ["REORGANISATION_JOB", "CaComponents", "CaModule", "bootstrap", "ca_module",
           "open_ca"]

REORGANISATION_JOB = "ca.reorganisation"

log = logging.getLogger("server.ca")


@dataclass
class CaComponents:
    """The CA's parts, for the server module and the ``vnegov ca`` command alike."""

    runtime: CaRuntime
    service: CaService
    publisher: CrlPublisher
    refresher: StatusRefresher
    runner: ReorganisationRunner


def _after_commit(runtime: CaRuntime, publisher: CrlPublisher,
                  refresher: StatusRefresher) -> Callable[[Changes], None]:
    def committed(changes: Changes) -> None:
        """After a transaction: update the in-memory status (which drops cached OCSP answers)
        and, when a status changed, publish new CRLs at once.

        The update waits for a poll of the refresher in progress: a poll that read the database
        before this transaction committed must not apply its older view after this one."""
        index = runtime.index
        with refresher.lock:
            for key_id, serial in changes.issued:
                index.set_good(key_id, serial)
            for key_id, entry in changes.revoked:
                index.set_revoked(key_id, entry)
            for key_id, serial in changes.released:
                index.set_good(key_id, serial)
        if changes.status_changed:
            publisher.publish()

    return committed


def open_ca(config: Config, db: Database, clock: Callable[[], dt.datetime]) -> CaComponents:
    settings = CaSettings.for_server(config)
    runtime = load_runtime(settings, config.server.public_url)
    publisher = CrlPublisher(db, runtime, clock)
    refresher = StatusRefresher(db, runtime)
    service = CaService(db, runtime, clock=clock,
                        on_committed=_after_commit(runtime, publisher, refresher))
    return CaComponents(runtime, service, publisher, refresher, ReorganisationRunner(service))


def import_development_certificates(parts: CaComponents, directory: Path) -> int:
    """Record the certificates ``vnegov init`` issued outside the CA's database (server, sample
    clients, agency seals, OCSP responder, TSA) so that OCSP and CRLs know them."""
    rt = parts.runtime
    files = [(directory / "server.pem", "device"),
             (directory / "ocsp-responder.pem", "ocsp-responder"),
             (directory / "tsa.pem", "timestamping")]
    files += [(p, "device") for p in sorted((directory / "clients").glob("*.pem"))
              if not p.name.endswith(".key.pem")]
    files += [(p, "organisation") for p in sorted((directory / "agencies").glob("*.pem"))
              if not p.name.endswith(".key.pem")]
    actor = Actor.command_line("import-dev-pki", "vnegov-init")
    count = 0
    for path, profile_id in files:
        if not path.exists():
            continue
        cert = x509.load_pem_x509_certificates(path.read_bytes())[0]
        try:
            cert.verify_directly_issued_by(rt.authority.certificate)
        except (ValueError, TypeError, InvalidSignature):
            continue
        profile = rt.profiles.get(profile_id)
        info = read_subject_info(cert)
        body = info.agency_code if info is not None and info.agency_code else ""
        if parts.service.import_certificate(cert, profile, subject_data_from_certificate(
                cert, profile), body, actor):
            count += 1
    return count


def bootstrap(parts: CaComponents, config: Config) -> None:
    """Make the database ready for this CA: its issuer row, and in the embedded deployment (no
    [ca] section, the development PKI) the certificates ``vnegov init`` issued."""
    parts.service.ensure_issuer()
    if "ca" not in config.extensions and config.pki.directory:
        imported = import_development_certificates(parts, Path(config.pki.directory))
        if imported:
            log.info("imported development certificates", extra={"count": imported})


class CaModule(Module):
    name = "ca"

    def __init__(self, ctx: AppContext, parts: CaComponents) -> None:
        self.ctx = ctx
        self.parts = parts
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = asyncio.Event()
        self.ocsp_counter = Counter("vnegov_ocsp_responses_total",
                                    "OCSP responses, by how they were produced.", ["result"],
                                    registry=ctx.metrics.registry)
        batches = Histogram("vnegov_ca_issuance_batch_size",
                            "Certificates written per issuance transaction (group commit).",
                            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 200),
                            registry=ctx.metrics.registry)
        parts.service.writer.observe = batches.observe
        self.renewer = ServiceCertificateRenewer(ctx.db, parts.runtime, parts.service)
        ctx.registry["revocation_checker"] = parts.runtime.index
        ctx.registry["certificate_status"] = parts.runtime.index
        if ctx.jobs is not None:
            ctx.jobs.register(REORGANISATION_JOB, self._reorganisation_job)
        if ctx.changes is not None:  # a replica revoked, held or released a certificate
            ctx.changes.subscribe(CERTIFICATE_STATUS, self._status_changed)

    def _status_changed(self, _detail: str) -> None:
        self.parts.refresher.poll()
        self.parts.publisher.load_if_newer()

    def grpc_services(self) -> Sequence[GrpcService]:
        from server.ca.servicer import CertificateAuthorityServicer
        from vnegov.signing.v1 import certificate_authority_pb2_grpc

        servicer = CertificateAuthorityServicer(self.parts.service, self.parts.runner,
                                                self.ctx.run, self.start_run)
        return [GrpcService(
            "vnegov.signing.v1.CertificateAuthorityService", servicer,
            certificate_authority_pb2_grpc.add_CertificateAuthorityServiceServicer_to_server)]

    def http_routes(self) -> Sequence[BaseRoute]:
        from server.ca.http import PkiHttp

        app = PkiHttp(self.parts.runtime, self.parts.publisher, clock=self.ctx.clock,
                      run=self.ctx.run, ocsp_counter=self.ocsp_counter,
                      inline_signing=self.parts.runtime.token is None)
        return [Mount("/pki", app=app)]

    def _prepare(self) -> None:
        parts = self.parts
        bootstrap(parts, self.ctx.config)
        loaded = parts.refresher.load_all()
        parts.publisher.scheduled()
        self.renewer.renew_due(self.ctx.clock())
        log.info("certificate authority ready", extra={
            "issuer": parts.runtime.authority.certificate.subject.rfc4514_string(),
            "certificates": loaded, "keys": parts.runtime.settings.key_source})

    async def start(self) -> None:
        await self.ctx.run(self._prepare)
        self._tasks = [asyncio.create_task(self._refresh_loop(), name="ca-refresh"),
                       asyncio.create_task(self._crl_loop(), name="ca-crl")]
        # Runs left unfinished by a process that stopped (before jobs existed, or whose job was
        # lost) get their job back; a run whose job is queued or running keeps it.
        for run_id in await self.ctx.run(self.parts.runner.unfinished):
            await self.ctx.run(self.start_run, Actor.command_line("resume", "server"), run_id)

    def start_run(self, actor: Actor, run_id: int) -> None:
        """Queue a reorganisation run as a durable job (blocking: call it on a worker thread).
        Whichever replica claims it carries it out; another resumes it if that one dies."""
        self.ctx.job_runner.submit(REORGANISATION_JOB, {
            "run": run_id, "actor": {"name": actor.name, "agency_code": actor.agency_code,
                                     "provinces": sorted(actor.provinces),
                                     "operator": actor.operator,
                                     "request_id": actor.request_id}},
            job_id=f"{REORGANISATION_JOB}:{run_id}", requeue_finished=True)

    def _reorganisation_job(self, job: JobContext) -> dict[str, Any]:
        raw = job.params["actor"]
        actor = Actor(raw["name"], raw["agency_code"], frozenset(raw["provinces"]),
                      bool(raw["operator"]), raw["request_id"])
        run_id = int(job.params["run"])
        # Items are the checkpoint: each batch marks its items done in its own transaction, so
        # a resumed run carries out exactly the items still pending.
        status = self.parts.runner.run(actor, run_id, should_stop=job.should_stop)
        if not status.finished:
            raise JobInterrupted("the server is shutting down")
        return {"run": run_id, "state": status.state, "done": status.done,
                "failed": status.failed}

    async def _refresh_loop(self) -> None:
        interval = self.parts.runtime.settings.status_poll_seconds
        while not self._stopping.is_set():
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), interval)
            if self._stopping.is_set():
                return
            try:
                # Status first, then the CRLs: another process publishes its CRLs after the
                # status change they carry has committed, so they may come a poll later.
                await self.ctx.run(self.parts.refresher.poll)
                await self.ctx.run(self.parts.publisher.load_if_newer)
            except Exception:
                log.exception("certificate status refresh failed")

    async def _crl_loop(self) -> None:
        while not self._stopping.is_set():
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), 60)
            if self._stopping.is_set():
                return
            try:
                await self.ctx.run(self.parts.publisher.scheduled)
            except Exception:
                log.exception("CRL publication failed")
            try:
                await self.ctx.run(self.renewer.renew_due, self.ctx.clock())
            except Exception:
                log.exception("renewing the CA's service certificates failed")

    async def stop(self) -> None:
        self._stopping.set()
        pending = list(self._tasks)
        for task in pending:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(task, 30)
        self.parts.runtime.close()


def ca_module(ctx: AppContext) -> Module:
    """The CA module, or an empty one when no CA is configured ([ca] or [pki])."""
    settings = CaSettings.for_server(ctx.config)
    if not settings.configured:
        return Module()
    return CaModule(ctx, open_ca(ctx.config, ctx.db, ctx.clock))
