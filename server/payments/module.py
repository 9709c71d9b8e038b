"""The payments module: stores, HTTP endpoints, the gRPC PaymentsService and the workers
(receipt outbox, tax transmission, webhooks, expiry)."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import httpx
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from starlette.routing import BaseRoute

import payments.errors as pe
from payments.accounts import AccountKind, CollectionAccount
from payments.fees import FeeCatalogue, load_catalogue_csv, load_catalogue_yaml
from payments.payments import ChannelStatus
from payments.receipts.model import Organisation
from payments.receipts.pdf import Fonts
from payments.receipts.qr_jws import QrSeal
from payments.receipts.signing import XmlSigner
from payments.receipts.transmission import TaxAuthoritySimulator, TaxAuthorityTransport
from payments.webhooks import event_body, sign_webhook
from server.audit import AuditEvent
from server.jobs import JobContext, JobInterrupted, LeaseLost
from server.modules import AppContext, GrpcService, Module
from server.payments.common import claim
from server.payments.config import OrganisationConfig, PaymentsConfig
from server.payments.platform_client import PlatformClient
from server.payments.receipts_store import ReceiptsStore
from server.payments.recon_store import ReconStore
from server.payments.store import ConfirmOutcome, PaymentsStore
from signing.ca.keys import load_private_key
from signing.sign.xmldsig import XmlDsigSigner

__all__ = ["RECONCILE_JOB", "PaymentsModule", "build", "run_reconciliation"]

RECONCILE_JOB = "payments.reconcile"

log = logging.getLogger("server.payments")
SAMPLE_CATALOGUE = Path(__file__).resolve().parents[2] / "payments" / "fees" / "data" / \
    "sample.yaml"


def _catalogue(files: Sequence[str]) -> FeeCatalogue:
    catalogue = FeeCatalogue()
    for name in files or [str(SAMPLE_CATALOGUE)]:
        data = Path(name).read_bytes()
        part = load_catalogue_csv(data, source=name) if name.endswith(".csv") else \
            load_catalogue_yaml(data, source=name)
        catalogue = catalogue.merged(part)
    return catalogue


def _signer(org: OrganisationConfig) -> tuple[XmlSigner, QrSeal, list[x509.Certificate]]:
    """The body's XML signer and QR seal (one key, its organisation certificate) and the
    certificates of its chain file."""
    if not org.key_file or not org.cert_file:
        raise ValueError(f"payments organisation {org.agency_code} needs key_file and cert_file")
    passphrase = Path(org.key_passphrase_file).read_bytes().strip() \
        if org.key_passphrase_file else None
    key = load_private_key(Path(org.key_file).read_bytes(), passphrase)
    chain = x509.load_pem_x509_certificates(Path(org.cert_file).read_bytes())
    return XmlDsigSigner(key, chain), QrSeal(key, chain[0]), chain  # type: ignore[arg-type]


def _unique(certs: Iterable[x509.Certificate]) -> list[x509.Certificate]:
    out: list[x509.Certificate] = []
    for cert in certs:
        if cert not in out:
            out.append(cert)
    return out


class PaymentsModule(Module):
    name = "payments"

    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx
        self.config = PaymentsConfig.from_config(ctx.config.extensions.get("payments", {}),
                                                 base_dir=Path(ctx.config.data_dir or "."))
        cfg = self.config
        self.callback_window = dt.timedelta(minutes=cfg.callback_window_minutes)
        webhooks: dict[str, list[dict[str, str]]] = {}
        for hook in cfg.webhooks:
            webhooks.setdefault(hook["agency_code"], []).append(dict(hook))
        self.webhook_secrets = webhooks
        self.store = PaymentsStore(ctx.db, catalogue=_catalogue(cfg.catalogue_files),
                                   ttl=dt.timedelta(minutes=cfg.payment_ttl_minutes),
                                   webhooks=webhooks)
        self.organisations = {o.agency_code: Organisation(o.agency_code, o.name, o.tax_code,
                                                          o.address, o.budget_unit_code)
                              for o in cfg.organisations}
        keys = {o.agency_code: _signer(o) for o in cfg.organisations}
        self.signers = {code: signer for code, (signer, _, _) in keys.items()}
        self.seals = {code: seal for code, (_, seal, _) in keys.items()}
        # Published for offline QR verification: every body's chain (untrusted), and the roots
        # the verification page trusts (the configured file, else the self-signed certificates
        # at the end of the bodies' chain files).
        self.seal_certificates = _unique(c for _, _, chain in keys.values() for c in chain
                                         if c.issuer != c.subject)
        self.qr_roots = _unique(
            x509.load_pem_x509_certificates(Path(cfg.receipt_qr_roots_file).read_bytes())
            if cfg.receipt_qr_roots_file else
            (c for _, _, chain in keys.values() for c in chain if c.issuer == c.subject))
        if keys and cfg.receipt_qr_signed and not self.qr_roots:
            log.warning("no root for the receipt QR check page (payments.receipt_qr_roots_file): "
                        "the page at /payments/receipts/check will trust no seal")
        self.receipts = ReceiptsStore(ctx.db, organisations=self.organisations,
                                      signer_for=self.signer_for,
                                      template=cfg.receipt_template,
                                      sender_code=cfg.sender_code,
                                      seal_for=self.seals.get if cfg.receipt_qr_signed else None,
                                      # RSA signatures run outside the GIL: two threads overlap
                                      # them (ECDSA P-256 is too quick to gain from it).
                                      signing_threads=2 if any(
                                          isinstance(seal.key, rsa.RSAPrivateKey)
                                          for seal in self.seals.values()) else 1)
        self.recon = ReconStore(ctx.db, settlement_delay=dt.timedelta(
            days=cfg.settlement_delay_days))
        self.tax: TaxAuthorityTransport = TaxAuthoritySimulator()
        self.platform = PlatformClient(cfg.platform_url, partner_code=cfg.platform_partner_code,
                                       secret=cfg.platform_secret) if cfg.platform_url else None
        self._fonts: Fonts | None = None
        if ctx.jobs is not None:
            ctx.jobs.register(RECONCILE_JOB, self.reconcile_job, exclusive=True)
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False

    # ------------------------------------------------------------ plumbing
    def http_routes(self) -> Sequence[BaseRoute]:
        from server.payments.http import routes

        return routes(self)

    def grpc_services(self) -> Sequence[GrpcService]:
        from server.payments.servicer import service

        return [service(self)]

    def signer_for(self, agency_code: str) -> XmlSigner:
        signer = self.signers.get(agency_code)
        if signer is None:
            raise pe.FailedPrecondition("no signing key is configured for the collecting body",
                                        reason="NO_ORGANISATION",
                                        metadata={"agency_code": agency_code})
        return signer

    def qr_page_url(self) -> str:
        """The verification page the receipts' QR codes open (the token follows a ``#``)."""
        return self.config.receipt_qr_page_url or (
            self.ctx.config.server.public_url.rstrip("/") + "/payments/receipts/check")

    def fonts(self) -> Fonts:
        if self._fonts is None:
            self._fonts = Fonts(Path(self.config.font_regular).read_bytes(),
                                Path(self.config.font_bold).read_bytes())
        return self._fonts

    def wake(self) -> None:
        self._wake.set()

    async def audit_rejected(self, channel: str, detail: str, request_id: str) -> None:
        await self.ctx.audit.record(AuditEvent(
            at=self.ctx.clock(), request_id=request_id, caller=f"channel:{channel}",
            kind="payments", action="callback.reject", outcome="REJECTED", reason=detail))

    async def start(self) -> None:
        now = self.ctx.clock()
        for raw in self.config.accounts:
            account = CollectionAccount(
                raw["agency_code"], raw["bank_bin"], raw["account_number"], raw["account_name"],
                AccountKind(raw.get("kind", "bank")), raw.get("treasury_office_code", ""),
                raw.get("budget_unit_code", ""))
            await self.ctx.run(self.store.register_account, account, actor="config",
                               request_id="startup", now=now)
        if self.config.workers_enabled:
            self._tasks = [asyncio.create_task(self._expiry_loop(), name="payments-expiry")]
            # Receipts, their transmission and webhooks need a collecting body or a subscriber.
            if self.organisations or self.webhook_secrets:
                self._tasks.append(asyncio.create_task(self._outbox_loop(),
                                                       name="payments-outbox"))
            if self.platform is not None:
                self._tasks.append(asyncio.create_task(self._mop_up_loop(),
                                                       name="payments-mop-up"))

    async def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            try:
                await task
            except (asyncio.CancelledError, Exception):  # noqa: BLE001 - shutting down
                pass

    # ------------------------------------------------------------ jobs
    def submit_reconciliation(self, *, as_of: dt.datetime, actor: str, now: dt.datetime,
                              agency: str | None = None) -> str:
        """Queue a reconciliation run as a durable job; its operation id names it. With
        ``agency``, the run covers only that agency's collection accounts and payments."""
        with self.ctx.db.write() as s:  # the operation and its job exist together or not at all
            op_id = self.recon.start_operation("reconcile", caller=actor, now=now,
                                               agency=agency or "", session=s)
            self.ctx.job_runner.submit(RECONCILE_JOB, {
                "operation": op_id, "as_of": as_of.isoformat(), "actor": actor,
                "agency": agency},
                job_id=f"{RECONCILE_JOB}:{op_id}", session=s)
        self.ctx.job_runner.wake()
        return op_id

    def reconcile_job(self, job: JobContext) -> dict[str, Any]:
        return run_reconciliation(self.recon, job, self.ctx.clock)

    # ------------------------------------------------------------ workers
    async def _outbox_loop(self) -> None:
        # Catch up on work left by a previous process once the server has finished starting.
        await asyncio.sleep(min(0.5, self.config.outbox_interval_seconds))
        while not self._stopping:
            try:
                await self.run_outbox_once()
            except Exception:  # noqa: BLE001 - keep the worker alive; the row stays queued
                log.exception("payments outbox pass failed")
            try:
                await asyncio.wait_for(self._wake.wait(), self.config.outbox_interval_seconds)
            except TimeoutError:
                pass
            self._wake.clear()

    async def run_outbox_once(self) -> None:
        now = self.ctx.clock()
        pending = await self.ctx.run(self.receipts.pending_issues, now=now)
        if pending:
            await self.ctx.run(self.receipts.issue_batch, pending, now=self.ctx.clock())
        await self.ctx.run(self.receipts.transmit_pending, self.tax, now=self.ctx.clock(),
                           tax_code_of=lambda code: self.organisations[code].tax_code
                           if code in self.organisations else "",
                           backoff=dt.timedelta(seconds=self.config.retry_seconds))
        await self._deliver_webhooks()

    async def _deliver_webhooks(self) -> None:
        from sqlalchemy import update

        from server.storage.payments import OutboxRow

        now = self.ctx.clock()

        def pending() -> list[tuple[int, int, str, str]]:
            return [(r.id, r.attempts, r.ref, r.payload)
                    for r in claim(self.ctx.db, "webhook", now=now, limit=50)]

        def mark(row_id: int, attempts: int, error: str) -> None:
            with self.ctx.db.write() as s:
                values: dict[str, Any] = {"attempts": attempts + 1, "last_error": error[:300]}
                if error:
                    values["next_attempt_at"] = now + dt.timedelta(
                        seconds=self.config.retry_seconds * 2 ** min(attempts, 10))
                    values["state"] = "failed" if attempts >= 15 else "pending"
                else:
                    values.update(state="done", done_at=now)
                s.execute(update(OutboxRow).where(OutboxRow.id == row_id).values(**values))

        rows = await self.ctx.run(pending)
        if not rows:
            return
        async with httpx.AsyncClient(timeout=10) as client:
            for row_id, attempts, _ref, payload_text in rows:
                payload = json.loads(payload_text)
                subs = self.webhook_secrets.get(payload["agency"], [])
                index = int(payload["secret_index"])
                error = ""
                if index >= len(subs):
                    error = "subscription removed"
                else:
                    body = event_body(payload["event"].split(".refunded.")[0]
                                      if ".refunded." in payload["event"] else payload["event"],
                                      now, payload["data"])
                    headers = sign_webhook(subs[index]["secret"], f"msg_{row_id}", now, body)
                    try:
                        response = await client.post(payload["url"], content=body,
                                                     headers=headers)
                        if response.status_code >= 300:
                            error = f"HTTP {response.status_code}"
                    except httpx.HTTPError as exc:
                        error = type(exc).__name__
                await self.ctx.run(mark, row_id, attempts, error)

    async def _expiry_loop(self) -> None:
        while not self._stopping:
            await asyncio.sleep(self.config.expiry_interval_seconds)
            try:
                await self.ctx.run(self.store.expire_due, now=self.ctx.clock())
            except Exception:  # noqa: BLE001
                log.exception("payments expiry pass failed")


    async def _mop_up_loop(self) -> None:
        while not self._stopping and self.platform is not None:
            try:
                await self.mop_up_once()
            except Exception:  # noqa: BLE001
                log.exception("payments mop-up pass failed")
            await asyncio.sleep(self.config.mopup_interval_seconds)

    async def mop_up_once(self) -> int:
        """Ask the platform about payments left awaiting payment; apply what it reports paid
        (exactly once: a callback arriving later is answered "already confirmed")."""
        if self.platform is None:
            return 0
        now = self.ctx.clock()
        older = now - dt.timedelta(minutes=self.config.mopup_after_minutes)
        applied = 0
        for p in await self.ctx.run(self.store.pending_for_mop_up, older_than=older):
            if p.channel != "platform":
                continue
            status = await self.ctx.run(self.platform.query_status, p.reference, now=now)
            if status.status is ChannelStatus.PAID and status.channel_transaction_id:
                result = await self.ctx.run(
                    self.store.confirm, channel="platform",
                    transaction_id=status.channel_transaction_id, reference=p.reference,
                    amount=status.amount, at=status.at or now, success=True,
                    exact_amount=True, request_id="mop-up", now=now)
                applied += result.outcome is ConfirmOutcome.APPLIED
        if applied:
            self.wake()
        return applied


