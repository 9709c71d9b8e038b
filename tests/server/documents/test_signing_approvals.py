"""Remote signing authorised by the official's approval in the citizen app (SCAL2), on a running
server with the identity provider, on SQLite and PostgreSQL: the app holds a real P-256 device
key, the credential's key is in SoftHSM2. Every attack is refused with its reason and audited."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import io
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, utils
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from sqlalchemy import select

from server.documents.stores import add_credential
from server.storage.audit import AuditEventRow
from server.storage.db import Database
from signing.ca import CertificateSpec, KeyAlgorithm, KeyUsages, SubjectInfo, issue_certificate
from signing.pkcs11 import Token, TokenConfig
from signing.sign.remote import SigningCredential, approval_code
from tests.server.documents.test_signing_service import CALLERS, documents_section, sign, stub
from tests.server.identity.harness import CitizenApp
from tests.signing.sign.docpki import AGENCY_CODE, DocumentPki
from tests.signing.sign.pdfs import decision_pdf
from tests.support.pki import TestPki, pem
from tests.support.server import RunningServer, free_port, running_server
from tests.support.softhsm import USER_PIN, SoftHsm
from vnegov.signing.v1 import documents_pb2 as pb
from vnegov.signing.v1 import documents_pb2_grpc
from vnid.account_admin import AccountAdmin
from vnid.accounts import AccountKind, EvidenceType, ProofingMethod, ProofingRecord
from vnid.personal_id import Sex

AN, BINH, CUONG = "079084000711", "079084000712", "079084000713"


@dataclass
class Official:
    identifier: str
    account_id: str
    credential_id: str
    certificate: x509.Certificate
    app: CitizenApp


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def reason(err: grpc.aio.AioRpcError) -> str:
    status = rpc_status.from_call(err)  # type: ignore[arg-type]
    assert status is not None
    for detail in status.details:
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info):
            return str(info.reason)
    return ""


async def refused(call: Any) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return caught.value.code(), reason(caught.value)


def credential_for(db: Database, doc_pki: DocumentPki, softhsm: SoftHsm, owner: str,
                   name: str, account_id: str) -> tuple[str, x509.Certificate]:
    """A SoftHSM2 key and a certificate whose revocation status the test PKI's CRL answers."""
    token = Token(TokenConfig(softhsm.module, softhsm.token_label, USER_PIN))
    label = softhsm.unique_label("official")
    key = token.generate_key(label, KeyAlgorithm.EC_P256)
    token.close()
    crl = doc_pki.cert("official").extensions.get_extension_for_class(
        x509.CRLDistributionPoints).value
    crl_urls = [n.value for p in crl for n in p.full_name or ()]
    at = now()
    cert = issue_certificate(CertificateSpec(
        subject=x509.Name.from_rfc4514_string(
            f"CN={name},2.5.4.12=Chủ tịch,O=UBND Thành phố Hồ Chí Minh,C=VN"),
        not_before=at - dt.timedelta(hours=1), not_after=at + dt.timedelta(days=30),
        key_usages=KeyUsages(digital_signature=True, content_commitment=True),
        subject_info=SubjectInfo(agency_code=AGENCY_CODE, personal_id=owner), crl_urls=crl_urls),
        key.public_key(), doc_pki.key("interm"), doc_pki.interm)  # type: ignore[arg-type]
    credential_id = f"cred-{label}"
    add_credential(db, SigningCredential(credential_id, owner, label, (cert, doc_pki.interm),
                                         identity_account=account_id),
                   AGENCY_CODE, at=at, actor="test")
    return credential_id, cert


def person(admin: AccountAdmin, identifier: str, name: str, *, level2: bool) -> str:
    at = now()
    account = admin.create(kind=AccountKind.CITIZEN, identifier=identifier, full_name=name,
                           now=at, date_of_birth=dt.date(1984, 5, 17), sex=Sex.MALE,
                           province_code="79")
    if level2:
        account = admin.record_proofing(account.account_id, ProofingRecord(
            evidence_type=EvidenceType.CHIP_ID_CARD,
            method=ProofingMethod.IN_PERSON_CHIP_AND_FACE, place="Công an phường Bến Thành",
            officer="CA-0042", proofed_at=at - dt.timedelta(days=3),
            evidence_valid_until=dt.date(2040, 5, 16)), at)
    return account.account_id


