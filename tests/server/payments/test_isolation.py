"""Agency isolation: every method of the payments service, called by a caller of another agency
in the same province and by a caller of another province (both with every payments scope),
aimed at one agency's payments, receipts, statements, exceptions and operations. Each is
PERMISSION_DENIED or NOT_FOUND (a missing and a foreign resource look the same), and the
payments tables are exactly as they were before."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf.message import Message
from sqlalchemy import select

from payments.payments import Payer
from payments.reconcile import Statement, StatementLine, write_camt053
from server.storage.base import Base
from server.storage.db import Database
from tests.payments.support import HCM, T0, WARD
from tests.server.payments.conftest import make_world
from tests.server.payments.test_server import db_url, payments_section
from tests.support.pki import TestPki, pem
from tests.support.server import running_server
from vnegov.payments.v1 import payments_pb2 as pb
from vnegov.payments.v1 import payments_pb2_grpc

SCOPES = ["payments.accounts", "payments.collect", "payments.refund", "payments.receipts",
          "payments.reconcile"]
HANOI = "000.00.00.H26"
ACCOUNT = "113000012345"
DENIED = {grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.NOT_FOUND}
METHODS = [m.name for m in pb.DESCRIPTOR.services_by_name["PaymentsService"].methods]

# Calls that by construction act only within the caller's own agency (no request field names
# another agency's data), answered for the caller's own scope: what they answer must hold
# nothing of the other agency's, and nothing may change.
OWN_SCOPE: dict[tuple[str, str], grpc.StatusCode] = {
    # the fee schedule of a province the ward may act in: public, the same for every agency
    ("QuoteFees", "ward"): grpc.StatusCode.OK,
    # a payment is always the caller's agency's: the ward's has no collection account
    ("CreatePayment", "ward"): grpc.StatusCode.FAILED_PRECONDITION,
    # the caller's own (empty) lists
    ("ListPayments", "ward"): grpc.StatusCode.OK,
    ("ListPayments", "hanoi"): grpc.StatusCode.OK,
    ("ListExceptions", "ward"): grpc.StatusCode.OK,
    ("ListExceptions", "hanoi"): grpc.StatusCode.OK,
    # verifying a receipt the caller holds reads no stored data: anyone may verify any receipt
    ("VerifyReceipt", "ward"): grpc.StatusCode.OK,
    ("VerifyReceipt", "hanoi"): grpc.StatusCode.OK,
}


def dump(db: Database) -> dict[str, list[str]]:
    """Every row of every payments table."""
    out: dict[str, list[str]] = {}
    with db.read() as s:
        for table in Base.metadata.sorted_tables:
            if table.name.startswith("payments_"):
                out[table.name] = sorted(repr(tuple(r)) for r in s.execute(select(table)))
    return out


def owner_data(db: Database, pki: TestPki) -> dict[str, Any]:
    """One agency's payment (paid, with receipts), money held for another of its payments, a
    reconciled statement with exceptions, and a finished reconciliation operation."""
    world = make_world(db, pki)
    pid = world.paid_payment(request_id="isolation-paid")
    # Issued while the seals are valid (VerifyReceipt judges a registered receipt then).
    world.receipts.issue_for_payment(pid, now=pki.now)
    receipt = world.receipts.for_payment(pid)[0]
    p = world.payments.create_payment(
        caller="000.00.00.H29/dvc-hcm", request_id="isolation-open", agency_code=HCM,
        province="79", procedure_code="1.000494", dossier_code="H29-ISO-2", payer=Payer("B"),
        channel="platform", now=T0)
    world.payments.open(p.id, channel_url="", actor="t", request_id="o", now=T0)
    world.payments.confirm(channel="platform", transaction_id="ISO-WRONG", reference=p.reference,
                           amount=1000, at=T0, success=True, exact_amount=True,
                           request_id="r", now=T0)
    day = dt.date(2025, 8, 1)
    statement = write_camt053([Statement("ISO-S1", ACCOUNT, from_date=day, to_date=day,
                                         opening=0, lines=[
        StatementLine(ACCOUNT, "FT-ISO-1", 77000, True, day, day, "FT-ISO-1", "", "??")])],
        message_id="ISO", created=T0)
    world.recon.import_statement(statement, fmt="camt053", actor="f", request_id="i", now=T0)
    op_id = world.recon.start_operation("reconcile", caller=f"{HCM}/dvc-hcm", now=T0,
                                        agency=HCM)
    result = world.recon.reconcile(as_of=T0 + dt.timedelta(days=3), actor="f", run_id=op_id)
    world.recon.finish_operation(op_id, result=result, error="", now=T0)
    exceptions = world.recon.exceptions()
    assert len(exceptions) >= 2 and {e.agency_code for e in exceptions} == {HCM}
    return {"payment": f"payments/{pid}", "receipt": receipt.name, "receipt_xml": receipt.xml,
            "statement": statement,
            "exception": f"exceptions/{exceptions[0].id}", "operation": f"operations/{op_id}",
            "reference": world.payments.get(pid).reference, "transaction": f"TX{pid}"}


def requests(t: dict[str, Any]) -> dict[str, Message]:
    """For every method, a request aimed at the owner's data."""
    return {
        "SetCollectionAccount": pb.SetCollectionAccountRequest(account=pb.CollectionAccount(
            agency_code=HCM, bank_bin="970415", account_number="113000099999",
            account_name="Tai khoan khac")),
        "GetCollectionAccount": pb.GetCollectionAccountRequest(),
        "QuoteFees": pb.QuoteFeesRequest(procedure_code="1.000494", province_code="79",
                                         date="2025-08-01"),
        "CreatePayment": pb.CreatePaymentRequest(
            request_id="isolation-create", procedure_code="1.000494", province_code="79",
            dossier_code="H29-ISO-1", payer=pb.Payer(name="C"), channel="vietqr"),
        "GetPayment": pb.GetPaymentRequest(name=t["payment"]),
        "ListPayments": pb.ListPaymentsRequest(),
        "RefundPayment": pb.RefundPaymentRequest(request_id="isolation-refund",
                                                 payment=t["payment"], amount=1000,
                                                 reason="x"),
        "ListReceipts": pb.ListReceiptsRequest(parent=t["payment"]),
        "CorrectReceipt": pb.CorrectReceiptRequest(
            request_id="isolation-correct", name=t["receipt"], kind="replacement",
            reason="x", lines=[pb.ReceiptLine(item_code="LPXD", name="Lệ phí", kind=pb.LE_PHI,
                                              amount=1)]),
        "CancelReceipt": pb.CancelReceiptRequest(name=t["receipt"], reason="x"),
        "ImportStatement": pb.ImportStatementRequest(format="camt053", content=t["statement"]),
        "CompareChannelList": pb.CompareChannelListRequest(
            channel="platform", first_day="2025-08-01",
            content=("reference,transaction_id,amount,paid_at,status\n"
                     f"{t['reference']},{t['transaction']},1,2025-08-01T09:00:00+07:00,paid\n"
                     ).encode()),
        "Reconcile": pb.ReconcileRequest(),
        "GetOperation": pb.GetOperationRequest(name=t["operation"]),
        "ListExceptions": pb.ListExceptionsRequest(state=""),
        "ResolveException": pb.ResolveExceptionRequest(name=t["exception"], action="dismiss"),
        "VerifyReceipt": pb.VerifyReceiptRequest(xml=t["receipt_xml"]),
    }


