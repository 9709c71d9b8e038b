"""A real server over loopback HTTP: 100 identical platform callbacks at once (SQLite and
PostgreSQL), and a receipt's PDF whose QR is checked offline (the attached XML against xmlsec1
and the digest) and online (the status URL, before and after a cancellation)."""

from __future__ import annotations

import asyncio
import datetime as dt
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
import zxingcpp
from PIL import Image
from sqlalchemy import func, select

from payments.channels import PlatformSimulator
from payments.channels.simulators import _PlatformPayment
from payments.receipts import document_digest, verify_qr
from server.payments.module import PaymentsModule
from server.storage.db import Database
from server.storage.payments import ChannelEventRow, OutboxRow, ReceiptRow, TransitionRow
from tests.server.payments.test_server import PARTNER, SECRET, db_url, payments_section
from tests.support.databases import PostgresTemplates, fresh_database
from tests.support.pki import TestPki, pem
from tests.support.server import running_server
from vnegov.payments.v1 import payments_pb2 as pb
from vnegov.payments.v1 import payments_pb2_grpc


async def _receipts(stub: payments_pb2_grpc.PaymentsServiceStub, name: str, count: int
                    ) -> list[pb.Receipt]:
    for _ in range(200):
        listed = await stub.ListReceipts(pb.ListReceiptsRequest(parent=name))
        if len(listed.receipts) >= count:
            return list(listed.receipts)
        await asyncio.sleep(0.05)
    return list(listed.receipts)


@pytest.mark.slow
async def test_100_identical_callbacks_over_http_pay_once(pki: TestPki, tmp_path: Path,
                                                          db: Database) -> None:
    extra = {"payments": payments_section(pki, tmp_path, interval=0.1)}
    async with running_server(pki, tmp_path, db_url(db), extra=extra) as server:
        stub = payments_pb2_grpc.PaymentsServiceStub(server.channel(pki.hcm))
        payment = await stub.CreatePayment(pb.CreatePaymentRequest(
            request_id="http-race-0001", procedure_code="2.000815", province_code="79",
            dossier_code="H29-HTTP-RACE", payer=pb.Payer(name="Lê Văn C"), channel="platform"))
        platform = PlatformSimulator(PARTNER, SECRET)
        platform.payments[payment.reference] = _PlatformPayment(
            {"MaThamChieu": payment.reference, "SoTien": payment.amount_due})
        callback = platform.pay(payment.reference, now=dt.datetime.now(dt.UTC))
        limits = httpx.Limits(max_connections=100, max_keepalive_connections=100)
        async with httpx.AsyncClient(base_url=server.http_url, limits=limits,
                                     timeout=60) as http:
            answers = await asyncio.gather(*[
                http.post("/payments/platform/callback", json=callback) for _ in range(100)])
        codes = [platform.check_answer(a.json()) for a in answers]
        assert codes.count("00") == 1 and codes.count("02") == 99, sorted(set(codes))
        [receipt] = await _receipts(stub, payment.name, 1)
        await asyncio.sleep(0.5)  # a second receipt, if the work were queued twice
        again = await stub.ListReceipts(pb.ListReceiptsRequest(parent=payment.name))
        assert [r.name for r in again.receipts] == [receipt.name]
        assert receipt.total == payment.amount_due
        got = await stub.GetPayment(pb.GetPaymentRequest(name=payment.name))
        assert got.state == "paid" and got.collected == payment.amount_due
    with db.read() as s:
        counts = [s.execute(select(func.count()).select_from(table).where(*where)).scalar_one()
                  for table, where in ((TransitionRow, [TransitionRow.to_state == "paid"]),
                                       (ChannelEventRow, []), (ReceiptRow, []),
                                       (OutboxRow, [OutboxRow.kind == "receipt.issue"]))]
    assert counts == [1, 1, 1, 1]  # paid once, one event, one receipt, its work queued once


