"""SigningService over real mutual TLS: streamed signing and verification of PDF, CMS and XML,
remote signing with CSC semantics on both databases, and the permission rules."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import grpc
import pyotp
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils
from sqlalchemy import select

from server.documents.stores import add_credential, set_totp_secret
from server.storage.audit import AuditEventRow
from server.storage.db import Database
from signing.ca import CertificateSpec, KeyAlgorithm, KeyUsages, SubjectInfo, issue_certificate
from signing.pkcs11 import Token, TokenConfig
from signing.sign.remote import SigningCredential
from tests.signing.sign.docpki import AGENCY_CODE, DocumentPki
from tests.signing.sign.pdfs import decision_pdf
from tests.signing.stamp.images import signature_png
from tests.support.pki import TestPki
from tests.support.server import RunningServer, running_server
from tests.support.softhsm import USER_PIN, SoftHsm
from vnegov.signing.v1 import documents_pb2 as pb
from vnegov.signing.v1 import documents_pb2_grpc

OWNER = "079084000123"
SECRET = pyotp.random_base32()
CALLERS = [
    {"agency_code": "000.00.00.H29", "name": "dvc-hcm", "provinces": ["79"],
     "scopes": ["documents.sign", "documents.verify", "documents.remote_sign",
                "documents.archive"]},
    {"agency_code": "000.00.00.H26", "scopes": ["documents.sign", "documents.verify"],
     "provinces": ["01"]},
    {"agency_code": "000.00.00.G22", "scopes": ["documents.verify", "audit.read"],
     "provinces": ["*"]},
]


def documents_section(doc_pki: DocumentPki, softhsm: SoftHsm, directory: Path) -> dict[str, Any]:
    directory.mkdir(parents=True, exist_ok=True)
    agency = doc_pki.credential("agency")
    (directory / "root.pem").write_bytes(doc_pki.pem("root"))
    (directory / "agency.pem").write_bytes(doc_pki.pem("agency", "interm"))
    (directory / "agency.key").write_bytes(agency.key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    (directory / "pin").write_text(USER_PIN)
    return {
        "tsa_url": doc_pki.tsa_url, "trust_roots": [str(directory / "root.pem")],
        "token_module": softhsm.module, "token_label": softhsm.token_label,
        "token_pin_file": str(directory / "pin"),
        "signers": [{"name": "ubnd-hcm", "agency_code": AGENCY_CODE,
                     "certificate_file": str(directory / "agency.pem"),
                     "key_file": str(directory / "agency.key")}],
    }


def register_official(db: Database, doc_pki: DocumentPki, softhsm: SoftHsm) -> str:
    token = Token(TokenConfig(softhsm.module, softhsm.token_label, USER_PIN))
    label = softhsm.unique_label("official")
    key = token.generate_key(label, KeyAlgorithm.EC_P256)
    now = dt.datetime.now(dt.UTC)
    cert = issue_certificate(CertificateSpec(
        subject=x509.Name.from_rfc4514_string(
            "CN=Nguyễn Văn An,2.5.4.12=Chủ tịch,O=UBND Thành phố Hồ Chí Minh,C=VN"),
        not_before=now - dt.timedelta(hours=1), not_after=now + dt.timedelta(days=30),
        key_usages=KeyUsages(digital_signature=True, content_commitment=True),
        subject_info=SubjectInfo(agency_code=AGENCY_CODE, personal_id=OWNER)),
        key.public_key(), doc_pki.key("interm"), doc_pki.interm)  # type: ignore[arg-type]
    credential_id = f"cred-{label}"
    add_credential(db, SigningCredential(credential_id, OWNER, label, (cert, doc_pki.interm)),
                   AGENCY_CODE, at=now, actor="test")
    set_totp_secret(db, OWNER, SECRET, at=now, actor="test")
    return credential_id


@pytest.fixture
async def srv(pki: TestPki, tmp_path: Path, sqlite_db: Database, doc_pki: DocumentPki,
              softhsm: SoftHsm) -> AsyncIterator[RunningServer]:
    extra = {"documents": documents_section(doc_pki, softhsm, tmp_path / "documents"),
             "auth": {"callers": CALLERS}}
    async with running_server(pki, tmp_path, sqlite_db.url.render_as_string(False),
                              extra=extra) as running:
        yield running


def stub(srv: RunningServer, who: str = "hcm") -> documents_pb2_grpc.SigningServiceStub:
    return documents_pb2_grpc.SigningServiceStub(srv.channel(getattr(srv.pki, who)))


def chunks(data: bytes, size: int = 64 * 1024) -> Iterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i:i + size]


async def sign(s: documents_pb2_grpc.SigningServiceStub, header: pb.SignDocumentHeader,
               data: bytes, *, header_alone: bool = False,
               metadata: tuple[tuple[str, str], ...] | None = None
               ) -> tuple[bytes, pb.SignDocumentResult]:
    """Sign ``data``: the header travels with the first chunk, or alone when ``header_alone``."""
    async def requests() -> AsyncIterator[pb.SignDocumentRequest]:
        parts = chunks(data)
        if header_alone:
            yield pb.SignDocumentRequest(header=header)
        else:
            yield pb.SignDocumentRequest(header=header, chunk=next(parts, b""))
        for chunk in parts:
            yield pb.SignDocumentRequest(chunk=chunk)

    out = bytearray()
    result = None
    async for response in s.SignDocument(requests(), metadata=metadata):
        assert result is None, "the result comes in the last message"
        out += response.chunk
        if response.HasField("result"):
            result = response.result
    assert result is not None
    assert result.size == len(out) and result.sha256 == hashlib.sha256(out).hexdigest()
    return bytes(out), result


async def verify(s: documents_pb2_grpc.SigningServiceStub, header: pb.VerifyDocumentHeader,
                 data: bytes) -> pb.VerifyDocumentResponse:
    async def requests() -> AsyncIterator[pb.VerifyDocumentRequest]:
        parts = chunks(data)
        yield pb.VerifyDocumentRequest(header=header, chunk=next(parts, b""))
        for chunk in parts:
            yield pb.VerifyDocumentRequest(chunk=chunk)

    response: pb.VerifyDocumentResponse = await s.VerifyDocument(requests())
    return response


async def test_sign_pdf_as_agency_and_verify_streamed(srv: RunningServer,
                                                      tmp_path: Path) -> None:
    data, result = await sign(stub(srv), pb.SignDocumentHeader(
        format=pb.PDF, level=pb.B_T, agency_signer="ubnd-hcm", reason="Ban hành"),
        decision_pdf())
    assert result.signature_id == "Signature1" and result.level == pb.B_T
    assert result.sha256 == hashlib.sha256(data).hexdigest() and result.size == len(data)
    path = tmp_path / "signed.pdf"
    path.write_bytes(data)
    assert "Signature is Valid." in subprocess.run(["pdfsig", str(path)], capture_output=True,
                                                   text=True).stdout
    report = await verify(stub(srv, "portal"), pb.VerifyDocumentHeader(format=pb.PDF), data)
    assert report.indication == pb.TOTAL_PASSED, report.report_text
    [sig] = report.signatures
    assert sig.signer.agency_code == AGENCY_CODE
    assert sig.signing_time_source == "signature-timestamp"
    assert report.etsi_reports and '"indication": "TOTAL-PASSED"' in report.report_json
    # The call's audit event names the document returned: of a call repeated after its answer
    # was lost (two events, one request id), it shows which one the caller got.
    with srv.app.context.db.read() as session:
        [event] = session.execute(select(AuditEventRow).where(
            AuditEventRow.action == "/vnegov.signing.v1.SigningService/SignDocument")).scalars()
    assert (event.outcome, json.loads(event.details)["result_sha256"]) == ("OK", result.sha256)


async def extend(s: documents_pb2_grpc.SigningServiceStub,
                 data: bytes) -> tuple[bytes, pb.ExtendDocumentResult]:
    async def requests() -> AsyncIterator[pb.ExtendDocumentRequest]:
        parts = chunks(data)
        yield pb.ExtendDocumentRequest(header=pb.ExtendDocumentHeader(), chunk=next(parts, b""))
        for chunk in parts:
            yield pb.ExtendDocumentRequest(chunk=chunk)

    out = bytearray()
    result = None
    async for response in s.ExtendDocument(requests()):
        out += response.chunk
        if response.HasField("result"):
            result = response.result
    assert result is not None
    assert result.size == len(out) and result.sha256 == hashlib.sha256(out).hexdigest()
    return bytes(out), result


async def test_extend_document_renews_the_archive_and_lists_the_changes(
        srv: RunningServer) -> None:
    data, _ = await sign(stub(srv), pb.SignDocumentHeader(
        format=pb.PDF, level=pb.B_LTA, agency_signer="ubnd-hcm"), decision_pdf())
    extended, result = await extend(stub(srv), data)
    assert extended.startswith(data)  # an incremental update: nothing signed is rewritten
    assert result.signatures == 2  # the signature and its document time-stamp
    assert result.valid_until.ToDatetime(dt.UTC) > dt.datetime.now(dt.UTC)
    report = await verify(stub(srv), pb.VerifyDocumentHeader(format=pb.PDF), extended)
    assert report.indication == pb.TOTAL_PASSED, report.report_text
    [sig] = report.signatures
    assert sig.format == "PAdES-B-LTA"
    assert {c.kind for c in sig.changes} == {"document-timestamp", "validation-data"}
    assert not sig.HasField("revoked_at")
    # the portal may verify, not renew; a file that is not a PDF is refused, nothing returned
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await extend(stub(srv, "portal"), data)
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await extend(stub(srv), b"not a pdf")
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.aio.AioRpcError) as caught:  # unsigned: nothing to keep verifiable
        await extend(stub(srv), decision_pdf())
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_cms_and_xml_round_trip(srv: RunningServer, tmp_path: Path,
                                      doc_pki: DocumentPki) -> None:
    content = "Tờ khai lệ phí trước bạ".encode() * 10000
    p7s, _ = await sign(stub(srv), pb.SignDocumentHeader(
        format=pb.CMS_DETACHED, level=pb.B_T, agency_signer="ubnd-hcm"), content)
    report = await verify(stub(srv), pb.VerifyDocumentHeader(
        format=pb.CMS_DETACHED, detached_signature=p7s), content)
    assert report.indication == pb.TOTAL_PASSED, report.report_text
    report = await verify(stub(srv), pb.VerifyDocumentHeader(
        format=pb.CMS_DETACHED, detached_signature=p7s), content + b"!")
    assert (report.indication, report.signatures[0].sub_indication) == \
        (pb.TOTAL_FAILED, "HASH_FAILURE")

    xml = b'<BLai><DLBLai Id="DLBLai"><TgTien>50000</TgTien></DLBLai><DSCKS><NBan/></DSCKS></BLai>'
    signed, result = await sign(stub(srv), pb.SignDocumentHeader(
        format=pb.XML, agency_signer="ubnd-hcm", xml=pb.XmlOptions(
            reference_id="DLBLai", signature_id="NBan", signature_parent="DSCKS/NBan")), xml)
    (tmp_path / "r.xml").write_bytes(signed)
    (tmp_path / "root.pem").write_bytes(doc_pki.pem("root"))
    (tmp_path / "interm.pem").write_bytes(doc_pki.pem("interm"))
    done = subprocess.run(["xmlsec1", "--verify", "--trusted-pem", str(tmp_path / "root.pem"),
                           "--untrusted-pem", str(tmp_path / "interm.pem"), "--id-attr:Id",
                           "DLBLai", "--id-attr:Id", "Object", str(tmp_path / "r.xml")],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    report = await verify(stub(srv), pb.VerifyDocumentHeader(format=pb.XML), signed)
    assert report.indication == pb.TOTAL_PASSED, report.report_text


async def test_keys_and_scopes_are_the_callers_own(srv: RunningServer) -> None:
    header = pb.SignDocumentHeader(format=pb.PDF, agency_signer="ubnd-hcm")
    for who, name in (("hanoi", "ubnd-hcm"), ("hcm", "no-such-key")):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await sign(stub(srv, who), pb.SignDocumentHeader(format=pb.PDF, agency_signer=name),
                       decision_pdf())
        assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.aio.AioRpcError) as caught:  # the portal may verify, not sign
        await sign(stub(srv, "portal"), header, decision_pdf())
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.aio.AioRpcError) as caught:  # no remote signing scope
        await stub(srv, "hanoi").ListCredentials(pb.ListCredentialsRequest(signer_id=OWNER))
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_stream_must_start_with_a_header(srv: RunningServer) -> None:
    async def requests() -> AsyncIterator[pb.SignDocumentRequest]:
        yield pb.SignDocumentRequest(chunk=b"%PDF-")

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        async for _ in stub(srv).SignDocument(requests()):
            pass
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await sign(stub(srv), pb.SignDocumentHeader(format=pb.PDF, agency_signer="ubnd-hcm"),
                   b"not a pdf at all")
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT

    header = pb.SignDocumentHeader(format=pb.PDF, agency_signer="ubnd-hcm")

    async def header_twice() -> AsyncIterator[pb.SignDocumentRequest]:
        yield pb.SignDocumentRequest(header=header, chunk=decision_pdf())
        yield pb.SignDocumentRequest(header=header)

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        async for _ in stub(srv).SignDocument(header_twice()):
            pass
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "HEADER_TWICE" in str(caught.value.trailing_metadata())


async def test_header_alone_or_with_the_first_chunk(srv: RunningServer) -> None:
    """Clients may send the header in a message of its own, or with the first chunk."""
    header = pb.SignDocumentHeader(format=pb.PDF, agency_signer="ubnd-hcm")
    document = decision_pdf()
    for alone in (True, False):
        signed, result = await sign(stub(srv), header, document, header_alone=alone)
        assert signed.startswith(document[:8]) and len(signed) > len(document)
        assert result.signature_id


async def test_remote_signing_on_both_databases(pki: TestPki, tmp_path: Path, db: Database,
                                                doc_pki: DocumentPki, softhsm: SoftHsm) -> None:
    credential_id = register_official(db, doc_pki, softhsm)
    extra = {"documents": documents_section(doc_pki, softhsm, tmp_path / "documents"),
             "auth": {"callers": CALLERS}}
    async with running_server(pki, tmp_path, db.url.render_as_string(False),
                              extra=extra) as srv:
        s = stub(srv)
        listed = await s.ListCredentials(pb.ListCredentialsRequest(signer_id=OWNER))
        assert list(listed.credential_ids) == [credential_id]
        info = await s.GetCredentialInfo(pb.GetCredentialInfoRequest(
            credential_id=credential_id, signer_id=OWNER))
        assert (info.scal, info.key_algorithm, info.status) == ("2", "ec", "enabled")
        cert = x509.load_der_x509_certificate(info.certificates[0])

        totp = pyotp.TOTP(SECRET)
        digest = hashlib.sha256(b"Quyet dinh 123").digest()
        auth = await s.AuthorizeCredential(pb.AuthorizeCredentialRequest(
            credential_id=credential_id, signer_id=OWNER, hashes=[digest],
            hash_algorithm="sha256", second_factor=pb.SecondFactor(totp=totp.now())))
        signed = await s.SignHash(pb.SignHashRequest(
            credential_id=credential_id, signer_id=OWNER, sad=auth.sad, hashes=[digest],
            hash_algorithm="sha256"))
        public = cert.public_key()
        assert isinstance(public, ec.EllipticCurvePublicKey)
        public.verify(signed.signatures[0], digest, ec.ECDSA(utils.Prehashed(hashes.SHA256())))
        with pytest.raises(grpc.aio.AioRpcError) as caught:  # a SAD signs once
            await s.SignHash(pb.SignHashRequest(
                credential_id=credential_id, signer_id=OWNER, sad=auth.sad, hashes=[digest],
                hash_algorithm="sha256"))
        assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
        with pytest.raises(grpc.aio.AioRpcError) as caught:  # the code was used
            await s.AuthorizeCredential(pb.AuthorizeCredentialRequest(
                credential_id=credential_id, signer_id=OWNER, hashes=[digest],
                hash_algorithm="sha256", second_factor=pb.SecondFactor(totp=totp.now())))
        assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
        with pytest.raises(grpc.aio.AioRpcError) as caught:  # someone else's official
            await s.GetCredentialInfo(pb.GetCredentialInfoRequest(
                credential_id=credential_id, signer_id="001190000042"))
        assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED

        # the whole document in one call: the server computes the hash and the official's
        # code authorises exactly that signature
        code = totp.at(dt.datetime.now(dt.UTC) + dt.timedelta(seconds=30))
        person = pb.Appearance(person=pb.PersonAppearance(
            page=0, box=pb.Box(x1=330, y1=150, x2=530, y2=290), title="CHỦ TỊCH",
            full_name="Nguyễn Văn An", signature_png=signature_png()))
        srv.app.context.clock = lambda: dt.datetime.now(dt.UTC) + dt.timedelta(seconds=30)
        data, result = await sign(s, pb.SignDocumentHeader(
            format=pb.PDF, appearance=person, credential=pb.RemoteCredential(
                credential_id=credential_id, signer_id=OWNER,
                second_factor=pb.SecondFactor(totp=code))), decision_pdf())
        assert result.signature_id == "Signature1"
        path = tmp_path / "remote.pdf"
        path.write_bytes(data)
        out = subprocess.run(["pdfsig", str(path)], capture_output=True, text=True).stdout
        assert "Signature is Valid." in out and "Nguyễn Văn An" in out
        # The same call again, as a retry sends it (the published service config repeats
        # SignDocument): the code was used, so the official's key signs nothing more.
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await sign(s, pb.SignDocumentHeader(
                format=pb.PDF, appearance=person, credential=pb.RemoteCredential(
                    credential_id=credential_id, signer_id=OWNER,
                    second_factor=pb.SecondFactor(totp=code))), decision_pdf())
        assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED

    with db.read() as session:
        actions = list(session.execute(select(AuditEventRow.action).where(
            AuditEventRow.kind == "documents")).scalars())
    assert actions.count("remote_signing.authorize") == 2
    assert actions.count("remote_signing.sad_used") == 2


async def test_remote_signer_over_grpc_signs_a_pdf_locally(
        pki: TestPki, tmp_path: Path, sqlite_db: Database, doc_pki: DocumentPki,
        softhsm: SoftHsm) -> None:
    import asyncio
    import io

    from server.documents.csc_client import GrpcCscClient
    from signing.sign import PadesOptions, RemoteSigner, SecondFactor, sign_pdf
    from tests.support.pki import pem

    credential_id = register_official(sqlite_db, doc_pki, softhsm)
    extra = {"documents": documents_section(doc_pki, softhsm, tmp_path / "documents"),
             "auth": {"callers": CALLERS}}
    async with running_server(pki, tmp_path, sqlite_db.url.render_as_string(False),
                              extra=extra) as srv:
        def client_side() -> bytes:  # a signature creation application, in its own thread
            creds = grpc.ssl_channel_credentials(pem(pki.root.cert), pki.hcm.key_pem,
                                                 pki.hcm.chain_pem)
            with grpc.secure_channel(srv.target, creds) as channel:
                client = GrpcCscClient(channel, OWNER)
                assert client.list_credentials() == [credential_id]
                signer = RemoteSigner(client, credential_id,
                                      lambda: SecondFactor("totp", pyotp.TOTP(SECRET).now()))
                out = io.BytesIO()
                sign_pdf(io.BytesIO(decision_pdf()), out, signer, at=dt.datetime.now(dt.UTC),
                         options=PadesOptions())
                return out.getvalue()

        data = await asyncio.to_thread(client_side)
    path = tmp_path / "remote-client.pdf"
    path.write_bytes(data)
    out = subprocess.run(["pdfsig", str(path)], capture_output=True, text=True).stdout
    assert "Signature is Valid." in out and "Nguyễn Văn An" in out


@pytest.mark.slow
async def test_large_pdf_streams_through_disk_spools(srv: RunningServer, tmp_path: Path,
                                                     doc_pki: DocumentPki) -> None:
    import io
    import os

    from pyhanko.pdf_utils import generic
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.pdf_utils.writer import PdfFileWriter

    writer = PdfFileWriter()
    for _ in range(12):  # 12 MiB: more than the 8 MiB kept in memory, so both spools hit disk
        page = generic.DictionaryObject({
            generic.NameObject("/Type"): generic.NameObject("/Page"),
            generic.NameObject("/MediaBox"): generic.ArrayObject(
                [generic.NumberObject(x) for x in (0, 0, 595, 842)]),
            generic.NameObject("/Contents"): writer.add_object(generic.StreamObject(
                stream_data=b"% " + os.urandom(512 * 1024).hex().encode() + b"\n")),
            generic.NameObject("/Resources"): generic.DictionaryObject()})
        writer.insert_page(page)
    buffer = io.BytesIO()
    writer.write(buffer)
    document = buffer.getvalue()
    data, result = await sign(stub(srv), pb.SignDocumentHeader(
        format=pb.PDF, agency_signer="ubnd-hcm"), document)
    assert result.size == len(data) > len(document)
    assert data[:len(document)] == document  # an incremental update: the original is intact
    sig = PdfFileReader(io.BytesIO(data)).embedded_signatures[0]
    sig.compute_integrity_info()
    assert sig.summarise_integrity_info()["coverage"].name == "ENTIRE_FILE"
    report = await verify(stub(srv), pb.VerifyDocumentHeader(format=pb.PDF), data)
    assert report.indication == pb.TOTAL_PASSED, report.report_text


async def test_electronic_copy_on_a_landscape_page(srv: RunningServer, tmp_path: Path) -> None:
    import re

    from tests.server.documents.test_cli import landscape_pdf

    copy = pb.Appearance(electronic_copy=pb.ElectronicCopyAppearance(
        copying_body="Văn phòng UBND Thành phố Hồ Chí Minh"))
    data, _ = await sign(stub(srv), pb.SignDocumentHeader(
        format=pb.PDF, agency_signer="ubnd-hcm", appearance=copy), landscape_pdf())
    (tmp_path / "copy.pdf").write_bytes(data)
    bbox = subprocess.run(["pdftotext", "-bbox", str(tmp_path / "copy.pdf"), "-"],
                          capture_output=True, text=True, check=True).stdout
    found = re.search(r'<word xMin="([\d.]+)" yMin="([\d.]+)" xMax="([\d.]+)" yMax="[\d.]+">'
                      r'Bản sao điện tử', bbox)
    assert found is not None, bbox
    x1, y1, x2 = (float(v) for v in found.groups())
    assert x1 > 842 / 2 and x2 <= 842 and 0 <= y1 < 595 / 6