async def call(stub: Any, method: str, request: Message) -> tuple[grpc.StatusCode, Any]:
    try:
        return grpc.StatusCode.OK, await getattr(stub, method)(request)
    except grpc.aio.AioRpcError as exc:
        return exc.code(), exc.details()


async def test_every_method_as_another_agency_and_another_province(
        pki: TestPki, tmp_path: Path, db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.support import server as support

    ward_cert = pki.issuing.issue("dvc-ward", agency_code=WARD, province_code="79")
    monkeypatch.setattr(support, "CALLERS", [
        {"agency_code": HCM, "name": "dvc-hcm", "scopes": SCOPES, "provinces": ["79"]},
        {"agency_code": WARD, "scopes": SCOPES, "provinces": ["79"]},
        {"agency_code": HANOI, "scopes": SCOPES, "provinces": ["01"]},
        support.CALLERS[2]])
    targets = owner_data(db, pki)
    aimed = requests(targets)
    assert sorted(aimed) == sorted(METHODS)  # a new method needs its row in the matrix
    roots = tmp_path / "roots.pem"
    roots.write_bytes(pem(pki.root.cert))
    extra = {"payments": {**payments_section(pki, tmp_path), "workers_enabled": False,
                          "receipt_qr_roots_file": str(roots)}}
    async with running_server(pki, tmp_path, db_url(db), extra=extra) as server:
        callers = {"ward": server.channel(ward_cert), "hanoi": server.channel(pki.hanoi)}
        before = dump(db)
        answers: dict[tuple[str, str], tuple[grpc.StatusCode, Any]] = {}
        for who, channel in callers.items():
            stub = payments_pb2_grpc.PaymentsServiceStub(channel)
            for method in METHODS:
                answers[(method, who)] = await call(stub, method, aimed[method])
        wrong = {k: v for k, v in answers.items()
                 if (v[0] != OWN_SCOPE[k] if k in OWN_SCOPE else v[0] not in DENIED)}
        assert wrong == {}
        for key in OWN_SCOPE:
            code, answer = answers[key]
            if key[0] == "ListPayments":
                assert list(answer.payments) == []
            elif key[0] == "ListExceptions":
                assert list(answer.exceptions) == []
            elif key[0] == "VerifyReceipt":  # what the receipt says, nothing the database holds
                assert answer.valid and answer.collector_agency_code == HCM, answer
        assert dump(db) == before  # nothing changed, nothing added
        # A foreign resource and a missing one get the same answer.
        ward = payments_pb2_grpc.PaymentsServiceStub(callers["ward"])
        for method, field, missing in (("GetPayment", "name", "payments/nosuchpayment0000"),
                                       ("ResolveException", "name", "exceptions/999999"),
                                       ("GetOperation", "name", "operations/nosuchop0000")):
            request = aimed[method].__class__()
            request.CopyFrom(aimed[method])
            setattr(request, field, missing)
            assert await call(ward, method, request) == answers[(method, "ward")]
        # The owner sees all of it (the names were right).
        owner = payments_pb2_grpc.PaymentsServiceStub(server.channel(pki.hcm))
        for method in ("GetPayment", "ListReceipts", "GetOperation", "GetCollectionAccount"):
            code, _ = await call(owner, method, aimed[method])
            assert code == grpc.StatusCode.OK, method
        code, listed = await call(owner, "ListExceptions", aimed["ListExceptions"])
        assert code == grpc.StatusCode.OK and len(listed.exceptions) >= 2
        code, _ = await call(owner, "ResolveException", aimed["ResolveException"])
        assert code == grpc.StatusCode.OK
