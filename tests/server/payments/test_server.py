"""The payments module in a real server: gRPC, the platform callback over HTTP, and a SIGKILL
between payment and receipt issuance."""

from __future__ import annotations

import asyncio
import datetime as dt
import signal
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from cryptography.hazmat.primitives import serialization

from payments.channels import PlatformSimulator
from server.storage.db import Database
from tests.payments.support import ACCOUNTS, HCM, ORGANISATIONS, signers
from tests.support.pki import TestPki, pem
from tests.support.server import ServerProcess, free_port, running_server, server_config_dict
from vnegov.payments.v1 import payments_pb2 as pb
from vnegov.payments.v1 import payments_pb2_grpc

PARTNER, SECRET = "000.00.00.H29", "platform-test-secret"


def payments_section(pki: TestPki, directory: Path, *, interval: float = 0.2) -> dict[str, Any]:
    sig = signers(pki)
    orgs = []
    for code, org in ORGANISATIONS.items():
        issued = sig.issued[code]
        key = directory / f"{code}.key.pem"
        key.write_bytes(issued.key.private_bytes(serialization.Encoding.PEM,
                                                 serialization.PrivateFormat.PKCS8,
                                                 serialization.NoEncryption()))
        cert = directory / f"{code}.pem"
        cert.write_bytes(pem(issued.cert, pki.issuing.cert))
        orgs.append({"agency_code": code, "name": org.name, "tax_code": org.tax_code,
                     "address": org.address, "key_file": str(key), "cert_file": str(cert)})
    a = ACCOUNTS[HCM]
    return {"platform_partner_code": PARTNER, "platform_secret": SECRET,
            "outbox_interval_seconds": interval, "organisations": orgs,
            "accounts": [{"agency_code": a.agency_code, "bank_bin": a.bank_bin,
                          "account_number": a.account_number, "account_name": a.account_name}]}


def db_url(db: Database) -> str:
    return db.url.render_as_string(hide_password=False)


async def create(stub: Any, request_id: str, channel: str = "platform") -> pb.Payment:
    return await stub.CreatePayment(pb.CreatePaymentRequest(
        request_id=request_id, procedure_code="1.000494.000.00.00.H29", province_code="79",
        dossier_code=f"H29-{request_id}", payer=pb.Payer(name="Nguyễn Văn A"), channel=channel))