class Phone:
    """The official's phone on its own thread: lists the requests waiting for its device and
    answers one with the device key."""

    def __init__(self, app: CitizenApp) -> None:
        self.app = app

    def pending(self) -> list[dict[str, Any]]:
        url = f"{self.app.issuer}/app/v1/approvals"
        with httpx.Client(timeout=10) as http:
            r = http.get(url, headers={"authorization": "Device " + self.app.statement(
                "vnid-device+jwt", {"htm": "GET", "htu": url})})
        assert r.status_code == 200, r.text
        items: list[dict[str, Any]] = r.json() if isinstance(r.json(), list) \
            else r.json()["approvals"]
        return items

    def answer(self, code: str, *, decision: str = "approve", uv: tuple[str, ...] = ("pin",),
               approval_id: str = "") -> httpx.Response:
        """Answer the request whose message shows ``code`` (or the given approval id)."""
        if not approval_id:
            [item] = [i for i in self.pending() if code in i["binding_message"]]
            approval_id = item["approval"]
        with httpx.Client(timeout=10) as http:
            return self.app.approve(http, approval_id, decision=decision, uv=uv)


@dataclass
class Setup:
    srv: RunningServer
    db: Database
    an: Official
    binh: Official
    cuong: Official  # level-1 account
    unlinked: str  # a credential of An's not linked to an identity account

    @property
    def s(self) -> documents_pb2_grpc.SigningServiceStub:
        return stub(self.srv)

    async def start(self, who: Official, digests: list[bytes],
                    algorithm: str = "sha256") -> pb.StartCredentialApprovalResponse:
        started: pb.StartCredentialApprovalResponse = await self.s.StartCredentialApproval(
            pb.StartCredentialApprovalRequest(credential_id=who.credential_id,
                                              signer_id=who.identifier, hashes=digests,
                                              hash_algorithm=algorithm))
        return started

    def authorize(self, who: Official, approval_id: str, digests: list[bytes],
                  *, credential_id: str = "") -> Any:
        return self.s.AuthorizeCredential(pb.AuthorizeCredentialRequest(
            credential_id=credential_id or who.credential_id, signer_id=who.identifier,
            hashes=digests, hash_algorithm="sha256",
            second_factor=pb.SecondFactor(approval=approval_id)))

    async def answer(self, who: Official, code: str, **kw: Any) -> httpx.Response:
        return await asyncio.to_thread(Phone(who.app).answer, code, **kw)


@contextlib.asynccontextmanager
async def approval_server(pki: TestPki, tmp_path: Path, db: Database, doc_pki: DocumentPki,
                          softhsm: SoftHsm) -> AsyncIterator[Setup]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    extra = {"documents": documents_section(doc_pki, softhsm, tmp_path / "documents"),
             "auth": {"callers": CALLERS}, "server": {"public_url": base},
             "identity": {"issuer": base + "/id", "argon2_time_cost": 1,
                          "argon2_memory_kib": 1024, "argon2_parallelism": 1,
                          "worker_interval_seconds": 0.2}}
    async with running_server(pki, tmp_path, db.url.render_as_string(False), http_port=port,
                              extra=extra) as srv:
        provider = srv.app.context.registry["identity_provider"]
        admin = AccountAdmin(provider.core)

        def official(identifier: str, name: str, level2: bool) -> Official:
            account_id = person(admin, identifier, name, level2=level2)
            credential_id, cert = credential_for(db, doc_pki, softhsm, identifier, name,
                                                 account_id)
            app = CitizenApp(base + "/id")
            with httpx.Client(timeout=10) as http:
                app.enrol(http, provider.devices.create_enrolment(account_id, now()))
            return Official(identifier, account_id, credential_id, cert, app)

        an = await asyncio.to_thread(official, AN, "Nguyễn Văn An", True)
        binh = await asyncio.to_thread(official, BINH, "Trần Văn Bình", True)
        cuong = await asyncio.to_thread(official, CUONG, "Lê Văn Cường", False)
        unlinked, _ = await asyncio.to_thread(credential_for, db, doc_pki, softhsm, AN,
                                              "Nguyễn Văn An", "")
        yield Setup(srv, db, an, binh, cuong, unlinked)