async def test_receipt_pdf_qr_verifies_offline_and_online(pki: TestPki, tmp_path: Path,
                                                          sqlite_db: Database) -> None:
    (tmp_path / "roots.pem").write_bytes(pem(pki.root.cert))
    extra = {"payments": {**payments_section(pki, tmp_path, interval=0.1),
                          "receipt_qr_roots_file": str(tmp_path / "roots.pem")},
             "limits": {"http": {"receipt_lookup": {"rate_per_second": 0.01, "burst": 12}}}}
    async with running_server(pki, tmp_path, db_url(sqlite_db), extra=extra) as server:
        stub = payments_pb2_grpc.PaymentsServiceStub(server.channel(pki.hcm))
        payment = await stub.CreatePayment(pb.CreatePaymentRequest(
            request_id="pdf-qr-0001", procedure_code="2.000815", province_code="79",
            dossier_code="H29-PDF-QR", payer=pb.Payer(name="Phạm Thị D"), channel="platform"))
        platform = PlatformSimulator(PARTNER, SECRET)
        platform.payments[payment.reference] = _PlatformPayment(
            {"MaThamChieu": payment.reference, "SoTien": payment.amount_due})
        async with httpx.AsyncClient(base_url=server.http_url) as http:
            answer = (await http.post("/payments/platform/callback", json=platform.pay(
                payment.reference, now=dt.datetime.now(dt.UTC)))).json()
            assert platform.check_answer(answer) == "00"
            [receipt] = await _receipts(stub, payment.name, 1)
            receipt_id = receipt.name.split("/")[-1]
            pdf = await http.get(f"/payments/receipts/{receipt_id}.pdf")
            assert pdf.status_code == 200
            (tmp_path / "r.pdf").write_bytes(pdf.content)
            subprocess.run(["pdftoppm", "-r", "200", "-png", str(tmp_path / "r.pdf"),
                            str(tmp_path / "page")], check=True)
            [qr] = zxingcpp.read_barcodes(Image.open(next(tmp_path.glob("page*.png"))))
            url = urlsplit(qr.text)
            assert url.path == "/payments/receipts/check" and url.fragment.count(".") == 2
            assert receipt.qr_text == qr.text  # what gRPC callers print is what the PDF shows
            module: PaymentsModule = next(m for m in server.app._modules  # type: ignore[assignment]
                                          if m.name == "payments")
            # Offline from the QR alone: the seal's signature, its path to the root, its body.
            verified = verify_qr(qr.text, roots=[pki.root.cert],
                                 certificates=module.seal_certificates)
            claims = verified.claims
            assert (claims.label, claims.total) == (f"EBL01-{receipt.series}-{receipt.number}",
                                                    payment.amount_due)
            query = {"k": claims.template, "s": claims.series, "n": f"{claims.number:07d}",
                     "h": claims.xml_sha256_hex}
            # The page the QR opens is served with the root and the seals inside it.
            check = await http.get(url.path)
            assert check.status_code == 200 and b'id="trust"' in check.content
            assert "connect-src 'none'" in check.headers["content-security-policy"]
            # Offline: the attached XML is the receipt, its digest is the QR's, xmlsec1 trusts it.
            attached = tmp_path / "attached"
            attached.mkdir()
            subprocess.run(["pdfdetach", "-saveall", "-o", str(attached), str(tmp_path / "r.pdf")],
                           check=True)
            [xml_file] = attached.iterdir()
            assert xml_file.read_bytes() == receipt.xml
            assert query["h"] == document_digest(receipt.xml)
            (tmp_path / "root.pem").write_bytes(pem(pki.root.cert))
            (tmp_path / "issuing.pem").write_bytes(pem(pki.issuing.cert))
            verify = ["xmlsec1", "--verify", "--trusted-pem", str(tmp_path / "root.pem"),
                      "--untrusted-pem", str(tmp_path / "issuing.pem")]
            done = subprocess.run([*verify, str(xml_file)], capture_output=True, text=True)
            assert done.returncode == 0, done.stderr
            # Online: the QR's URL answers the status; a paper with another digest is unknown.
            lookup = "/payments/receipts/verify"
            status = (await http.get(lookup, params=query)).json()
            assert (status["status"], status["total"]) == ("valid", payment.amount_due)
            forged = await http.get(lookup, params={**query, "h": "0" * 64})
            assert forged.status_code == 404 and forged.json() == {"status": "unknown"}
            # Without the hash, a sequential number answers nothing; a malformed hash is 400.
            bare = await http.get(lookup, params={k: query[k] for k in "ksn"})
            assert bare.status_code == 400 and "total" not in bare.text
            bad = await http.get(lookup, params={**query, "h": "zz"})
            assert bad.status_code == 400
            await asyncio.to_thread(module.receipts.cancel, receipt_id, reason="Thu nhầm",
                                    actor="finance", request_id="pdf-qr-cancel",
                                    now=dt.datetime.now(dt.UTC))
            after = (await http.get(lookup, params=query)).json()
            assert after["status"] == "cancelled"
            # Rate limited per client: the burst (12) is spent, the next lookups are refused.
            answers = [(await http.get(lookup, params=query)).status_code for _ in range(8)]
            assert 429 in answers and answers[-1] == 429


