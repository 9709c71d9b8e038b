"""The request lifecycle through gRPC on SQLite and PostgreSQL: issue from a CSR, renew, re-key,
modify, revoke, hold and release; idempotency; the managing-body rule; the audit trail."""

from __future__ import annotations

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from signing.ca import read_subject_info
from tests.server.ca.conftest import SUBJECT_HCM, CaServer, csr_for, error_reason, issue
from vnegov.admin.v1 import admin_pb2, admin_pb2_grpc
from vnegov.signing.v1 import certificate_authority_pb2 as pb

R = pb.CertificateRequest


async def test_issue_renew_rekey_modify_revoke(ca_server: CaServer) -> None:
    hcm = ca_server.pki.hcm
    stub = ca_server.stub(hcm)
    key = ec.generate_private_key(ec.SECP256R1())
    csr = csr_for(key)
    req, _ = await issue(ca_server, client=hcm, request_id="issue-0001", csr=csr,
                         validity_days=365)
    assert req.state == R.COMPLETED and req.kind == R.ISSUE
    assert req.profile == "individual@1" and req.managing_body == "000.00.00.H29"
    assert req.submit_time.seconds and req.approve_time.seconds and req.complete_time.seconds
    assert req.within_service_target and req.working_days < 0.1
    cert_msg = await stub.GetCertificate(pb.GetCertificateRequest(name=req.result_certificate))
    cert = x509.load_der_x509_certificate(cert_msg.der)
    assert cert.public_key() == key.public_key()
    assert cert_msg.status == pb.Certificate.VALID
    assert cert_msg.subject.personal_id == "079084000999"
    assert read_subject_info(cert).agency_code == "000.00.31.H29"  # type: ignore[union-attr]
    assert cert_msg.certificate_request == req.name
    ca_server.pki.issuing.cert.public_key().verify(  # type: ignore[call-arg]
        cert.signature, cert.tbs_certificate_bytes,
        ec.ECDSA(cert.signature_hash_algorithm))  # type: ignore[arg-type]

    # The same request_id again returns the first request; for another request it is refused.
    again, _ = await issue(ca_server, client=hcm, request_id="issue-0001", csr=csr,
                           validity_days=365)
    assert again.name == req.name
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await issue(ca_server, client=hcm, request_id="issue-0001")
    assert err.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert error_reason(err.value) == "REQUEST_ID_REUSED"

    # The same key cannot be certified twice.
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await issue(ca_server, client=hcm, key=key)
    assert error_reason(err.value) == "KEY_ALREADY_CERTIFIED"

    renewed = await stub.RenewCertificate(pb.RenewCertificateRequest(
        name=req.result_certificate, request_id="renew-1", extension_days=30))
    assert renewed.state == R.COMPLETED
    new = await stub.GetCertificate(pb.GetCertificateRequest(name=renewed.result_certificate))
    assert new.renewal_count == 1 and new.predecessor == req.result_certificate
    assert new.not_after.seconds == cert_msg.not_after.seconds + 30 * 86400
    assert x509.load_der_x509_certificate(new.der).public_key() == key.public_key()
    old = await stub.GetCertificate(pb.GetCertificateRequest(name=req.result_certificate))
    assert old.status == pb.Certificate.VALID and old.superseded_by == renewed.result_certificate

    # A second renewal breaks the rule of one renewal: the request is rejected with the reason.
    second = await stub.RenewCertificate(pb.RenewCertificateRequest(
        name=renewed.result_certificate))
    assert second.state == R.REJECTED and second.rejection_reason == "RENEWAL_LIMIT_REACHED"

    new_key = ec.generate_private_key(ec.SECP384R1())
    rekey_reject = await stub.RekeyCertificate(pb.RekeyCertificateRequest(
        name=renewed.result_certificate, csr=csr_for(key)))
    assert rekey_reject.state == R.REJECTED
    assert rekey_reject.rejection_reason in ("KEY_REUSED", "KEY_ALREADY_CERTIFIED")
    rekeyed = await stub.RekeyCertificate(pb.RekeyCertificateRequest(
        name=renewed.result_certificate, csr=csr_for(new_key)))
    assert rekeyed.state == R.COMPLETED
    after_rekey = await stub.GetCertificate(pb.GetCertificateRequest(
        name=renewed.result_certificate))
    assert after_rekey.status == pb.Certificate.REVOKED
    assert after_rekey.revocation_reason == pb.RevocationReason.SUPERSEDED
    assert after_rekey.superseded_by == rekeyed.result_certificate

    modified = await stub.ModifyCertificate(pb.ModifyCertificateRequest(
        name=rekeyed.result_certificate, subject=pb.CertificateSubject(
            title="Phó Trưởng phòng"), update_mask=["title"]))
    assert modified.state == R.COMPLETED
    mod = await stub.GetCertificate(pb.GetCertificateRequest(name=modified.result_certificate))
    assert mod.subject.title == "Phó Trưởng phòng" and mod.predecessor == rekeyed.result_certificate
    gone = await stub.GetCertificate(pb.GetCertificateRequest(name=rekeyed.result_certificate))
    assert gone.status == pb.Certificate.REVOKED
    assert gone.revocation_reason == pb.RevocationReason.SUPERSEDED
    moved = await stub.ModifyCertificate(pb.ModifyCertificateRequest(
        name=modified.result_certificate, subject=pb.CertificateSubject(
            unit="Phòng Tư pháp", agency_code="000.00.32.H29"), update_mask=["unit",
                                                                             "agency_code"]))
    moved_old = await stub.GetCertificate(pb.GetCertificateRequest(
        name=modified.result_certificate))
    assert moved_old.revocation_reason == pb.RevocationReason.AFFILIATION_CHANGED
    live = moved.result_certificate

    held = await stub.RevokeCertificate(pb.RevokeCertificateRequest(
        name=live, reason=pb.RevocationReason.CERTIFICATE_HOLD))
    assert held.kind == R.HOLD and held.state == R.COMPLETED
    status = await stub.GetCertificateStatus(pb.GetCertificateStatusRequest(
        serial_number=(await stub.GetCertificate(pb.GetCertificateRequest(name=live)))
        .serial_number))
    assert status.status == pb.CertificateStatus.REVOKED
    assert status.revocation_reason == pb.RevocationReason.CERTIFICATE_HOLD
    released = await stub.ReleaseCertificateHold(pb.ReleaseCertificateHoldRequest(name=live))
    assert released.state == R.COMPLETED
    revoked = await stub.RevokeCertificate(pb.RevokeCertificateRequest(
        name=live, reason=pb.RevocationReason.KEY_COMPROMISE, request_id="rv-1"))
    assert revoked.state == R.COMPLETED
    again_revoked = await stub.RevokeCertificate(pb.RevokeCertificateRequest(
        name=live, reason=pb.RevocationReason.KEY_COMPROMISE))
    assert again_revoked.state == R.REJECTED
    assert again_revoked.rejection_reason == "ALREADY_REVOKED"
    # A compromised key never comes back.
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await issue(ca_server, client=hcm, key=new_key)
    assert error_reason(err.value) == "KEY_COMPROMISED"

    # Listing and filtering.
    listing = await stub.ListCertificates(pb.ListCertificatesRequest(
        filter='status = "revoked" AND agency = "000.00.31.H29"'))
    assert {c.name for c in listing.certificates} >= {rekeyed.result_certificate}
    page1 = await stub.ListCertificates(pb.ListCertificatesRequest(page_size=2))
    assert len(page1.certificates) == 2 and page1.next_page_token
    page2 = await stub.ListCertificates(pb.ListCertificatesRequest(
        page_size=2, page_token=page1.next_page_token))
    assert not {c.name for c in page1.certificates} & {c.name for c in page2.certificates}
    chain = {req.result_certificate, renewed.result_certificate, rekeyed.result_certificate,
             modified.result_certificate, live}
    everything = await stub.ListCertificates(pb.ListCertificatesRequest(
        filter='subject = "nguyễn văn an"'))
    assert {c.name for c in everything.certificates} == chain
    portal = ca_server.stub(ca_server.pki.portal)
    in_hcm = await portal.ListCertificates(pb.ListCertificatesRequest(
        filter='province = "79" AND subject = "nguyễn văn an"'))
    assert {c.name for c in in_hcm.certificates} == chain
    assert not (await portal.ListCertificates(pb.ListCertificatesRequest(
        filter='province = "01" AND subject = "nguyễn văn an"'))).certificates
    # The renewal revoked nothing, but re-keying the renewal retired the key it shared with the
    # renewed-from certificate: of that chain nothing is valid; a new certificate is.
    fresh, _ = await issue(ca_server, client=hcm)
    subject = await stub.ListCertificates(pb.ListCertificatesRequest(
        filter='subject = "nguyễn văn an" AND status = "valid"'))
    assert [c.name for c in subject.certificates] == [fresh.result_certificate]
    first = await stub.GetCertificate(pb.GetCertificateRequest(name=req.result_certificate))
    assert first.status == pb.Certificate.REVOKED
    assert first.revocation_reason == pb.RevocationReason.SUPERSEDED
    expiring = await stub.ListCertificates(pb.ListCertificatesRequest(
        filter='not_after < "2000-01-01T00:00:00Z"'))
    assert not expiring.certificates
    requests = await stub.ListCertificateRequests(pb.ListCertificateRequestsRequest(
        filter='kind = "revoke"'))
    assert [r.name for r in requests.certificate_requests] == [revoked.name,
                                                               again_revoked.name]

    # Every step is in the audit log, in the same transactions as the changes.
    admin = admin_pb2_grpc.AdminServiceStub(ca_server.server.channel(ca_server.pki.portal))
    events = await admin.ListAuditEvents(admin_pb2.ListAuditEventsRequest(
        filter='kind = "ca"', page_size=1000))
    actions = [e.action for e in events.audit_events]
    for action in ("certificate.issue", "certificate.renew", "certificate.rekey",
                   "certificate.modify", "certificate.hold", "certificate.release",
                   "certificate.revoke", "request.submit", "request.approve",
                   "request.complete", "request.reject"):
        assert action in actions, action
    assert all("079084000999" not in str(dict(e.details)) for e in events.audit_events)


