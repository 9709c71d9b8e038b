"""A hold suspends a subscriber's renewal chain as one, on SQLite and PostgreSQL: a renewal keeps
the key and the subject and leaves the renewed certificate valid, so holding either holds both;
releasing the hold releases exactly what it suspended; CRLs, delta CRLs, OCSP (cached answers
included) and the audit trail follow; and a reorganisation handles a held subscriber so that
nothing naming the abolished unit stays valid or can be released back to validity."""

from __future__ import annotations

import asyncio
import base64
import urllib.parse
from typing import Any

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp

from server.ca.service import Changes
from server.storage.ca import CaCertificateRow
from signing.ca import RevocationReason
from tests.server.ca.conftest import SUBJECT_HCM, CaServer, issue
from tests.server.ca.test_reorganisation import NEW_UNIT, OLD_UNIT, _reorganization, official
from vnegov.admin.v1 import admin_pb2, admin_pb2_grpc
from vnegov.signing.v1 import certificate_authority_pb2 as pb

R = pb.CertificateRequest
C = pb.Certificate
REASONS = pb.RevocationReason


async def _renewed_pair(ca: CaServer, i: int, **subject: str) -> tuple[str, str]:
    """An official's certificate and its renewal, both valid (same key, same subject)."""
    stub = ca.stub(ca.pki.hcm)
    req, _ = await issue(ca, client=ca.pki.hcm, subject={
        **SUBJECT_HCM, "personal_id": f"0790841{i:05d}", **subject}, validity_days=365)
    renewal = await stub.RenewCertificate(pb.RenewCertificateRequest(
        name=req.result_certificate, extension_days=30))
    assert renewal.state == R.COMPLETED, renewal.rejection_message
    return req.result_certificate, renewal.result_certificate


async def _state(ca: CaServer, name: str) -> tuple[int, int]:
    c = await ca.stub().GetCertificate(pb.GetCertificateRequest(name=name))
    return c.status, c.revocation_reason


async def _cert(ca: CaServer, name: str) -> x509.Certificate:
    msg = await ca.stub().GetCertificate(pb.GetCertificateRequest(name=name))
    return x509.load_der_x509_certificate(msg.der)


async def _ocsp(ca: CaServer, client: httpx.AsyncClient, cert: x509.Certificate
                ) -> ocsp.OCSPResponse:
    """Asked over GET, the form answered from the cache."""
    der = ocsp.OCSPRequestBuilder().add_certificate(
        cert, ca.pki.issuing.cert, hashes.SHA1()).build().public_bytes(serialization.Encoding.DER)
    url = f"{ca.http}/pki/ocsp/" + urllib.parse.quote(base64.b64encode(der).decode(), safe="")
    answer = ocsp.load_der_ocsp_response((await client.get(url)).content)
    assert answer.response_status == ocsp.OCSPResponseStatus.SUCCESSFUL
    return answer


async def _crl(ca: CaServer, client: httpx.AsyncClient, name: str
               ) -> x509.CertificateRevocationList:
    return x509.load_der_x509_crl((await client.get(f"{ca.http}/pki/crl/{name}.crl")).content)


def _reason(crl: x509.CertificateRevocationList, cert: x509.Certificate) -> x509.ReasonFlags | None:
    entry = crl.get_revoked_certificate_by_serial_number(cert.serial_number)
    if entry is None:
        return None
    return entry.extensions.get_extension_for_class(x509.CRLReason).value.reason


async def _audit(ca: CaServer, action: str) -> list[dict[str, str]]:
    admin = admin_pb2_grpc.AdminServiceStub(ca.server.channel(ca.pki.portal))
    events = await admin.ListAuditEvents(admin_pb2.ListAuditEventsRequest(
        filter='kind = "ca"', page_size=1000))
    return [dict(e.details) for e in events.audit_events if e.action == action]


