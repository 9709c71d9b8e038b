"""Renewal of the CA's own service certificates before they expire: the delegated OCSP responder
(RFC 6960 §4.2.2.2) and the time-stamping unit (RFC 3161).

The responder's certificate is short-lived on purpose (90 days by its profile): it carries
id-pkix-ocsp-nocheck, so relying parties never ask whether it was revoked, and its short life is
what bounds the exposure of its key. A CA that answers OCSP around the clock cannot wait for an
operator to notice. When a service certificate has less than ``service_renew_before_days`` left, the
CA certifies the same key again (the key stays where it is, in its file or token) under the same
profile with a fresh validity, records the certificate, writes it where the configuration names it,
and uses it from then on; the CRLs and OCSP keep answering throughout.

Several processes on one database renew once: the renewal runs under a lock on the issuer's row,
and a process that finds the certificate on disk already renewed takes that one.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import os
import tempfile
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from sqlalchemy import select

from server.audit import AuditEvent, append_events
from server.ca.records import Actor
from server.ca.runtime import CaRuntime
from server.ca.service import CaService
from server.storage.ca import CaIssuerRow
from server.storage.db import Database
from server.storage.locking import locked
from signing.ca import ResponderIdentity, new_validity
from signing.ca.subject import subject_data_from_certificate

__all__ = ["ServiceCertificateRenewer"]

log = logging.getLogger("server.ca")


class ServiceCertificateRenewer:
    def __init__(self, db: Database, runtime: CaRuntime, service: CaService) -> None:
        self.db = db
        self.rt = runtime
        self.service = service

    @property
    def renew_before(self) -> dt.timedelta:
        return dt.timedelta(days=self.rt.settings.service_renew_before_days)

    def renew_due(self, now: dt.datetime) -> list[str]:
        """Renew what is due at ``now``; returns the names of the renewed certificates."""
        renewed: list[str] = []
        settings = self.rt.settings
        responder = self.rt.responder
        if responder is not None and settings.ocsp_certificate:
            identity = responder.identities[0]
            fresh = self._renew("ocsp-responder", identity.certificate,
                                Path(settings.ocsp_certificate), now)
            if fresh is not None:
                responder.identities[0] = ResponderIdentity(identity.issuer, fresh, identity.key)
                self.rt.cache.clear()  # answers signed under the old certificate
                renewed.append("ocsp-responder")
        tsa = self.rt.tsa
        if tsa is not None and settings.tsa_certificate:
            fresh = self._renew("timestamping", tsa.certificate, Path(settings.tsa_certificate),
                                now)
            if fresh is not None:
                self.rt.tsa = dataclasses.replace(tsa, certificate=fresh)
                renewed.append("timestamping")
        return renewed

    def _renew(self, profile_id: str, current: x509.Certificate, path: Path,
               now: dt.datetime) -> x509.Certificate | None:
        if current.not_valid_after_utc - now >= self.renew_before:
            return None
        authority = self.rt.authority
        profile = self.rt.profiles.get(profile_id)
        subject = subject_data_from_certificate(current, profile)
        with self.db.write() as session:
            session.execute(locked(select(CaIssuerRow.key_id).where(
                CaIssuerRow.key_id == authority.key_id_hex))).all()
            on_disk = _first_certificate(path)
            if (on_disk is not None and on_disk != current
                    and on_disk.public_key() == current.public_key()
                    and on_disk.not_valid_after_utc - now >= self.renew_before):
                return on_disk  # another process renewed it
            fresh = authority.issue(profile, subject, current.public_key(), new_validity(
                profile, now=now, days=None,
                issuer_not_after=authority.certificate.not_valid_after_utc))
            if fresh.not_valid_after_utc <= current.not_valid_after_utc:
                log.error("cannot renew the %s certificate: the issuing CA expires first",
                          profile_id)
                return None
            _write_atomically(path, fresh, tuple(authority.chain) or (authority.certificate,))
            append_events(session, [AuditEvent(
                at=now, request_id="-", caller="ca", kind="ca",
                action="service_certificate.renew", outcome="OK",
                details={"profile": profile_id, "serial": format(fresh.serial_number, "x"),
                         "not_after": fresh.not_valid_after_utc.isoformat(),
                         "previous_serial": format(current.serial_number, "x")})])
        self.service.import_certificate(fresh, profile, subject, "",
                                        Actor.command_line("renew-service-certificate", "ca"))
        log.info("renewed the %s certificate", profile_id,
                 extra={"serial": format(fresh.serial_number, "x"),
                        "not_after": fresh.not_valid_after_utc.isoformat()})
        return fresh


def _first_certificate(path: Path) -> x509.Certificate | None:
    try:
        return x509.load_pem_x509_certificates(path.read_bytes())[0]
    except (OSError, ValueError):
        return None


def _write_atomically(path: Path, certificate: x509.Certificate,
                      chain: tuple[x509.Certificate, ...]) -> None:
    data = b"".join(c.public_bytes(serialization.Encoding.PEM)
                    for c in (certificate, *[c for c in chain if c != certificate]))
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
