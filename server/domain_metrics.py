"""Domain metrics, read from the database when ``/metrics`` is scraped.

They describe the deployment, not one process: every replica reports the same figures (take any
one, or ``max`` across them, never the sum).

- ``vnegov_logins_total{result,level}``: logins from the audit log (``session.start`` events are
  successes at their level of assurance; failed ``login.*`` events are failures by reason).
  Counted incrementally: each scrape reads only the audit events appended since the last one.
- ``vnegov_payments{state}``: payments by state.
- ``vnegov_receipts_issued_total{kind}``: e-receipts issued.
- ``vnegov_outbox_pending{kind}``, ``vnegov_outbox_oldest_seconds{kind}``: work waiting in the
  payments outbox and how long the oldest item has waited (outbox lag).
- ``vnegov_crl_age_seconds{issuer,delta}``: time since the newest CRL of each issuer.
- ``vnegov_certificates_expiring{within}``: valid certificates expiring within 7 and 30 days.
- ``vnegov_job_leases{state}``: running durable jobs whose lease is held or has run out (resumable).

The OCSP cache hit rate is ``vnegov_ocsp_responses_total{result="cache"}`` over the sum of that
counter (server/ca/http.py).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Callable

from prometheus_client import Counter, Gauge
from sqlalchemy import func, select

from server.metrics import Metrics
from server.storage.audit import AuditEventRow
from server.storage.ca import CaCertificateRow, CaCrlRow, CaIssuerRow
from server.storage.db import Database
from server.storage.payments import OutboxRow, PaymentRow, ReceiptRow

__all__ = ["DomainMetrics"]

log = logging.getLogger(__name__)

_LOGIN_FAILURES = ("login.password", "login.totp", "login.refused", "login.lockout",
                   "login.device")
_BATCH = 5000  # audit events read per scrape at most (the rest at the next one)


class DomainMetrics:
    def __init__(self, db: Database, metrics: Metrics,
                 clock: Callable[[], dt.datetime]) -> None:
        self.db = db
        self.clock = clock
        r = metrics.registry
        self.logins = Counter("vnegov_logins", "Citizen logins, by result and level of assurance.",
                              ["result", "level"], registry=r)
        self.payments = Gauge("vnegov_payments", "Payments, by state.", ["state"], registry=r)
        self.receipts = Gauge("vnegov_receipts_issued_total", "E-receipts issued, by kind.",
                              ["kind"], registry=r)
        self.outbox_pending = Gauge("vnegov_outbox_pending", "Outbox items waiting, by kind.",
                                    ["kind"], registry=r)
        self.outbox_oldest = Gauge("vnegov_outbox_oldest_seconds",
                                   "Age of the oldest waiting outbox item, by kind.", ["kind"],
                                   registry=r)
        self.crl_age = Gauge("vnegov_crl_age_seconds", "Time since the newest CRL, by issuer.",
                             ["issuer", "delta"], registry=r)
        self.expiring = Gauge("vnegov_certificates_expiring",
                              "Valid certificates that expire within the period.", ["within"],
                              registry=r)
        self.leases = Gauge("vnegov_job_leases", "Background job leases, by state.", ["state"],
                            registry=r)
        self._audit_seq = 0
        self._audit_started = False
        metrics.on_refresh(self.refresh)

    def refresh(self) -> None:
        now = self.clock()
        with self.db.read() as s:
            self._logins(s)
            self.payments.clear()
            for state, count in s.execute(select(PaymentRow.state, func.count())
                                          .group_by(PaymentRow.state)):
                self.payments.labels(state).set(count)
            self.receipts.clear()
            for kind, count in s.execute(select(ReceiptRow.kind, func.count())
                                         .group_by(ReceiptRow.kind)):
                self.receipts.labels(kind).set(count)
            self.outbox_pending.clear()
            self.outbox_oldest.clear()
            for kind, count, oldest in s.execute(
                    select(OutboxRow.kind, func.count(), func.min(OutboxRow.created_at))
                    .where(OutboxRow.state == "pending").group_by(OutboxRow.kind)):
                self.outbox_pending.labels(kind).set(count)
                self.outbox_oldest.labels(kind).set(max(0.0, (now - oldest).total_seconds()))
            self.crl_age.clear()
            for name, delta, newest in s.execute(
                    select(CaIssuerRow.name, CaCrlRow.is_delta, func.max(CaCrlRow.this_update))
                    .join(CaIssuerRow, CaIssuerRow.key_id == CaCrlRow.issuer_key_id)
                    .group_by(CaIssuerRow.name, CaCrlRow.is_delta)):
                self.crl_age.labels(name, "true" if delta else "false").set(
                    max(0.0, (now - newest).total_seconds()))
            for days in (7, 30):
                count = s.execute(select(func.count()).select_from(CaCertificateRow).where(
                    CaCertificateRow.status == "valid", CaCertificateRow.not_after > now,
                    CaCertificateRow.not_after <= now + dt.timedelta(days=days))).scalar_one()
                self.expiring.labels(f"{days}d").set(count)
            self._leases(s, now)

    def _logins(self, s: object) -> None:
        from sqlalchemy.orm import Session

        assert isinstance(s, Session)
        if not self._audit_started:
            # Start from now: counters count what happens while this process runs.
            self._audit_seq = s.execute(select(func.max(AuditEventRow.seq))).scalar_one() or 0
            self._audit_started = True
            return
        rows = s.execute(select(AuditEventRow.seq, AuditEventRow.action, AuditEventRow.outcome,
                                AuditEventRow.reason, AuditEventRow.details)
                         .where(AuditEventRow.seq > self._audit_seq,
                                AuditEventRow.kind == "identity")
                         .order_by(AuditEventRow.seq).limit(_BATCH)).all()
        for seq, action, outcome, reason, details in rows:
            self._audit_seq = max(self._audit_seq, seq)
            if action == "session.start":
                try:
                    level = str(json.loads(details).get("acr", ""))
                except (ValueError, AttributeError):
                    level = ""
                self.logins.labels("success", level).inc()
            elif action in _LOGIN_FAILURES and outcome != "OK":
                self.logins.labels((reason or outcome or "failed").lower()[:40], "").inc()

    def _leases(self, s: object, now: dt.datetime) -> None:
        from sqlalchemy import func, select
        from sqlalchemy.orm import Session

        from server.storage.jobs import JobRow

        assert isinstance(s, Session)
        running = select(func.count()).select_from(JobRow).where(JobRow.state == "running")
        held = s.execute(running.where(JobRow.lease_until > now)).scalar_one()
        expired = s.execute(running.where(JobRow.lease_until <= now)).scalar_one()
        self.leases.labels("held").set(held)
        self.leases.labels("expired").set(expired)