@pytest.mark.postgres
@pytest.mark.slow
async def test_a_thousand_mixed_callbacks_over_http_on_postgresql(
        pki: TestPki, tmp_path: Path, postgres_templates: PostgresTemplates) -> None:
    """A real server on PostgreSQL: 1,000 platform callbacks mixed across 10 payments (20
    different transfers of the full amount each, every one delivered five times, shuffled), 50
    in flight. Each payment is paid exactly once by one transfer; the other 19 are held as
    exceptions (money for a paid payment); every repeat is "already confirmed"; every transfer
    is accounted once by the per-payment checker."""
    import random

    from server.payments.checks import check_database

    with fresh_database("postgresql", postgres_templates, tmp_path) as db:
        extra = {"payments": payments_section(pki, tmp_path, interval=0.1)}
        async with running_server(pki, tmp_path, db_url(db), extra=extra) as server:
            stub = payments_pb2_grpc.PaymentsServiceStub(server.channel(pki.hcm))
            platform = PlatformSimulator(PARTNER, SECRET)
            payments = []
            for i in range(10):
                p = await stub.CreatePayment(pb.CreatePaymentRequest(
                    request_id=f"http-storm-{i:04d}", procedure_code="2.000815",
                    province_code="79", dossier_code=f"H29-STORM-{i}",
                    payer=pb.Payer(name="Lê Văn C"), channel="platform"))
                platform.payments[p.reference] = _PlatformPayment(
                    {"MaThamChieu": p.reference, "SoTien": p.amount_due})
                payments.append(p)
            now = dt.datetime.now(dt.UTC)
            transfers = []
            for p in payments:
                for _ in range(20):
                    platform.payments[p.reference].transaction_id = ""  # a new transfer
                    transfers.append(platform.pay(p.reference, now=now))
            callbacks = [c for c in transfers for _ in range(5)]
            random.Random(7).shuffle(callbacks)
            gate = asyncio.Semaphore(50)
            # A fresh connection per callback, as channels send them (no keep-alive races).
            limits = httpx.Limits(max_connections=50, max_keepalive_connections=0)
            async with httpx.AsyncClient(base_url=server.http_url, limits=limits,
                                         timeout=120) as http:

                async def send(callback: dict[str, object]) -> tuple[str, str]:
                    async with gate:
                        answer = await http.post("/payments/platform/callback", json=callback)
                    return str(callback["MaGiaoDich"]), platform.check_answer(answer.json())

                answers = await asyncio.gather(*[send(c) for c in callbacks])
            per_transfer: dict[str, list[str]] = {}
            for tx, code in answers:
                per_transfer.setdefault(tx, []).append(code)
            assert len(per_transfer) == 200
            # One first answer per transfer (applied or held), four "already confirmed".
            assert all(sorted(codes).count("02") == 4 for codes in per_transfer.values())
            assert sum(codes.count("00") for codes in per_transfer.values()) == 10
            for p in payments:
                got = await stub.GetPayment(pb.GetPaymentRequest(name=p.name))
                assert (got.state, got.collected) == ("paid", p.amount_due)
        with db.read() as s:
            paid = s.execute(select(TransitionRow.payment_id, func.count()).where(
                TransitionRow.to_state == "paid").group_by(TransitionRow.payment_id)).all()
            outcomes = dict(s.execute(select(ChannelEventRow.outcome, func.count()).group_by(
                ChannelEventRow.outcome)).all())
        assert sorted(n for _, n in paid) == [1] * 10
        assert outcomes == {"applied": 10, "held": 190}
        assert check_database(db) == []