async def test_grpc_quote_create_pay_receipts(pki: TestPki, tmp_path: Path, db: Database) -> None:
    extra = {"payments": payments_section(pki, tmp_path)}
    async with running_server(pki, tmp_path, db_url(db), extra=extra) as server:
        stub = payments_pb2_grpc.PaymentsServiceStub(server.channel(pki.hcm))
        quote = await stub.QuoteFees(pb.QuoteFeesRequest(procedure_code="1.000494",
                                                         province_code="79", date="2025-08-01"))
        assert quote.total == 220000 and {x.kind for x in quote.lines} == {pb.PHI, pb.LE_PHI}
        with pytest.raises(grpc.aio.AioRpcError) as elsewhere:
            await stub.CreatePayment(pb.CreatePaymentRequest(
                request_id="grpc-create-hanoi", procedure_code="2.000815", province_code="01",
                dossier_code="H26-1", payer=pb.Payer(name="A"), channel="vietqr"))
        assert elsewhere.value.code() == grpc.StatusCode.PERMISSION_DENIED
        qr = await create(stub, "grpc-create-0001", "vietqr")
        assert qr.vietqr_payload.startswith("000201010212") and qr.state == "awaiting_payment"
        payment = await create(stub, "grpc-create-0002")
        again = await create(stub, "grpc-create-0002")
        assert again.name == payment.name
        platform = PlatformSimulator(PARTNER, SECRET)
        from payments.channels.simulators import _PlatformPayment

        platform.payments[payment.reference] = _PlatformPayment(
            {"MaThamChieu": payment.reference, "SoTien": payment.amount_due})
        callback = platform.pay(payment.reference, now=dt.datetime.now(dt.UTC))
        async with httpx.AsyncClient(base_url=server.http_url) as http:
            first = (await http.post("/payments/platform/callback", json=callback)).json()
            second = (await http.post("/payments/platform/callback", json=callback)).json()
            forged = (await http.post("/payments/platform/callback",
                                      json={**callback, "SoTien": 1})).json()
        assert platform.check_answer(first) == "00"
        assert platform.check_answer(second) == "02"
        assert platform.check_answer(forged) == "97"
        for _ in range(100):
            receipts = await stub.ListReceipts(pb.ListReceiptsRequest(parent=payment.name))
            if len(receipts.receipts) == 2:
                break
            await asyncio.sleep(0.05)
        assert sorted(r.total for r in receipts.receipts) == [100000, 120000]
        got = await stub.GetPayment(pb.GetPaymentRequest(name=payment.name))
        assert got.state == "paid"
        first_page = await stub.ListPayments(pb.ListPaymentsRequest(page_size=1))
        second_page = await stub.ListPayments(pb.ListPaymentsRequest(
            page_size=1, page_token=first_page.next_page_token))
        assert first_page.next_page_token and len(second_page.payments) == 1
        assert {first_page.payments[0].name, second_page.payments[0].name} == \
            {qr.name, payment.name}
        paid_only = await stub.ListPayments(pb.ListPaymentsRequest(filter='state = "paid"'))
        assert [p.name for p in paid_only.payments] == [payment.name]
        # Corrections: the sample caller lacks payments.receipts.
        first = receipts.receipts[0]
        with pytest.raises(grpc.aio.AioRpcError) as no_scope:
            await stub.CancelReceipt(pb.CancelReceiptRequest(name=first.name, reason="x"))
        assert no_scope.value.code() == grpc.StatusCode.PERMISSION_DENIED
        async with httpx.AsyncClient(base_url=server.http_url) as http:
            pdf = await http.get(f"/payments/receipts/{first.name.split('/')[-1]}.pdf")
        assert pdf.headers["content-type"] == "application/pdf" and pdf.content[:5] == b"%PDF-"
        other = payments_pb2_grpc.PaymentsServiceStub(server.channel(pki.hanoi))
        with pytest.raises(grpc.aio.AioRpcError) as denied:  # lacks payments.collect
            await other.GetPayment(pb.GetPaymentRequest(name=payment.name))
        assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_another_agency_cannot_tell_a_payment_exists(
        pki: TestPki, tmp_path: Path, sqlite_db: Database,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.support import server as support

    hanoi = {"agency_code": "000.00.00.H26", "scopes": ["payments.collect"],
             "provinces": ["01"]}
    monkeypatch.setattr(support, "CALLERS", [support.CALLERS[0], hanoi, *support.CALLERS[2:]])
    extra = {"payments": payments_section(pki, tmp_path)}
    async with running_server(pki, tmp_path, db_url(sqlite_db), extra=extra) as server:
        ours = payments_pb2_grpc.PaymentsServiceStub(server.channel(pki.hcm))
        payment = await create(ours, "jurisdiction-0001", "vietqr")
        theirs = payments_pb2_grpc.PaymentsServiceStub(server.channel(pki.hanoi))
        answers = []
        for name in (payment.name, "payments/doesnotexist00000000"):
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await theirs.GetPayment(pb.GetPaymentRequest(name=name))
            answers.append((err.value.code(), err.value.details()))
        assert answers[0] == answers[1]
        assert answers[0][0] == grpc.StatusCode.PERMISSION_DENIED


@pytest.mark.slow
async def test_sigkill_between_payment_and_receipt(pki: TestPki, tmp_path: Path,
                                                   sqlite_db: Database) -> None:
    """The payment is paid (outbox row committed) but the worker has not run: kill -9, restart,
    and exactly one set of receipts appears, numbered without a gap."""
    grpc_port, http_port = free_port(), free_port()
    config = server_config_dict(pki, tmp_path, db_url(sqlite_db), grpc_port=grpc_port,
                                http_port=http_port,
                                extra={"payments": payments_section(pki, tmp_path,
                                                                    interval=3600)})
    config["payments"]["workers_enabled"] = False  # the worker never gets to the receipts
    proc = ServerProcess(config, tmp_path)
    proc.start()
    platform = PlatformSimulator(PARTNER, SECRET)
    from payments.channels.simulators import _PlatformPayment

    try:
        import grpc

        creds = grpc.ssl_channel_credentials(pem(pki.root.cert), pki.hcm.key_pem,
                                             pki.hcm.chain_pem)
        async with grpc.aio.secure_channel(f"localhost:{grpc_port}", creds) as channel:
            stub = payments_pb2_grpc.PaymentsServiceStub(channel)
            made = [await create(stub, f"kill-test-{i:04d}") for i in range(3)]
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{http_port}") as http:
            for p in made:
                platform.payments[p.reference] = _PlatformPayment(
                    {"MaThamChieu": p.reference, "SoTien": p.amount_due})
                answer = (await http.post("/payments/platform/callback", json=platform.pay(
                    p.reference, now=dt.datetime.now(dt.UTC)))).json()
                assert answer["MaLoi"] == "00"
        from sqlalchemy import func, select

        from server.storage.payments import OutboxRow, ReceiptRow

        with sqlite_db.read() as s:
            assert s.execute(select(func.count()).select_from(ReceiptRow)).scalar_one() == 0
            assert s.execute(select(func.count()).select_from(OutboxRow).where(
                OutboxRow.kind == "receipt.issue")).scalar_one() == 3
        proc.signal(signal.SIGKILL)
        assert await proc.wait() == -signal.SIGKILL
        proc.kill()
        config["payments"]["outbox_interval_seconds"] = 0.1
        config["payments"]["workers_enabled"] = True
        proc = ServerProcess(config, tmp_path)
        proc.start()
        for _ in range(200):
            with sqlite_db.read() as s:
                numbers = sorted(s.execute(select(ReceiptRow.number)).scalars())
            if len(numbers) >= 6:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)  # give a duplicate, if any, the chance to appear
        with sqlite_db.read() as s:
            numbers = sorted(s.execute(select(ReceiptRow.number)).scalars())
            per_payment = s.execute(select(ReceiptRow.payment_id, func.count()).group_by(
                ReceiptRow.payment_id)).all()
        assert numbers == [1, 2, 3, 4, 5, 6]
        assert sorted(n for _, n in per_payment) == [2, 2, 2]
    finally:
        proc.kill()