async def test_holding_a_renewal_holds_the_certificate_it_renewed(ca_server: CaServer) -> None:
    ca = ca_server
    stub = ca.stub(ca.pki.hcm)
    first, second = await _renewed_pair(ca, 1)
    old, new = await _cert(ca, first), await _cert(ca, second)
    async with httpx.AsyncClient() as client:
        for cert in (old, new):  # answered once: from here on these come from the cache
            assert (await _ocsp(ca, client, cert)).certificate_status == ocsp.OCSPCertStatus.GOOD
        held = await stub.RevokeCertificate(pb.RevokeCertificateRequest(
            name=second, reason=REASONS.CERTIFICATE_HOLD))
        assert held.state == R.COMPLETED and held.kind == R.HOLD
        for name in (first, second):
            assert await _state(ca, name) == (C.ON_HOLD, REASONS.CERTIFICATE_HOLD)
        status = await stub.GetCertificateStatus(pb.GetCertificateStatusRequest(
            serial_number=format(old.serial_number, "x")))
        assert status.status == pb.CertificateStatus.REVOKED
        assert status.revocation_reason == REASONS.CERTIFICATE_HOLD
        for cert in (old, new):
            answer = await _ocsp(ca, client, cert)
            assert answer.certificate_status == ocsp.OCSPCertStatus.REVOKED
            assert answer.revocation_reason == x509.ReasonFlags.certificate_hold
        full, delta = await _crl(ca, client, "issuing-ca"), await _crl(ca, client,
                                                                       "issuing-ca-delta")
        for crl in (full, delta):
            assert _reason(crl, old) == _reason(crl, new) == x509.ReasonFlags.certificate_hold
        holds = await _audit(ca, "certificate.hold")
        assert {"certificate": first, "with_certificate": second,
                "certificate_request": held.name}.items() <= holds[-1].items()

        # Released through the certificate held with the other: the whole hold ends.
        released = await stub.ReleaseCertificateHold(pb.ReleaseCertificateHoldRequest(name=first))
        assert released.state == R.COMPLETED
        for name in (first, second):
            assert (await _state(ca, name))[0] == C.VALID
        for cert in (old, new):
            assert (await _ocsp(ca, client, cert)).certificate_status == ocsp.OCSPCertStatus.GOOD
        full, delta = await _crl(ca, client, "issuing-ca"), await _crl(ca, client,
                                                                       "issuing-ca-delta")
        assert _reason(full, old) is None and _reason(full, new) is None
        assert _reason(delta, old) == _reason(delta, new) == x509.ReasonFlags.remove_from_crl
        releases = await _audit(ca, "certificate.release")
        assert {"certificate": second, "with_certificate": first}.items() <= \
            releases[-1].items()


async def test_holding_a_renewed_certificate_holds_its_renewal(ca_server: CaServer) -> None:
    ca = ca_server
    stub = ca.stub(ca.pki.hcm)
    first, second = await _renewed_pair(ca, 2)
    await stub.RevokeCertificate(pb.RevokeCertificateRequest(
        name=first, reason=REASONS.CERTIFICATE_HOLD))
    assert await _state(ca, second) == (C.ON_HOLD, REASONS.CERTIFICATE_HOLD)
    # Not renewable, re-keyable or modifiable while suspended.
    renewal = await stub.RenewCertificate(pb.RenewCertificateRequest(name=second))
    assert renewal.state == R.REJECTED and renewal.rejection_reason == "CERTIFICATE_NOT_VALID"
    await stub.ReleaseCertificateHold(pb.ReleaseCertificateHoldRequest(name=first))
    assert (await _state(ca, first))[0] == (await _state(ca, second))[0] == C.VALID


