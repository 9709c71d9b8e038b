"""Channels end to end over loopback HTTP: the platform simulator (INIT, callback, QUERY for the
mop-up worker), the gateway IPN, the bank notification, portal webhooks and tax transmission."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from standardwebhooks.webhooks import Webhook
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from payments.channels import BankSimulator, GatewaySimulator, PlatformSimulator, vnpay
from payments.channels.vietqr import vietqr_for_payment
from payments.receipts import TaxAuthoritySimulator
from server.payments.simulator_app import platform_app
from server.storage.db import Database
from tests.payments.support import ACCOUNTS, HCM
from tests.server.payments.test_server import PARTNER, SECRET, db_url, payments_section
from tests.support.pki import TestPki
from tests.support.server import free_port, running_server
from vnegov.payments.v1 import payments_pb2 as pb
from vnegov.payments.v1 import payments_pb2_grpc

WEBHOOK_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


class _Quiet(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self):  # type: ignore[no-untyped-def]
        yield


@contextlib.asynccontextmanager
async def serve(app: Any, port: int) -> AsyncIterator[str]:
    server = _Quiet(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None,
                                   access_log=False, lifespan="off"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


async def wait_for(predicate: Any, timeout: float = 10.0) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await predicate()
        if value or asyncio.get_running_loop().time() > deadline:
            return value
        await asyncio.sleep(0.05)


async def test_channels_webhooks_and_tax(pki: TestPki, tmp_path: Path,
                                         sqlite_db: Database) -> None:
    http_port, platform_port, hook_port = free_port(), free_port(), free_port()
    received: list[tuple[bytes, dict[str, str]]] = []

    async def hook(request: Request) -> Response:
        received.append((await request.body(), dict(request.headers)))
        return Response(status_code=204)

    section = payments_section(pki, tmp_path, interval=0.1)
    section.update({
        "platform_url": f"http://127.0.0.1:{platform_port}", "gateway_tmn_code": "TMN00001",
        "gateway_secret": "gateway-secret", "bank_notification_secret": "bank-secret",
        "mopup_interval_seconds": 3600, "mopup_after_minutes": 0, "retry_seconds": 0.05,
        "webhooks": [{"agency_code": HCM, "url": f"http://127.0.0.1:{hook_port}/hook",
                      "secret": WEBHOOK_SECRET}]})
    platform = PlatformSimulator(PARTNER, SECRET)
    callback_url = f"http://127.0.0.1:{http_port}/payments/platform/callback"
    async with serve(platform_app(platform, callback_url=callback_url), platform_port) as purl, \
            serve(Starlette(routes=[Route("/hook", hook, methods=["POST"])]), hook_port), \
            running_server(pki, tmp_path, db_url(sqlite_db), http_port=http_port,
                           extra={"payments": section}) as server:
        module = next(m for m in server.app._modules if m.name == "payments")
        tax = TaxAuthoritySimulator(fail_next=2)  # two network failures, then accepted
        module.tax = tax
        stub = payments_pb2_grpc.PaymentsServiceStub(server.channel(pki.hcm))

        async def create(request_id: str, channel: str) -> pb.Payment:
            return await stub.CreatePayment(pb.CreatePaymentRequest(
                request_id=request_id, procedure_code="2.000815", province_code="79",
                dossier_code=f"H29-{request_id}", payer=pb.Payer(name="Trần Thị B"),
                channel=channel))

        async with httpx.AsyncClient() as http:
            # Platform: INIT gives the payment URL; the citizen pays; the callback arrives.
            p1 = await create("chan-platform-1", "platform")
            assert p1.payment_url == f"{platform.base_url}/pay/{p1.reference}"
            paid = (await http.post(f"{purl}/pay/{p1.reference}")).json()
            assert paid["code"] == "00"
            # Platform, callback lost: the mop-up worker's QUERY finds it paid; the late
            # callback is then "already confirmed".
            p2 = await create("chan-platform-2", "platform")
            lost = (await http.post(f"{purl}/pay/{p2.reference}?deliver=0")).json()
            assert await module.mop_up_once() == 1
            late = (await http.post(callback_url, json=lost["callback"])).json()
            assert late["MaLoi"] == "02"
            # Gateway: our payment URL is accepted by the gateway; its IPN confirms.
            p3 = await create("chan-gateway-1", "gateway")
            gateway = GatewaySimulator("TMN00001", "gateway-secret")
            ipn = gateway.ipn(p3.payment_url, now=dt.datetime.now(dt.UTC))
            answers = [(await http.get(f"{server.http_url}/payments/gateway/ipn", params=ipn))
                       .json()["RspCode"] for _ in range(2)]
            forged = (await http.get(f"{server.http_url}/payments/gateway/ipn",
                                     params={**ipn, "vnp_Amount": "100"})).json()["RspCode"]
            assert answers == ["00", "02"] and forged == "97"
            # Correctly signed, but the wrong amount (held, answered 04) or an unknown order (01).
            p5 = await create("chan-gateway-2", "gateway")
            short = gateway.ipn(p5.payment_url, now=dt.datetime.now(dt.UTC),
                                amount=p5.amount_due - 1)
            stranger_url = vnpay.payment_url(
                "https://gw.test/pay", tmn_code="TMN00001", secret="gateway-secret",
                reference="RF18539007547034", amount=8000, description="x",
                return_url="https://x/r", ip="127.0.0.1", at=dt.datetime.now(dt.UTC),
                expires=dt.datetime.now(dt.UTC) + dt.timedelta(minutes=15))
            unknown = gateway.ipn(stranger_url, now=dt.datetime.now(dt.UTC))
            codes = [(await http.get(f"{server.http_url}/payments/gateway/ipn", params=q)).json()
                     ["RspCode"] for q in (short, unknown)]
            assert codes == ["04", "01"]
            held = await stub.GetPayment(pb.GetPaymentRequest(name=p5.name))
            assert held.state == "awaiting_payment" and held.collected == 0
            # VietQR: the bank's signed notification.
            p4 = await create("chan-vietqr-1", "vietqr")
            bank = BankSimulator(b"bank-secret")
            transfer = bank.pay_qr(p4.vietqr_payload, at=dt.datetime.now(dt.UTC))
            body, headers = bank.notification(transfer)
            url = f"{server.http_url}/payments/bank/notification?agency={HCM}"
            ok = await http.post(url, content=body, headers=headers)
            bad = await http.post(url, content=body.replace(b'"amount":', b'"amount": '),
                                  headers=headers)
            assert ok.json()["outcome"] == "applied" and bad.status_code == 401
            qr = await http.get(f"{server.http_url}/payments/{p4.name.split('/')[1]}/qr.png")
            assert qr.headers["content-type"] == "image/png"
        assert vietqr_for_payment(ACCOUNTS[HCM], amount=p4.amount_due, reference=p4.reference,
                                  description=p4.dossier_code) == p4.vietqr_payload

        for p in (p1, p2, p3, p4):
            got = await stub.GetPayment(pb.GetPaymentRequest(name=p.name))
            assert got.state == "paid", (p.channel, got.state)

        async def all_sent() -> bool:
            return len(tax.received) >= 4 and len(received) >= 4
        assert await wait_for(all_sent), (len(tax.received), len(received))
        # Webhooks verify with the Standard Webhooks reference library.
        events = [Webhook(WEBHOOK_SECRET).verify(b, h) for b, h in received]
        assert {e["data"]["payment"] for e in events} == {p.name for p in (p1, p2, p3, p4)}
        assert {e["type"] for e in events} == {"payment.paid"}
        # Tax authority: every receipt arrived in a TDiep envelope, after two failures.
        assert len(tax.received) == len(tax.message_ids) == len(set(tax.message_ids)) == 4
        assert all(b"<TDiep><TTChung><PBan>" in m and b"<BLai>" in m for m in tax.received)
        assert all(m.startswith("V0000000000") and len(m) == 11 + 32 for m in tax.message_ids)
        for receipt_list in [await stub.ListReceipts(pb.ListReceiptsRequest(parent=p.name))
                             for p in (p1, p2, p3, p4)]:
            assert len(receipt_list.receipts) == 1
            async with httpx.AsyncClient() as http:
                verify = await http.get(f"{server.http_url}/payments/receipts/verify", params={
                    "k": "EBL01", "s": receipt_list.receipts[0].series,
                    "n": receipt_list.receipts[0].number,
                    "h": hashlib.sha256(receipt_list.receipts[0].xml).hexdigest()})
            assert verify.json()["status"] == "valid"
