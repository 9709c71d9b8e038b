"""The CRL schedule, on a clock the test moves: new CRLs when the published ones are half-way to
their nextUpdate, a new base every ``crl_refresh_seconds``, numbers that only increase, and delta
CRLs that name their base."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from server.ca.module import open_ca
from server.ca.records import Actor
from server.config import Config
from server.storage.db import Database
from signing.ca import RevocationReason, SubjectData
from tests.server.ca.conftest import SUBJECT_HCM, csr_for, write_ca_files
from tests.support.pki import TestPki
from tests.support.server import server_config_dict


def _number(crl: x509.CertificateRevocationList) -> int:
    return crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number


def _base(crl: x509.CertificateRevocationList) -> int:
    return crl.extensions.get_extension_for_class(x509.DeltaCRLIndicator).value.crl_number


def test_crls_are_republished_half_way_and_rebased_on_schedule(
        pki: TestPki, tmp_path: Path, sqlite_db: Database) -> None:
    now = [dt.datetime.now(dt.UTC).replace(microsecond=0)]
    section = write_ca_files(pki, tmp_path / "ca", "http://127.0.0.1:8080")
    section.update(crl_validity_seconds=86400, delta_crl_validity_seconds=3600,
                   crl_refresh_seconds=7200)
    config = Config.from_config(server_config_dict(
        pki, tmp_path, sqlite_db.url.render_as_string(hide_password=False),
        extra={"ca": section}))
    parts = open_ca(config, sqlite_db, lambda: now[0])
    try:
        parts.service.ensure_issuer()
        publisher = parts.publisher
        name = parts.runtime.authority.name

        def published() -> tuple[x509.CertificateRevocationList, x509.CertificateRevocationList]:
            return (x509.load_der_x509_crl(publisher.crls[name].der),
                    x509.load_der_x509_crl(publisher.crls[f"{name}-delta"].der))

        def later(seconds: int) -> None:
            now[0] += dt.timedelta(seconds=seconds)

        assert publisher.scheduled()  # nothing published yet: a first base
        full0, delta0 = published()
        assert _base(delta0) == _number(full0) and _number(delta0) == _number(full0) + 1
        assert full0.next_update_utc - full0.last_update_utc == dt.timedelta(days=1)
        assert delta0.next_update_utc - delta0.last_update_utc == dt.timedelta(hours=1)

        later(600)
        assert not publisher.scheduled()  # fresh enough: nothing new
        assert _number(published()[0]) == _number(full0)

        view = parts.service.issue(Actor.command_line("test"), profile_id="individual",
                                   subject=SubjectData.from_dict(SUBJECT_HCM),
                                   csr=csr_for(ec.generate_private_key(ec.SECP256R1())),
                                   managing_body="000.00.00.H29")
        assert view.result_certificate_id is not None
        parts.service.revoke(Actor.command_line("test"), view.result_certificate_id,
                             reason=RevocationReason.SUPERSEDED)
        full1, delta1 = published()  # a status change publishes at once, on the same base
        assert _number(full1) > _number(delta0) and _base(delta1) == _number(full0)
        serial = x509.load_der_x509_certificate(
            parts.service.get_certificate(Actor.command_line("test"),
                                          view.result_certificate_id).der).serial_number
        assert delta1.get_revoked_certificate_by_serial_number(serial) is not None
        assert full1.get_revoked_certificate_by_serial_number(serial) is not None

        later(1801)  # the delta is past half its life: new CRLs, still on the same base
        assert publisher.scheduled()
        full2, delta2 = published()
        assert _number(full2) > _number(delta1) and _base(delta2) == _number(full0)
        assert delta2.get_revoked_certificate_by_serial_number(serial) is not None

        later(7200)  # the refresh interval is over: a new base, and the delta starts afresh
        assert publisher.scheduled()
        full3, delta3 = published()
        assert _base(delta3) == _number(full3) > _number(delta2)
        assert delta3.get_revoked_certificate_by_serial_number(serial) is None
        assert full3.get_revoked_certificate_by_serial_number(serial) is not None
        numbers = [_number(c) for c in (full0, delta0, full1, delta1, full2, delta2, full3,
                                        delta3)]
        assert numbers == sorted(set(numbers))
    finally:
        parts.runtime.close()


def test_two_processes_on_one_schedule_publish_once(pki: TestPki, tmp_path: Path,
                                                     db: Database) -> None:
    """Replicas (or workers) all run the schedule: when one publishes between another's look at
    the schedule and its publication, the other publishes nothing and serves the new CRLs."""
    from sqlalchemy import func, select

    from server.storage.ca import CaCrlRow

    now = [dt.datetime.now(dt.UTC).replace(microsecond=0)]
    section = write_ca_files(pki, tmp_path / "ca", "http://127.0.0.1:8080")
    config = Config.from_config(server_config_dict(
        pki, tmp_path, db.url.render_as_string(hide_password=False), extra={"ca": section}))
    first = open_ca(config, db, lambda: now[0])
    second = open_ca(config, db, lambda: now[0])
    try:
        first.service.ensure_issuer()
        assert first.publisher.scheduled()  # the first base
        second.publisher.load()
        with db.read() as s:
            before = s.execute(select(func.count()).select_from(CaCrlRow)).scalar_one()
            seen = s.execute(select(func.max(CaCrlRow.number))).scalar_one()
        # Both decided to publish having seen the same CRL number; the first one does.
        assert first.publisher.publish(unless_moved_from=seen)
        assert not second.publisher.publish(unless_moved_from=seen)
        second.publisher.load()
        with db.read() as s:
            after = s.execute(select(func.count()).select_from(CaCrlRow)).scalar_one()
        assert after == before + 2  # one full CRL and one delta, not two of each
        name = first.runtime.authority.name
        assert second.publisher.crls[name].der == first.publisher.crls[name].der
    finally:
        first.runtime.close()
        second.runtime.close()