async def test_a_release_restores_only_what_its_hold_suspended(ca_server: CaServer) -> None:
    ca = ca_server
    stub = ca.stub(ca.pki.hcm)

    # Revoked meanwhile: the renewed certificate, retired on its own after the hold.
    first, second = await _renewed_pair(ca, 3)
    await stub.RevokeCertificate(pb.RevokeCertificateRequest(
        name=first, reason=REASONS.CERTIFICATE_HOLD))
    await stub.RevokeCertificate(pb.RevokeCertificateRequest(
        name=first, reason=REASONS.SUPERSEDED))
    assert await _state(ca, second) == (C.ON_HOLD, REASONS.CERTIFICATE_HOLD)
    await stub.ReleaseCertificateHold(pb.ReleaseCertificateHoldRequest(name=second))
    assert await _state(ca, first) == (C.REVOKED, REASONS.SUPERSEDED)
    assert (await _state(ca, second))[0] == C.VALID

    # The renewal revoked for good while the chain is held: the held twin goes with it, and
    # cannot be released back to validity.
    first, second = await _renewed_pair(ca, 4)
    await stub.RevokeCertificate(pb.RevokeCertificateRequest(
        name=second, reason=REASONS.CERTIFICATE_HOLD))
    revoked = await stub.RevokeCertificate(pb.RevokeCertificateRequest(
        name=second, reason=REASONS.CESSATION_OF_OPERATION))
    assert revoked.state == R.COMPLETED
    assert await _state(ca, first) == (C.REVOKED, REASONS.CESSATION_OF_OPERATION)
    again = await stub.ReleaseCertificateHold(pb.ReleaseCertificateHoldRequest(name=first))
    assert again.state == R.REJECTED and again.rejection_reason == "NOT_ON_HOLD"

    # On hold in its own name (as a hold made before holds covered the chain left it): a later
    # hold of the renewal leaves it so, and releasing that hold does not release it.
    first, second = await _renewed_pair(ca, 5)
    _hold_alone(ca, first)
    await stub.RevokeCertificate(pb.RevokeCertificateRequest(
        name=second, reason=REASONS.CERTIFICATE_HOLD))
    await stub.ReleaseCertificateHold(pb.ReleaseCertificateHoldRequest(name=second))
    assert (await _state(ca, second))[0] == C.VALID
    assert await _state(ca, first) == (C.ON_HOLD, REASONS.CERTIFICATE_HOLD)
    await stub.ReleaseCertificateHold(pb.ReleaseCertificateHoldRequest(name=first))
    assert (await _state(ca, first))[0] == C.VALID


def _hold_alone(ca: CaServer, name: str) -> None:
    """Put ``name`` on hold in its own name only, as a hold made before holds covered the chain
    left it."""
    module = next(m for m in ca.server.app._modules if m.name == "ca")
    service = module.parts.service  # type: ignore[attr-defined]
    changes = Changes()
    with service.db.write() as s:
        row = s.get(CaCertificateRow, int(name.split("/")[1]))
        service._lock_issuer(s, row.issuer_key_id)
        service._set_status(s, row, RevocationReason.CERTIFICATE_HOLD, service.clock(), changes,
                            None)
    service.on_committed(changes)


async def _run(ca: CaServer) -> pb.ReorganizationOperation:
    stub = ca.stub()
    operation = await stub.StartReorganization(pb.StartReorganizationRequest(
        reorganization=_reorganization()))
    for _ in range(100):
        operation = await stub.GetReorganizationOperation(
            pb.GetReorganizationOperationRequest(name=operation.name))
        if operation.done:
            break
        await asyncio.sleep(0.05)
    return operation