def digest(text: str) -> bytes:
    return hashlib.sha256(text.encode()).digest()


def audit(db: Database, action: str) -> list[tuple[str, str]]:
    with db.read() as session:
        rows = session.execute(select(AuditEventRow.outcome, AuditEventRow.reason).where(
            AuditEventRow.action == action).order_by(AuditEventRow.seq)).all()
    return [(r.outcome, r.reason) for r in rows]


def refusals(db: Database) -> list[str]:
    return [outcome for outcome, _ in audit(db, "remote_signing.approval_refused")]


async def test_approval_authorises_exactly_the_approved_hashes(
        pki: TestPki, tmp_path: Path, db: Database, doc_pki: DocumentPki,
        softhsm: SoftHsm) -> None:
    async with approval_server(pki, tmp_path, db, doc_pki, softhsm) as t:
        an, h = t.an, digest("Quyết định 123/QĐ-UBND")
        started = await t.start(an, [h])
        assert started.approval_code == approval_code([h], "sha256")
        assert started.approval_code in started.binding_message and started.interval >= 1
        # The official's phone shows the request with the code the caller shows beside the
        # document.
        [shown] = await asyncio.to_thread(Phone(an.app).pending)
        assert started.approval_code in shown["binding_message"]
        # Not approved yet: pending, and the caller may ask again.
        assert await refused(t.authorize(an, started.approval_id, [h])) == (
            grpc.StatusCode.FAILED_PRECONDITION, "APPROVAL_PENDING")
        r = await t.answer(an, started.approval_code)
        assert r.status_code == 200, r.text
        auth = await t.authorize(an, started.approval_id, [h])
        signed = await t.s.SignHash(pb.SignHashRequest(
            credential_id=an.credential_id, signer_id=an.identifier, sad=auth.sad, hashes=[h],
            hash_algorithm="sha256"))
        public = an.certificate.public_key()
        assert isinstance(public, ec.EllipticCurvePublicKey)
        public.verify(signed.signatures[0], h, ec.ECDSA(utils.Prehashed(hashes.SHA256())))
        # The SAD is as before: bound to the hashes, used once.
        assert (await refused(t.s.SignHash(pb.SignHashRequest(
            credential_id=an.credential_id, signer_id=an.identifier, sad=auth.sad, hashes=[h],
            hash_algorithm="sha256"))))[0] == grpc.StatusCode.UNAUTHENTICATED
        # The approval was used up: it authorises nothing more.
        assert await refused(t.authorize(an, started.approval_id, [h])) == (
            grpc.StatusCode.UNAUTHENTICATED, "APPROVAL_UNKNOWN")
        # Several hashes under one approval when the credential allows it is refused by the
        # credential's multisign (1), as with TOTP.
        assert (await refused(t.start(an, [h, digest("other")])))[1] == "TOO_MANY_HASHES"
    assert audit(db, "remote_signing.approval_request") == [("OK", "")]
    assert audit(db, "remote_signing.approval_closed") == [("OK", "")]
    assert audit(db, "remote_signing.authorize") == [("OK", "")]
    assert refusals(db) == ["APPROVAL_UNKNOWN"]
    calls = audit(db, "/vnegov.signing.v1.SigningService/AuthorizeCredential")
    assert calls == [("FAILED_PRECONDITION", "APPROVAL_PENDING"), ("OK", ""),
                     ("UNAUTHENTICATED", "APPROVAL_UNKNOWN")]


