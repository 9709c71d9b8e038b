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