async def test_grpc_refund_import_reconcile_and_resolve(
        pki: TestPki, tmp_path: Path, db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    from payments.reconcile import Statement, StatementLine, write_camt053
    from tests.support import server as support

    extra = {"payments": payments_section(pki, tmp_path)}
    now = dt.datetime.now(dt.UTC)
    async with running_server(pki, tmp_path, db_url(db), extra=extra) as server:
        stub = payments_pb2_grpc.PaymentsServiceStub(server.channel(pki.hcm))
        payment = await create(stub, "grpc-recon-0001", "vietqr")
        module = next(m for m in server.app._modules if m.name == "payments")
        module.store.confirm(channel="vietqr", transaction_id="FT-1", reference=payment.reference,
                             amount=payment.amount_due, at=now, success=True,
                             exact_amount=False, request_id="t", now=now)
        # The sample caller lacks payments.refund and payments.reconcile: denied up front.
        for call in (stub.RefundPayment(pb.RefundPaymentRequest(
                         request_id="grpc-refund-0001", payment=payment.name, amount=1000)),
                     stub.ImportStatement(pb.ImportStatementRequest(format="camt053"))):
            with pytest.raises(grpc.aio.AioRpcError) as denied:
                await call
            assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
        for _ in range(200):  # the outbox worker issues the receipts
            listed = await stub.ListReceipts(pb.ListReceiptsRequest(parent=payment.name))
            if len(listed.receipts) == 2:
                break
            await asyncio.sleep(0.05)
    today = now.date()
    # The statement of the account the agency registers below (only an agency's own accounts'
    # statements import).
    statement = write_camt053([Statement("S1", "0071001234567", from_date=today, to_date=today,
                                         opening=0, lines=[
        StatementLine("0071001234567", "FT-1", payment.amount_due, True, today, today, "FT-1",
                      "", f"{payment.reference} le phi"),
        StatementLine("0071001234567", "FT-2", 30000, True, today, today, "FT-2", "", "??")])],
        message_id="M1", created=now)
    finance = {**support.CALLERS[0],
               "scopes": ["payments.collect", "payments.refund", "payments.reconcile",
                          "payments.receipts", "payments.accounts"]}
    monkeypatch.setattr(support, "CALLERS", [finance, *support.CALLERS[1:]])
    async with running_server(pki, tmp_path, db_url(db), extra=extra) as server:
        stub = payments_pb2_grpc.PaymentsServiceStub(server.channel(pki.hcm))
        account = await stub.SetCollectionAccount(pb.SetCollectionAccountRequest(
            account=pb.CollectionAccount(bank_bin="970436", account_number="0071001234567",
                                         account_name="Kho bac Nha nuoc", kind="state_treasury",
                                         treasury_office_code="0111",
                                         budget_unit_code="1051234")))
        assert account.name == "collectionAccounts/000.00.00.H29"
        got_account = await stub.GetCollectionAccount(pb.GetCollectionAccountRequest())
        assert (got_account.bank_bin, got_account.kind) == ("970436", "state_treasury")
        with pytest.raises(grpc.aio.AioRpcError) as bad_bin:
            await stub.SetCollectionAccount(pb.SetCollectionAccountRequest(
                account=pb.CollectionAccount(bank_bin="12", account_number="1",
                                             account_name="x")))
        assert bad_bin.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        refund = await stub.RefundPayment(pb.RefundPaymentRequest(
            request_id="grpc-refund-0002", payment=payment.name, amount=2000, reason="x"))
        again = await stub.RefundPayment(pb.RefundPaymentRequest(
            request_id="grpc-refund-0002", payment=payment.name, amount=2000, reason="x"))
        assert refund.name == again.name and refund.payment.refunded == 2000
        assert refund.payment.state == "partially_refunded"
        with pytest.raises(grpc.aio.AioRpcError) as too_much:
            await stub.RefundPayment(pb.RefundPaymentRequest(
                request_id="grpc-refund-0003", payment=payment.name, amount=10**7))
        assert too_much.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        listed = await stub.ListReceipts(pb.ListReceiptsRequest(parent=payment.name))
        target = next(r for r in listed.receipts if r.total == 100000)
        fix = pb.CorrectReceiptRequest(request_id="grpc-correct-0001", name=target.name,
                                       kind="replacement", reason="Sai tên", lines=[pb.ReceiptLine(
                                           item_code="LPXD", name="Lệ phí", kind=pb.LE_PHI,
                                           amount=100000)])
        replaced, replayed = await stub.CorrectReceipt(fix), await stub.CorrectReceipt(fix)
        assert replaced.name == replayed.name and replaced.kind == "replacement"
        assert replaced.number == "0000003"
        cancelled = await stub.CancelReceipt(pb.CancelReceiptRequest(name=replaced.name,
                                                                     reason="Hủy"))
        assert cancelled.status == "cancelled"
        imported = await stub.ImportStatement(pb.ImportStatementRequest(
            format="camt053", content=statement))
        assert (imported.lines, imported.new_lines) == (2, 2)
        op = await stub.Reconcile(pb.ReconcileRequest())
        for _ in range(200):
            op = await stub.GetOperation(pb.GetOperationRequest(name=op.name))
            if op.done:
                break
            await asyncio.sleep(0.05)
        assert op.done and not op.error
        assert json.loads(op.result_json)["counts"] == {"matched": 1, "money_without_payment": 1}
        listed_exc = await stub.ListExceptions(pb.ListExceptionsRequest())
        [exc] = [e for e in listed_exc.exceptions if e.outcome == "money_without_payment"]
        resolved = await stub.ResolveException(pb.ResolveExceptionRequest(
            name=exc.name, action="refund_to_sender"))
        assert resolved.state == "resolved" and resolved.resolution == "refund_to_sender"
        with pytest.raises(grpc.aio.AioRpcError) as twice:
            await stub.ResolveException(pb.ResolveExceptionRequest(
                name=exc.name, action="refund_to_sender"))
        assert twice.value.code() == grpc.StatusCode.FAILED_PRECONDITION


@pytest.mark.slow
async def test_sigkill_while_the_worker_is_issuing(pki: TestPki, tmp_path: Path,
                                                   sqlite_db: Database) -> None:
    """The outbox worker is running when 40 payments become paid at once and the server is
    killed (-9) while it issues (here the last few payments' receipts are typically not yet
    committed): after a restart every payment has exactly its two receipts and the numbers
    are exactly 1..80."""
    from sqlalchemy import func, select

    from server.storage.payments import ReceiptRow

    grpc_port, http_port = free_port(), free_port()
    config = server_config_dict(pki, tmp_path, db_url(sqlite_db), grpc_port=grpc_port,
                                http_port=http_port,
                                extra={"payments": payments_section(pki, tmp_path,
                                                                    interval=0.02)})
    proc = ServerProcess(config, tmp_path)
    proc.start()
    platform = PlatformSimulator(PARTNER, SECRET)
    from payments.channels.simulators import _PlatformPayment

    try:
        creds = grpc.ssl_channel_credentials(pem(pki.root.cert), pki.hcm.key_pem,
                                             pki.hcm.chain_pem)
        async with grpc.aio.secure_channel(f"localhost:{grpc_port}", creds) as channel:
            stub = payments_pb2_grpc.PaymentsServiceStub(channel)
            made = await asyncio.gather(*[create(stub, f"kill-busy-{i:04d}") for i in range(40)])
        for p in made:
            platform.payments[p.reference] = _PlatformPayment(
                {"MaThamChieu": p.reference, "SoTien": p.amount_due})
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{http_port}") as http:
            answers = await asyncio.gather(*[http.post(
                "/payments/platform/callback",
                json=platform.pay(p.reference, now=dt.datetime.now(dt.UTC))) for p in made])
        assert [a.json()["MaLoi"] for a in answers] == ["00"] * 40
        proc.signal(signal.SIGKILL)  # the worker is busy with the receipts
        assert await proc.wait() == -signal.SIGKILL
        proc.kill()
        proc = ServerProcess(config, tmp_path)
        proc.start()
        for _ in range(400):
            with sqlite_db.read() as s:
                count = s.execute(select(func.count()).select_from(ReceiptRow)).scalar_one()
            if count >= 80:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)  # give a duplicate, if any, the chance to appear
        with sqlite_db.read() as s:
            numbers = sorted(s.execute(select(ReceiptRow.number)).scalars())
            per_payment = s.execute(select(ReceiptRow.payment_id, func.count()).group_by(
                ReceiptRow.payment_id)).all()
        assert numbers == list(range(1, 81))
        assert sorted(n for _, n in per_payment) == [2] * 40
    finally:
        proc.kill()
