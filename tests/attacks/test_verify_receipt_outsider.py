"""An outsider's attacks on VerifyReceipt over gRPC: hostile validation times and hostile XML are
answers or clear INVALID_ARGUMENT errors, never internal errors; a receipt is never valid for a
body that did not seal it."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from payments.receipts import build_receipt_xml, sign_document
from server.storage.db import Database
from tests.payments.support import HCM, T0, WARD, signers
from tests.server.payments.test_server import db_url, payments_section
from tests.server.payments.test_verify_receipt import RECEIPT
from tests.support.pki import TestPki, pem
from tests.support.server import running_server
from vnegov.payments.v1 import payments_pb2 as pb
from vnegov.payments.v1 import payments_pb2_grpc

LAUGHS = (b'<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa">'
          + b"".join(f'<!ENTITY {chr(98 + i)} "{("&" + chr(97 + i) + ";") * 10}">'.encode()
                     for i in range(8))
          + b"]><BLai>&i;</BLai>")


async def test_hostile_times_and_documents_are_answers_not_internal_errors(
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
    async with running_server(pki, tmp_path, db_url(sqlite_db), extra=extra) as server:
        stub = payments_pb2_grpc.PaymentsServiceStub(server.channel(pki.hanoi))
        for seconds, nanos in ((2**62, 0), (-(2**62), 0), (253402300800, 0),
                               (-62135596801, 0), (0, -1), (0, 10**9)):
            try:
                answer = await stub.VerifyReceipt(pb.VerifyReceiptRequest(
                    xml=good, validation_time=Timestamp(seconds=seconds, nanos=nanos)))
            except grpc.aio.AioRpcError as exc:
                assert exc.code() == grpc.StatusCode.INVALID_ARGUMENT, (seconds, exc.details())
            else:
                assert not answer.valid, seconds
        for document in (LAUGHS, b"<a>" * 50000 + b"</a>" * 50000,
                         b'<!DOCTYPE l [<!ENTITY x SYSTEM "file:///etc/passwd">]><BLai>&x;</BLai>',
                         good.replace(b"<BLai", b"<BLai xmlns:x='urn:x'", 1), good + b"<!-- -->",
                         good.replace(b"?>", b"?><!DOCTYPE BLai>", 1)):
            answer = await stub.VerifyReceipt(pb.VerifyReceiptRequest(xml=document))
            assert isinstance(answer.valid, bool)
        # A receipt sealed by the ward: never valid as the HCM department's, whatever the time.
        resealed = sign_document(signers(pki).signer_for(WARD), build_receipt_xml(RECEIPT),
                                 signing_time=T0)
        answer = await stub.VerifyReceipt(pb.VerifyReceiptRequest(xml=resealed))
        assert not answer.valid and answer.reason == "SIGNER_NOT_EXPECTED"