async def test_attacks_on_the_approval_are_refused_and_audited(
        pki: TestPki, tmp_path: Path, db: Database, doc_pki: DocumentPki,
        softhsm: SoftHsm) -> None:
    async with approval_server(pki, tmp_path, db, doc_pki, softhsm) as t:
        an, binh, cuong = t.an, t.binh, t.cuong
        h, other = digest("Quyết định 124"), digest("Quyết định 666")

        # Approved for one document, presented for another: refused; the approval stays good
        # for its own document only.
        started = await t.start(an, [h])
        assert (await t.answer(an, started.approval_code)).status_code == 200
        assert await refused(t.authorize(an, started.approval_id, [other])) == (
            grpc.StatusCode.UNAUTHENTICATED, "APPROVAL_MISMATCH")
        # ...or for the same hash under another hash algorithm label
        assert await refused(t.s.AuthorizeCredential(pb.AuthorizeCredentialRequest(
            credential_id=an.credential_id, signer_id=an.identifier,
            hashes=[hashlib.sha384(b"x").digest()], hash_algorithm="sha384",
            second_factor=pb.SecondFactor(approval=started.approval_id)))) == (
            grpc.StatusCode.UNAUTHENTICATED, "APPROVAL_MISMATCH")
        sad = (await t.authorize(an, started.approval_id, [h])).sad
        assert sad

        # Another person cannot approve An's request with their own device...
        started = await t.start(an, [other])
        [mine] = await asyncio.to_thread(Phone(an.app).pending)
        r = await t.answer(binh, "", approval_id=mine["approval"])
        assert r.status_code == 401
        assert await refused(t.authorize(an, started.approval_id, [other])) == (
            grpc.StatusCode.FAILED_PRECONDITION, "APPROVAL_PENDING")
        # ...and Bình's own approval of the same hash does not authorise An's credential.
        theirs = await t.start(binh, [other])
        assert (await t.answer(binh, theirs.approval_code)).status_code == 200
        assert await refused(t.authorize(an, theirs.approval_id, [other])) == (
            grpc.StatusCode.UNAUTHENTICATED, "APPROVAL_MISMATCH")
        assert await refused(t.authorize(an, theirs.approval_id, [other],
                                          credential_id=binh.credential_id)) == (
            grpc.StatusCode.PERMISSION_DENIED, "CREDENTIAL_NOT_PERMITTED")

        # Refused in the app: refused here, and closed.
        denied = await t.start(an, [digest("denied")])
        assert (await t.answer(an, denied.approval_code, decision="deny")).status_code == 200
        assert await refused(t.authorize(an, denied.approval_id, [digest("denied")])) == (
            grpc.StatusCode.UNAUTHENTICATED, "APPROVAL_DENIED")
        assert await refused(t.authorize(an, denied.approval_id, [digest("denied")])) == (
            grpc.StatusCode.UNAUTHENTICATED, "APPROVAL_UNKNOWN")

        # The device key alone, not unlocked by PIN or biometrics: one factor, level 1.
        weak = await t.start(an, [digest("weak")])
        assert (await t.answer(an, weak.approval_code, uv=())).status_code == 200
        assert await refused(t.authorize(an, weak.approval_id, [digest("weak")])) == (
            grpc.StatusCode.UNAUTHENTICATED, "APPROVAL_BELOW_LEVEL_2")

        # A level-1 account is never asked.
        assert await refused(t.start(cuong, [h])) == (
            grpc.StatusCode.FAILED_PRECONDITION, "APPROVER_BELOW_LEVEL_2")
        # A credential not linked to its owner's identity cannot be approved in the app.
        assert await refused(t.s.StartCredentialApproval(pb.StartCredentialApprovalRequest(
            credential_id=t.unlinked, signer_id=an.identifier, hashes=[h],
            hash_algorithm="sha256"))) == (grpc.StatusCode.FAILED_PRECONDITION,
                                           "APPROVAL_NOT_LINKED")
        # An approval id nobody issued.
        assert await refused(t.authorize(an, "made-up-approval-id", [h])) == (
            grpc.StatusCode.UNAUTHENTICATED, "APPROVAL_UNKNOWN")
        # SignDocument computes its hash itself, so it cannot take an approval.
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await sign(t.s, pb.SignDocumentHeader(format=pb.PDF, credential=pb.RemoteCredential(
                credential_id=an.credential_id, signer_id=an.identifier,
                second_factor=pb.SecondFactor(approval=started.approval_id))), decision_pdf())
        assert reason(caught.value) == "APPROVAL_NEEDS_HASHES"

        # Past its lifetime: an unanswered request, and an approved one not yet redeemed.
        late = await t.start(an, [digest("late")])
        stale = await t.start(an, [digest("stale")])
        assert (await t.answer(an, stale.approval_code)).status_code == 200
        clock = t.srv.app.context.clock
        later: Callable[[], dt.datetime] = lambda: clock() + dt.timedelta(seconds=301)  # noqa: E731
        t.srv.app.context.clock = later
        try:
            assert await refused(t.authorize(an, late.approval_id, [digest("late")])) == (
                grpc.StatusCode.UNAUTHENTICATED, "APPROVAL_EXPIRED")
            assert await refused(t.authorize(an, stale.approval_id, [digest("stale")])) == (
                grpc.StatusCode.UNAUTHENTICATED, "APPROVAL_EXPIRED")
        finally:
            t.srv.app.context.clock = clock

    assert refusals(db) == [
        "APPROVAL_MISMATCH", "APPROVAL_MISMATCH", "APPROVAL_MISMATCH", "APPROVAL_DENIED",
        "APPROVAL_UNKNOWN", "APPROVAL_BELOW_LEVEL_2", "APPROVAL_NOT_LINKED", "APPROVAL_UNKNOWN",
        "APPROVAL_EXPIRED", "APPROVAL_EXPIRED"]
    assert audit(db, "remote_signing.authorize") == [("OK", "")]
    starts = audit(db, "/vnegov.signing.v1.SigningService/StartCredentialApproval")
    assert ("FAILED_PRECONDITION", "APPROVER_BELOW_LEVEL_2") in starts
    asked = audit(db, "ciba.request")  # the identity provider's own record
    assert [r for r in asked if r != ("OK", "")] == [("FAILED", "APPROVER_BELOW_LEVEL_2")]