async def test_weak_keys_and_bad_fields_are_refused_clearly(ca_server: CaServer) -> None:
    hcm = ca_server.pki.hcm
    for key, reason in ((rsa.generate_private_key(65537, 1024), "WEAK_OR_UNSUPPORTED_KEY"),
                        (ec.generate_private_key(ec.SECP256K1()), "WEAK_OR_UNSUPPORTED_KEY")):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await issue(ca_server, client=hcm, key=key)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert error_reason(err.value) == reason
        assert "at least 2048" in (err.value.details() or "") or "secp256k1" in (
            err.value.details() or "")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await issue(ca_server, client=hcm, subject={**SUBJECT_HCM, "dns_names": ["x.vn"]})
    assert error_reason(err.value) == "SUBJECT_NOT_ALLOWED"
    assert "does not allow dns_names" in (err.value.details() or "")
    # A CSR whose signature does not verify proves nothing.
    csr = bytearray(csr_for(ec.generate_private_key(ec.SECP256R1())))
    der = x509.load_pem_x509_csr(bytes(csr))
    tampered = bytearray(der.public_bytes(__import__(
        "cryptography.hazmat.primitives.serialization", fromlist=["Encoding"]).Encoding.DER))
    tampered[-5] ^= 0x01
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await ca_server.stub(hcm).CreateCertificateRequest(pb.CreateCertificateRequestRequest(
            profile="individual", subject=pb.CertificateSubject(**SUBJECT_HCM),
            csr=bytes(tampered)))
    assert error_reason(err.value) == "INVALID_CSR"


