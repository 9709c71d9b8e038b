"""VerifyReceipt over gRPC: a receipt verifies from its signed data against the national roots the
server publishes for receipts; another agency's seal, an edited amount, wrapping and garbage are
answers with their reason, never errors, and nothing is read from or written to the database."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest

from payments.fees import FeeKind
from payments.payments import Payer
from payments.receipts import (
    ReceiptData,
    ReceiptKind,
    ReceiptLine,
    build_receipt_xml,
    sign_document,
)
from server.storage.db import Database
from tests.payments.support import HCM, ORGANISATIONS, T0, WARD, signers
from tests.server.payments.test_server import db_url, payments_section
from tests.support.pki import TestPki, pem
from tests.support.server import running_server
from vnegov.payments.v1 import payments_pb2 as pb
from vnegov.payments.v1 import payments_pb2_grpc

RECEIPT = ReceiptData(
    "r1", ReceiptKind.ORIGINAL, "EBL01", "25T", 7, T0, ORGANISATIONS[HCM],
    Payer("Nguyễn Văn A", id_number="079084000999"),
    (ReceiptLine("LPXD", "Lệ phí cấp giấy phép xây dựng", FeeKind.LE_PHI, 100000),),
    "Chuyển khoản (VietQR)", "p1", "1.000494", "H29-0001")


async def test_verify_receipt_reads_the_signed_data_and_names_the_failure(
        pki: TestPki, tmp_path: Path, sqlite_db: Database,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.support import server as support

    monkeypatch.setattr(support, "CALLERS", [
        *support.CALLERS[:1],
        {"agency_code": "000.00.00.H26", "scopes": ["payments.receipts"], "provinces": ["01"]},
        *support.CALLERS[2:]])
    roots = tmp_path / "roots.pem"
    roots.write_bytes(pem(pki.root.cert))
    extra = {"payments": {**payments_section(pki, tmp_path), "workers_enabled": False,
                          "receipt_qr_roots_file": str(roots)}}
    good = sign_document(signers(pki).signer_for(HCM), build_receipt_xml(RECEIPT),
                         signing_time=T0)
    resealed = sign_document(signers(pki).signer_for(WARD), build_receipt_xml(RECEIPT),
                             signing_time=T0)
    edited = good.replace(b">100000<", b">1000000<", 1)
    assert edited != good
    commented = good.replace(b">100000<", b">100<!-- -->000<", 1)
    async with running_server(pki, tmp_path, db_url(sqlite_db), extra=extra) as server:
        # Another province's system verifies a receipt it was handed.
        stub = payments_pb2_grpc.PaymentsServiceStub(server.channel(pki.hanoi))
        ok = await stub.VerifyReceipt(pb.VerifyReceiptRequest(xml=good))
        assert ok.valid and ok.reason == ""
        assert (ok.template, ok.series, ok.number, ok.total) == ("EBL01", "25T", "0000007",
                                                                 100000)
        assert ok.collector_agency_code == HCM and ok.payer_name == "Nguyễn Văn A"
        assert ok.signer_subject and len(ok.document_sha256) == 64
        assert ok.HasField("validation_time")  # says when the path was judged
        # A comment inside the signed amount: the signature holds, the amount read is the signed
        # one (the text a naive reader would see is "100").
        commented_answer = await stub.VerifyReceipt(pb.VerifyReceiptRequest(xml=commented))
        assert commented_answer.valid and commented_answer.total == 100000
        for document, reason in ((resealed, "SIGNER_NOT_EXPECTED"),
                                 (edited, "SIGNATURE_INVALID"),
                                 (b"<not-a-receipt/>", "SIGNATURE_INVALID"),  # unsigned
                                 (b"\x00garbage", "NOT_A_RECEIPT")):
            answer = await stub.VerifyReceipt(pb.VerifyReceiptRequest(xml=document))
            assert not answer.valid and answer.reason == reason, (reason, answer)
            assert answer.total == 0 and answer.collector_agency_code == ""
        # An empty document is refused by the contract itself.
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.VerifyReceipt(pb.VerifyReceiptRequest())
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_the_register_proves_when_a_receipt_existed(pki: TestPki, tmp_path: Path,
                                                          db: Database) -> None:
    """Years later, and after the seal was revoked: a receipt this server's register holds byte
    for byte, or with the same signed data serialised otherwise, is judged at the time it was
    registered, so it stays valid after its seal expired and after the seal was revoked later;
    the same seal's signature on anything the register does not hold is judged now (expired:
    UNTRUSTED_SIGNER) or refused once the seal is revoked (SEAL_REVOKED, nothing proves it
    existed before); another receipt under a registered number is REGISTER_MISMATCH; a cancelled
    receipt is refused (RECEIPT_CANCELLED) however it was re-serialised. Callers of another
    province verify what they hold, nothing more."""
    import dataclasses
    import datetime as dt

    from google.protobuf import timestamp_pb2

    from signing.ca.authority import key_identifier
    from signing.ca.revocation import RevocationEntry, RevocationReason
    from tests.server.ca.conftest import CaServerFactory
    from tests.server.payments.conftest import make_world

    world = make_world(db, pki)
    issued_at = pki.now
    [kept, cancelled] = [world.receipts.issue_for_payment(
        world.paid_payment(request_id=f"register-{i}", at=issued_at), now=issued_at)[0]
        for i in range(2)]
    world.receipts.cancel(cancelled, reason="nhầm người nộp", actor="test", request_id="c1",
                          now=issued_at)
    registered = world.receipts.get(kept).xml
    # The same seal's signature on a receipt the register never held (a forgery with the key,
    # or a copy from elsewhere): number 99, made "on the day".
    unregistered = sign_document(world.receipts.signer_for(HCM), build_receipt_xml(
        dataclasses.replace(RECEIPT, number=99, issued_at=issued_at)), signing_time=issued_at)
    # The registered receipt serialised otherwise: the same signed data, the same receipt.
    reserialised = registered.replace(b"<DSCKS>", b"<DSCKS >", 1) + b"\n"
    # Another receipt sealed with the same key under the registered number: not the one issued.
    stored = world.receipts.get(kept).data
    impostor = sign_document(world.receipts.signer_for(HCM), build_receipt_xml(
        dataclasses.replace(stored, payer=dataclasses.replace(stored.payer, name="Kẻ Mạo Danh"))),
        signing_time=issued_at)
    cancelled_xml = world.receipts.get(cancelled).xml
    # A cancelled receipt with a comment added inside its signed data: still the cancelled one.
    cancelled_commented = cancelled_xml.replace(b"<TToan>", b"<TToan><!-- x -->", 1)
    assert cancelled_commented != cancelled_xml

    roots = tmp_path / "roots.pem"
    roots.write_bytes(pem(pki.root.cert))
    port, extra = CaServerFactory(pki, tmp_path, db_url(db)).config()
    extra["auth"]["callers"] = [
        {"agency_code": "000.00.00.H26", "scopes": ["payments.receipts"], "provinces": ["01"]}]
    extra["payments"] = {**payments_section(pki, tmp_path), "workers_enabled": False,
                         "receipt_qr_roots_file": str(roots)}
    async with running_server(pki, tmp_path, db_url(db), http_port=port,
                              extra=extra) as server:
        stub = payments_pb2_grpc.PaymentsServiceStub(server.channel(pki.hanoi))

        async def verify(xml: bytes) -> pb.VerifyReceiptResponse:
            answer: pb.VerifyReceiptResponse = await stub.VerifyReceipt(
                pb.VerifyReceiptRequest(xml=xml))
            return answer

        today = await verify(registered)
        assert today.valid and today.register_status == "VALID", today
        assert today.validation_time.ToDatetime(dt.UTC) == issued_at.replace(microsecond=0)
        # The seal was issued outside the server's CA database: the CA knows its issuer, not it.
        assert today.seal_status == "UNKNOWN"
        for xml in (cancelled_xml, cancelled_commented):
            refused = await verify(xml)
            assert (refused.valid, refused.reason) == (False, "RECEIPT_CANCELLED"), refused
        assert (await verify(unregistered)).valid
        assert (await verify(reserialised)).register_status == "VALID"
        mismatch = await verify(impostor)
        assert (mismatch.valid, mismatch.reason) == (False, "REGISTER_MISMATCH"), mismatch

        # Three years on, the seals have expired.
        later = issued_at + dt.timedelta(days=3 * 365)
        server.app.context.clock = lambda: later
        for xml in (registered, reserialised):
            years_later = await verify(xml)
            assert years_later.valid and years_later.total == today.total, years_later
            assert years_later.validation_time.ToDatetime(dt.UTC) == \
                issued_at.replace(microsecond=0)
        for xml in (unregistered,):
            answer = await verify(xml)
            assert (answer.valid, answer.reason) == (False, "UNTRUSTED_SIGNER"), answer
            assert answer.validation_time.ToDatetime(dt.UTC) == later
        # The caller may still ask for another time: its answer is judged then.
        asked = timestamp_pb2.Timestamp()
        asked.FromDatetime(issued_at)
        assert (await stub.VerifyReceipt(pb.VerifyReceiptRequest(
            xml=unregistered, validation_time=asked))).valid

        # The seal is revoked (key compromise) a day after the receipts were issued, as the
        # CA's commit hook records it in the status index every replica keeps.
        server.app.context.clock = lambda: issued_at + dt.timedelta(days=2)
        seal = world.receipts.signer_for(HCM).certificate
        index = server.app.context.registry["certificate_status"]
        index.set_revoked(key_identifier(pki.issuing.cert.public_key()), RevocationEntry(
            seal.serial_number, issued_at + dt.timedelta(days=1),
            RevocationReason.KEY_COMPROMISE))
        kept_answer = await verify(registered)
        assert kept_answer.valid and kept_answer.seal_status == "REVOKED", kept_answer
        assert kept_answer.seal_revoked_at.ToDatetime(dt.UTC) == \
            (issued_at + dt.timedelta(days=1)).replace(microsecond=0)
        assert (await verify(reserialised)).valid
        for xml in (unregistered,):
            answer = await verify(xml)
            assert (answer.valid, answer.reason) == (False, "SEAL_REVOKED"), answer
            assert "keyCompromise" in answer.message and answer.total == 0
        # Asking for a time before the revocation proves nothing either.
        answer = await stub.VerifyReceipt(pb.VerifyReceiptRequest(
            xml=unregistered, validation_time=asked))
        assert (answer.valid, answer.reason) == (False, "SEAL_REVOKED")
        # Revoked with a known compromise date before the registration: no proof holds.
        index.set_revoked(key_identifier(pki.issuing.cert.public_key()), RevocationEntry(
            seal.serial_number, issued_at + dt.timedelta(days=1),
            RevocationReason.KEY_COMPROMISE,
            invalidity_date=issued_at - dt.timedelta(days=1)))
        assert (await verify(registered)).reason == "SEAL_REVOKED"
        # On hold: the same rule, its own reason.
        index.set_revoked(key_identifier(pki.issuing.cert.public_key()), RevocationEntry(
            seal.serial_number, issued_at + dt.timedelta(days=1),
            RevocationReason.CERTIFICATE_HOLD))
        assert (await verify(unregistered)).reason == "SEAL_ON_HOLD"
        held = await verify(registered)
        assert held.valid and held.seal_status == "ON_HOLD"
        assert (await verify(cancelled_xml)).reason == "RECEIPT_CANCELLED"