async def test_pdf_signed_through_an_approval_verifies(
        pki: TestPki, tmp_path: Path, db: Database, doc_pki: DocumentPki,
        softhsm: SoftHsm) -> None:
    from server.documents.csc_client import GrpcCscClient
    from signing.sign import PadesOptions, RemoteSigner, sign_pdf
    from signing.sign.remote import ApprovalStart
    from signing.sign.revocation import TrustSettings
    from signing.validate import Indication, validate_pdf

    async with approval_server(pki, tmp_path, db, doc_pki, softhsm) as t:
        shown: list[str] = []

        def caller_side() -> bytes:  # the signature creation application, on its own thread
            creds = grpc.ssl_channel_credentials(pem(pki.root.cert), pki.hcm.key_pem,
                                                 pki.hcm.chain_pem)
            with grpc.secure_channel(t.srv.target, creds) as channel:
                client = GrpcCscClient(channel, t.an.identifier)

                def on_start(start: ApprovalStart) -> None:
                    shown.append(start.approval_code)
                    r = Phone(t.an.app).answer(start.approval_code)
                    assert r.status_code == 200, r.text

                signer = RemoteSigner.with_approval(client, t.an.credential_id,
                                                    on_start=on_start)
                out = io.BytesIO()
                sign_pdf(io.BytesIO(decision_pdf()), out, signer, at=now(),
                         options=PadesOptions())
                return out.getvalue()

        data = await asyncio.to_thread(caller_side)
    assert len(shown) == 1
    report = await asyncio.to_thread(validate_pdf, io.BytesIO(data),
                                     trust=TrustSettings(trust_roots=[doc_pki.root]), at=now())
    assert report.indication is Indication.TOTAL_PASSED, report.to_text()
    [signature] = report.signatures
    assert signature.signer is not None and signature.signer.name == "Nguyễn Văn An"