async def test_only_the_managing_body_may_act(ca_server: CaServer) -> None:
    pki = ca_server.pki
    req, _ = await issue(ca_server, client=pki.hcm)
    hanoi = ca_server.stub(pki.hanoi)
    # Another province's system: denied, and denied the same way for a certificate that does
    # not exist (permission before existence).
    for name in (req.result_certificate, "certificates/999999"):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await hanoi.GetCertificate(pb.GetCertificateRequest(name=name))
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await hanoi.RevokeCertificate(pb.RevokeCertificateRequest(
                name=name, reason=pb.RevocationReason.KEY_COMPROMISE))
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    listing = await hanoi.ListCertificates(pb.ListCertificatesRequest())
    assert req.result_certificate not in {c.name for c in listing.certificates}
    # Every other operation on another body's certificate or request is refused too.
    csr = csr_for(ec.generate_private_key(ec.SECP256R1()))
    for call in (
            lambda: hanoi.RenewCertificate(pb.RenewCertificateRequest(
                name=req.result_certificate)),
            lambda: hanoi.RekeyCertificate(pb.RekeyCertificateRequest(
                name=req.result_certificate, csr=csr)),
            lambda: hanoi.ModifyCertificate(pb.ModifyCertificateRequest(
                name=req.result_certificate, subject=pb.CertificateSubject(
                    title="Trưởng phòng"), update_mask=["title"])),
            lambda: hanoi.RevokeCertificate(pb.RevokeCertificateRequest(
                name=req.result_certificate, reason=pb.RevocationReason.CERTIFICATE_HOLD)),
            lambda: hanoi.ReleaseCertificateHold(pb.ReleaseCertificateHoldRequest(
                name=req.result_certificate)),
            lambda: hanoi.GetCertificateRequest(pb.GetCertificateRequestRequest(name=req.name))):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await call()
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    requests = await hanoi.ListCertificateRequests(pb.ListCertificateRequestsRequest())
    assert req.name not in {r.name for r in requests.certificate_requests}
    mine = await ca_server.stub(pki.hcm).GetCertificate(pb.GetCertificateRequest(
        name=req.result_certificate))
    assert mine.status == pb.Certificate.VALID and not mine.superseded_by  # nothing happened
    # Hà Nội may not certify an agency of TP. Hồ Chí Minh, nor name itself a province it
    # does not serve.
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await issue(ca_server, client=pki.hanoi, subject={**SUBJECT_HCM, "province_code": "01"})
    assert error_reason(err.value) == "SUBJECT_NOT_ALLOWED"  # agency code outside its body
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await issue(ca_server, client=pki.hanoi)
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await issue(ca_server, client=pki.hcm, managing_body="000.00.00.H26")
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    # Only the operator may issue a responder certificate, or approve.
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await issue(ca_server, client=pki.hcm, profile="ocsp-responder",
                    subject={"system_name": "rogue responder", "parent_body": "x"})
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await ca_server.stub(pki.hcm).ApproveCertificateRequest(
            pb.ApproveCertificateRequestRequest(name=req.name))
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    # The national operator sees everything, and is told NOT_FOUND for what does not exist.
    portal = ca_server.stub(pki.portal)
    assert (await portal.GetCertificate(pb.GetCertificateRequest(
        name=req.result_certificate))).managing_body == "000.00.00.H29"
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await portal.GetCertificate(pb.GetCertificateRequest(name="certificates/999999"))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await portal.GetCertificate(pb.GetCertificateRequest(name="certs/1"))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_a_renewed_certificate_is_retired_with_its_renewal(ca_server: CaServer) -> None:
    """Renewal leaves the old certificate valid (same key, same subject): revoking, re-keying or
    modifying the renewal must not leave that twin in use with the old key or the old fields."""
    stub = ca_server.stub(ca_server.pki.hcm)

    async def renewed_pair(i: int) -> tuple[str, str]:
        req, _ = await issue(ca_server, client=ca_server.pki.hcm, subject={
            **SUBJECT_HCM, "personal_id": f"0790840{i:05d}"}, validity_days=365)
        renewal = await stub.RenewCertificate(pb.RenewCertificateRequest(
            name=req.result_certificate, extension_days=30))
        assert renewal.state == R.COMPLETED, renewal.rejection_message
        first = await stub.GetCertificate(pb.GetCertificateRequest(name=req.result_certificate))
        assert first.status == pb.Certificate.VALID
        return req.result_certificate, renewal.result_certificate

    async def state(name: str) -> tuple[int, int]:
        c = await stub.GetCertificate(pb.GetCertificateRequest(name=name))
        return c.status, c.revocation_reason

    revoked = pb.Certificate.REVOKED
    reasons = pb.RevocationReason
    first, second = await renewed_pair(1)
    await stub.RevokeCertificate(pb.RevokeCertificateRequest(
        name=second, reason=reasons.KEY_COMPROMISE))
    assert await state(first) == (revoked, reasons.KEY_COMPROMISE)
    serial = (await stub.GetCertificate(pb.GetCertificateRequest(name=first))).serial_number
    status = await stub.GetCertificateStatus(pb.GetCertificateStatusRequest(serial_number=serial))
    assert status.status == pb.CertificateStatus.REVOKED

    first, second = await renewed_pair(2)
    await stub.RevokeCertificate(pb.RevokeCertificateRequest(
        name=second, reason=reasons.CESSATION_OF_OPERATION))
    assert await state(first) == (revoked, reasons.CESSATION_OF_OPERATION)

    first, second = await renewed_pair(3)
    held = await stub.RevokeCertificate(pb.RevokeCertificateRequest(
        name=second, reason=reasons.CERTIFICATE_HOLD))
    assert held.state == R.COMPLETED
    # A hold suspends the key and identity: the renewed-from twin is held with it...
    assert await state(first) == (pb.Certificate.ON_HOLD, reasons.CERTIFICATE_HOLD)
    await stub.ReleaseCertificateHold(pb.ReleaseCertificateHoldRequest(name=second))
    # ...and released with it.
    assert (await state(first))[0] == pb.Certificate.VALID
    assert (await state(second))[0] == pb.Certificate.VALID

    first, second = await renewed_pair(4)
    rekeyed = await stub.RekeyCertificate(pb.RekeyCertificateRequest(
        name=second, csr=csr_for(ec.generate_private_key(ec.SECP256R1()))))
    assert rekeyed.state == R.COMPLETED
    assert await state(second) == (revoked, reasons.SUPERSEDED)
    assert await state(first) == (revoked, reasons.SUPERSEDED)

    first, second = await renewed_pair(5)
    moved = await stub.ModifyCertificate(pb.ModifyCertificateRequest(
        name=second, subject=pb.CertificateSubject(unit="Phòng Tư pháp",
                                                   agency_code="000.00.32.H29"),
        update_mask=["unit", "agency_code"]))
    assert moved.state == R.COMPLETED
    assert await state(second) == (revoked, reasons.AFFILIATION_CHANGED)
    assert await state(first) == (revoked, reasons.AFFILIATION_CHANGED)
    assert (await state(moved.result_certificate))[0] == pb.Certificate.VALID