def run_reconciliation(recon: ReconStore, job: JobContext,
                       clock: Callable[[], dt.datetime]) -> dict[str, Any]:
    """The durable job of one reconciliation run (any replica may resume it): its progress is
    saved on the job and on the run's operation with each batch, in the batch's transaction."""
    from sqlalchemy import update

    from server.storage.payments import OperationRow

    op_id = str(job.params["operation"])

    def save(s: Any, checkpoint: dict[str, Any], done: int, total: int) -> None:
        if job.should_stop():
            raise JobInterrupted("the server is shutting down")
        job.save(s, checkpoint, progress=done, total=total)
        s.execute(update(OperationRow).where(OperationRow.id == op_id).values(
            progress=done, total=total))

    try:
        result = recon.reconcile(as_of=dt.datetime.fromisoformat(job.params["as_of"]),
                                 actor=str(job.params["actor"]), run_id=op_id,
                                 agency=job.params.get("agency") or None,
                                 resume=job.checkpoint or None, save=save)
    except (LeaseLost, JobInterrupted):
        raise
    except Exception as exc:
        recon.finish_operation(op_id, result=None, error=getattr(
            exc, "message", type(exc).__name__), now=clock())
        raise
    recon.finish_operation(op_id, result=result, error="", now=clock())
    return result


def build(ctx: AppContext) -> Module:
    return PaymentsModule(ctx)