async def test_a_reorganisation_reissues_a_held_subscriber_on_hold(ca_server: CaServer) -> None:
    """The renewal is on hold, and the certificate it renewed with it: the plan names the
    subscriber (through the renewal); carrying it out revokes both and issues the new unit's
    certificate on hold, which the release of the hold makes valid."""
    ca = ca_server
    stub = ca.stub()
    first, second = await _renewed_pair(ca, 6, **official(6))
    await stub.RevokeCertificate(pb.RevokeCertificateRequest(
        name=second, reason=REASONS.CERTIFICATE_HOLD))
    plan = await stub.PlanReorganization(pb.PlanReorganizationRequest(
        reorganization=_reorganization()))
    assert [(c.certificate, c.action) for c in plan.changes] == [
        (second, pb.PlannedCertificateChange.REISSUE)]
    operation = await _run(ca)
    assert operation.state == pb.ReorganizationOperation.SUCCEEDED, operation
    certs = {c.name: c for c in (await stub.ListCertificates(pb.ListCertificatesRequest(
        filter='subject = "Cán bộ 006"', page_size=10))).certificates}
    assert len(certs) == 3
    for name in (first, second):
        assert (certs[name].status, certs[name].revocation_reason) == (
            C.REVOKED, REASONS.AFFILIATION_CHANGED)
    (new,) = (c for c in certs.values() if c.name not in (first, second))
    assert new.subject.agency_code == NEW_UNIT and new.predecessor == second
    assert (new.status, new.revocation_reason) == (C.ON_HOLD, REASONS.CERTIFICATE_HOLD)
    async with httpx.AsyncClient() as client:
        answer = await _ocsp(ca, client, x509.load_der_x509_certificate(new.der))
        assert answer.revocation_reason == x509.ReasonFlags.certificate_hold
        for name in (first, second):
            answer = await _ocsp(ca, client, await _cert(ca, name))
            assert answer.revocation_reason == x509.ReasonFlags.affiliation_changed
    for name in (first, second):
        refused = await stub.ReleaseCertificateHold(pb.ReleaseCertificateHoldRequest(name=name))
        assert refused.state == R.REJECTED and refused.rejection_reason == "NOT_ON_HOLD"
    released = await stub.ReleaseCertificateHold(pb.ReleaseCertificateHoldRequest(
        name=new.name))
    assert released.state == R.COMPLETED
    assert (await _state(ca, new.name))[0] == C.VALID
    old_unit = await stub.ListCertificates(pb.ListCertificatesRequest(
        filter=f'agency = "{OLD_UNIT}"', page_size=100))
    assert all(c.status == C.REVOKED for c in old_unit.certificates)
    holds = await _audit(ca, "certificate.hold")
    assert {"certificate": new.name, "held_as": second,
            "reorganisation": operation.name}.items() <= holds[-1].items()


async def test_a_reorganisation_moves_a_held_chain_to_the_new_managing_body(
        ca_server: CaServer) -> None:
    """Only the managing body changes: the held renewal and the certificate it renewed both
    move, still on hold, and the new body releases them together."""
    ca = ca_server
    stub = ca.stub()
    subject: dict[str, Any] = {**official(7), "agency_code": "000.12.31.H29"}
    req, _ = await issue(ca, subject=subject, managing_body=OLD_UNIT, validity_days=365)
    first = req.result_certificate
    renewal = await stub.RenewCertificate(pb.RenewCertificateRequest(name=first,
                                                                     extension_days=30))
    second = renewal.result_certificate
    await stub.RevokeCertificate(pb.RevokeCertificateRequest(
        name=second, reason=REASONS.CERTIFICATE_HOLD))
    plan = await stub.PlanReorganization(pb.PlanReorganizationRequest(
        reorganization=_reorganization()))
    assert [(c.certificate, c.action) for c in plan.changes] == [
        (second, pb.PlannedCertificateChange.REASSIGN)]
    assert (await _run(ca)).state == pb.ReorganizationOperation.SUCCEEDED
    for name in (first, second):
        c = await stub.GetCertificate(pb.GetCertificateRequest(name=name))
        assert (c.status, c.managing_body) == (C.ON_HOLD, NEW_UNIT)
    await stub.ReleaseCertificateHold(pb.ReleaseCertificateHoldRequest(name=second))
    for name in (first, second):
        assert (await _state(ca, name))[0] == C.VALID


async def test_a_reorganisation_retires_the_valid_twin_of_a_renewal_held_alone(
        ca_server: CaServer) -> None:
    """A renewal held on its own (a hold made before holds covered the chain) beside the valid
    certificate it renewed: the renewal is planned, and carrying it out revokes both."""
    ca = ca_server
    stub = ca.stub()
    first, second = await _renewed_pair(ca, 8, **official(8))
    _hold_alone(ca, second)
    assert (await _state(ca, first))[0] == C.VALID
    plan = await stub.PlanReorganization(pb.PlanReorganizationRequest(
        reorganization=_reorganization()))
    assert [c.certificate for c in plan.changes] == [second]
    assert (await _run(ca)).state == pb.ReorganizationOperation.SUCCEEDED
    for name in (first, second):
        assert await _state(ca, name) == (C.REVOKED, REASONS.AFFILIATION_CHANGED)
    old_unit = await stub.ListCertificates(pb.ListCertificatesRequest(
        filter=f'agency = "{OLD_UNIT}"', page_size=100))
    assert old_unit.certificates and all(c.status == C.REVOKED for c in old_unit.certificates)
