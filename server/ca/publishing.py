"""Publishing revocation status: CRLs in the database and in memory, and the in-memory status
index kept current with what other processes change.

:class:`CrlPublisher` writes a full CRL and a delta CRL for the issuing CA (on every status
change, and on a schedule so a CRL is always replaced well before its nextUpdate), and the root's
CRL when the root key is at hand. CRL numbers come from the issuer's row, locked for the
transaction, so they increase strictly across server processes.

:class:`StatusRefresher` loads the status of every certificate into the
:class:`signing.ca.StatusIndex` at start, then polls for certificates and status changes written
by other processes (other replicas, the ``vnegov ca`` command). Rows are read by increasing id /
sequence; an id that is skipped (a transaction that had not committed yet) is looked for again
for a while, so a late commit is not missed.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from sqlalchemy import func, or_, select

from server.ca.runtime import CaRuntime
from server.notify import CERTIFICATE_STATUS, notify
from server.storage.ca import CaCertificateRow, CaCrlRow, CaIssuerRow, CaStatusLogRow
from server.storage.db import Database
from server.storage.locking import locked
from signing.ca import (
    CertificateStatus,
    CrlChange,
    RevocationEntry,
    RevocationReason,
    build_delta_crl,
    build_full_crl,
)

__all__ = ["CrlPublisher", "PublishedCrl", "StatusRefresher"]

_ROOT_CRL_VALIDITY = dt.timedelta(days=30)
_GAP_PATIENCE = 60.0  # seconds a skipped id is looked for again


@dataclass(frozen=True, slots=True)
class PublishedCrl:
    der: bytes
    number: int
    this_update: dt.datetime
    next_update: dt.datetime


class CrlPublisher:
    def __init__(self, db: Database, runtime: CaRuntime, clock: Callable[[], dt.datetime]) -> None:
        self.db = db
        self.rt = runtime
        self.clock = clock
        self.crls: dict[str, PublishedCrl] = {}  # "issuing-ca", "issuing-ca-delta", "root-ca"
        self._lock = threading.Lock()
        self._root_number = 0

    @property
    def _names(self) -> tuple[str, str]:
        name = self.rt.authority.name
        return name, f"{name}-delta"

    def _remember(self, name: str, row: CaCrlRow) -> None:
        self.crls[name] = PublishedCrl(row.der, row.number, row.this_update, row.next_update)

    def load(self) -> bool:
        """Load the newest CRLs from the database; True if they were found (and are current)."""
        key_id = self.rt.authority.key_id_hex
        full_name, delta_name = self._names
        with self.db.read() as s:
            issuer = s.get(CaIssuerRow, key_id)
            rows = {}
            for is_delta in (False, True):
                rows[is_delta] = s.execute(
                    select(CaCrlRow).where(CaCrlRow.issuer_key_id == key_id,
                                           CaCrlRow.is_delta == is_delta)
                    .order_by(CaCrlRow.number.desc()).limit(1)).scalar_one_or_none()
        full_row, delta_row = rows[False], rows[True]
        if full_row is None or delta_row is None or issuer is None:
            return False
        with self._lock:
            current = self.crls.get(full_name)
            if current is None or current.number < full_row.number:
                self._remember(full_name, full_row)
            current = self.crls.get(delta_name)
            if current is None or current.number < delta_row.number:
                self._remember(delta_name, delta_row)
        return True

    def load_if_newer(self) -> bool:
        """Load the CRLs if another process published newer ones (one small query otherwise);
        True if it loaded."""
        with self.db.read() as s:
            number = s.execute(select(CaIssuerRow.crl_number).where(
                CaIssuerRow.key_id == self.rt.authority.key_id_hex)).scalar_one_or_none()
        held = self.crls.get(self._names[1])
        if not number or (held is not None and held.number >= number):
            return False
        return self.load()

    def scheduled(self) -> bool:
        """The schedule: a new base (full CRL) every ``crl_refresh_seconds``, and new CRLs
        whenever the published ones are half-way to their nextUpdate. Also picks up CRLs that
        other processes published. Returns True if it published."""
        settings = self.rt.settings
        key_id = self.rt.authority.key_id_hex
        now = self.clock()
        with self.db.read() as s:
            issuer = s.get(CaIssuerRow, key_id)
            seen = issuer.crl_number if issuer is not None else None
            base = None
            if issuer is not None and issuer.last_full_number:
                base = s.execute(select(CaCrlRow.this_update).where(
                    CaCrlRow.issuer_key_id == key_id,
                    CaCrlRow.number == issuer.last_full_number)).scalar_one_or_none()
        # Replicas and workers all run this schedule: a publication is skipped when another
        # process published after this one looked (the CRL number moved on).
        if base is None or now - base >= dt.timedelta(seconds=settings.crl_refresh_seconds):
            if self.publish(rebase=True, unless_moved_from=seen):
                return True
            self.load()
            return False
        self.load()
        full_name, delta_name = self._names
        full, delta = self.crls.get(full_name), self.crls.get(delta_name)
        if (full is None or delta is None
                or delta.next_update - now <= dt.timedelta(
                    seconds=settings.delta_crl_validity_seconds / 2)
                or full.next_update - now <= dt.timedelta(
                    seconds=settings.crl_validity_seconds / 2)):
            if self.publish(unless_moved_from=seen):
                return True
            self.load()
            return False
        self._publish_root(now.replace(microsecond=0))
        return False

    def publish(self, *, rebase: bool = False, unless_moved_from: int | None = None) -> bool:
        """Write a full CRL and a delta CRL (and the root's CRL if its key is here).

        The delta lists every change since the *base*: the full CRL of the last ``rebase``
        (the scheduled one), so a relying party that keeps the large base CRL only fetches
        deltas. Every publication also writes a complete full CRL, so a relying party that does
        not use deltas sees a revocation at once.

        With ``unless_moved_from`` (the CRL number the caller saw), nothing is published if
        another process has published since (the caller's schedule is met): returns False.
        """
        authority = self.rt.authority
        settings = self.rt.settings
        key_id = authority.key_id_hex
        full_name, delta_name = self._names
        with self.db.write() as s:
            issuer = s.execute(locked(select(CaIssuerRow).where(
                CaIssuerRow.key_id == key_id))).scalar_one()
            if unless_moved_from is not None and issuer.crl_number != unless_moved_from:
                return False
            now = self.clock().replace(microsecond=0)
            last_seq = s.execute(select(func.max(CaStatusLogRow.seq)).where(
                CaStatusLogRow.issuer_key_id == key_id)).scalar_one() or 0
            entries = [
                RevocationEntry(int(serial, 16), (revoked_at or now).replace(microsecond=0),
                                RevocationReason(reason or "unspecified"))
                for serial, revoked_at, reason in s.execute(
                    select(CaCertificateRow.serial_number, CaCertificateRow.revoked_at,
                           CaCertificateRow.revocation_reason).where(
                        CaCertificateRow.issuer_key_id == key_id,
                        CaCertificateRow.status.in_([CertificateStatus.REVOKED.value,
                                                     CertificateStatus.ON_HOLD.value]),
                        CaCertificateRow.not_after > now))
            ]
            number = issuer.crl_number + 1
            full = build_full_crl(
                authority.certificate, authority.key, entries=entries, number=number,
                this_update=now,
                next_update=now + dt.timedelta(seconds=settings.crl_validity_seconds),
                delta_url=authority.urls.delta_crl)
            if rebase or issuer.last_full_number == 0:
                issuer.last_full_number, issuer.last_full_seq = number, last_seq
            changes = []
            for serial, action, reason, at in s.execute(
                    select(CaStatusLogRow.serial_number, CaStatusLogRow.action,
                           CaStatusLogRow.reason, CaStatusLogRow.at).where(
                        CaStatusLogRow.issuer_key_id == key_id,
                        CaStatusLogRow.seq > issuer.last_full_seq,
                        CaStatusLogRow.seq <= last_seq).order_by(CaStatusLogRow.seq)):
                if action == "release":
                    changes.append(CrlChange(removed_serial=int(serial, 16), removed_at=at))
                else:
                    changes.append(CrlChange(entry=RevocationEntry(
                        int(serial, 16), at.replace(microsecond=0),
                        RevocationReason(reason or "unspecified"))))
            delta = build_delta_crl(
                authority.certificate, authority.key, changes=changes, number=number + 1,
                base_number=issuer.last_full_number, this_update=now,
                next_update=now + dt.timedelta(seconds=settings.delta_crl_validity_seconds))
            issuer.crl_number = number + 1
            rows = [self._row(key_id, full, number, None),
                    self._row(key_id, delta, number + 1, issuer.last_full_number)]
            s.add_all(rows)
            notify(s, CERTIFICATE_STATUS, "crl")  # other replicas serve them at once
        with self._lock:
            self._remember(full_name, rows[0])
            self._remember(delta_name, rows[1])
        self._publish_root(now)
        return True

    def _row(self, key_id: str, crl: x509.CertificateRevocationList, number: int,
             base: int | None) -> CaCrlRow:
        return CaCrlRow(issuer_key_id=key_id, number=number, is_delta=base is not None,
                        base_number=base, this_update=crl.last_update_utc,
                        next_update=crl.next_update_utc or crl.last_update_utc,
                        der=crl.public_bytes(serialization.Encoding.DER))

    def _publish_root(self, now: dt.datetime) -> None:
        rt = self.rt
        if rt.root_crl is not None:
            crl = x509.load_der_x509_crl(rt.root_crl) if not rt.root_crl.lstrip().startswith(
                b"-----") else x509.load_pem_x509_crl(rt.root_crl)
            self.crls[rt.root_name] = PublishedCrl(
                crl.public_bytes(serialization.Encoding.DER), 0, crl.last_update_utc,
                crl.next_update_utc or crl.last_update_utc)
            return
        if rt.root_key is None:
            return
        current = self.crls.get(rt.root_name)
        if current is not None and current.next_update - now > _ROOT_CRL_VALIDITY / 2:
            return
        # The root has issued only CA certificates, none revoked here; its CRL number is the time,
        # which increases across restarts and processes.
        number = int(now.timestamp())
        crl = build_full_crl(rt.root, rt.root_key, entries=[], number=number, this_update=now,
                             next_update=now + _ROOT_CRL_VALIDITY)
        self.crls[rt.root_name] = PublishedCrl(crl.public_bytes(serialization.Encoding.DER),
                                               number, now, now + _ROOT_CRL_VALIDITY)


class StatusRefresher:
    """Keeps :attr:`CaRuntime.index` equal to the database."""

    def __init__(self, db: Database, runtime: CaRuntime) -> None:
        self.db = db
        self.rt = runtime
        self._last_id = 0
        self._last_seq = 0
        self._missing_ids: dict[int, float] = {}
        self._missing_seqs: dict[int, float] = {}
        # Held while a poll reads and applies, and while a commit of this process updates the
        # index, so that an older view of the database never overwrites a newer update.
        self.lock = threading.Lock()

    def _apply(self, rows: list[Any]) -> None:
        key_id = self.rt.authority.key_id
        index = self.rt.index
        for _, serial, status, revoked_at, reason in rows:
            number = int(serial, 16)
            if status == CertificateStatus.VALID.value or revoked_at is None or reason is None:
                index.set_good(key_id, number)
            else:
                index.set_revoked(key_id, RevocationEntry(number, revoked_at.replace(
                    microsecond=0), RevocationReason(reason)))

    def _columns(self) -> Any:
        c = CaCertificateRow
        return select(c.id, c.serial_number, c.status, c.revoked_at, c.revocation_reason).where(
            c.issuer_key_id == self.rt.authority.key_id_hex)

    def load_all(self, batch: int = 20000) -> int:
        count = 0
        with self.lock:
            with self.db.read() as s:
                self._last_seq = s.execute(select(func.max(CaStatusLogRow.seq))).scalar_one() or 0
            while True:
                with self.db.read() as s:
                    rows = [tuple(r) for r in s.execute(
                        self._columns().where(CaCertificateRow.id > self._last_id)
                        .order_by(CaCertificateRow.id).limit(batch))]
                if not rows:
                    break
                self._apply(rows)
                self._note_ids([r[0] for r in rows])
                count += len(rows)
        return count

    def _note_ids(self, ids: list[int]) -> None:
        now = time.monotonic()
        for i in ids:
            self._missing_ids.pop(i, None)
            for gap in range(self._last_id + 1, i):
                self._missing_ids.setdefault(gap, now)
            self._last_id = max(self._last_id, i)

    def poll(self) -> bool:
        """Apply what changed since the last poll; True if a status changed (CRLs are due)."""
        now = time.monotonic()
        with self.lock:
            for gaps in (self._missing_ids, self._missing_seqs):
                for key in [k for k, t in gaps.items() if now - t > _GAP_PATIENCE]:
                    del gaps[key]
            with self.db.read() as s:
                rows = [tuple(r) for r in s.execute(self._columns().where(or_(
                    CaCertificateRow.id > self._last_id,
                    CaCertificateRow.id.in_(list(self._missing_ids)[:500])))
                    .order_by(CaCertificateRow.id).limit(5000))]
                log = s.execute(select(CaStatusLogRow.seq, CaStatusLogRow.certificate_id).where(
                    or_(CaStatusLogRow.seq > self._last_seq,
                        CaStatusLogRow.seq.in_(list(self._missing_seqs)[:500])))
                    .order_by(CaStatusLogRow.seq).limit(5000)).all()
                changed_ids = sorted({cid for _, cid in log})
                changed = [tuple(r) for r in s.execute(self._columns().where(
                    CaCertificateRow.id.in_(changed_ids)))] if changed_ids else []
            self._apply(rows)
            self._note_ids([r[0] for r in rows])
            self._apply(changed)
            for seq, _ in log:
                self._missing_seqs.pop(seq, None)
                for gap in range(self._last_seq + 1, seq):
                    self._missing_seqs.setdefault(gap, now)
                self._last_seq = max(self._last_seq, seq)
        return bool(log)
