"""The development server as `vnegov init` sets it up takes a VietQR payment end to end and issues
a receipt, sealed with the agency certificate the development CA issued, that xmlsec1 verifies
against the development root."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import grpc
import httpx
import pytest

from payments.channels import BankSimulator
from server.app import Application
from server.cli import main
from server.config import load_config
from tests.support.server import free_port
from tests.support.softhsm import SoftHsm
from vnegov.payments.v1 import payments_pb2 as pb
from vnegov.payments.v1 import payments_pb2_grpc


@pytest.mark.slow
async def test_demo_setup_serves_payments_with_signed_receipts(tmp_path: Path,
                                                               softhsm: SoftHsm) -> None:
    # softhsm: this server runs in the test process, and SoftHSM2 reads its configuration once
    # per process: the session's test tokens are set up first (the demo's own token is then
    # not seen here, and remote signing, not used by this test, reports it unavailable).
    data = tmp_path / "data"
    grpc_port, http_port = free_port(), free_port()
    assert main(["--data-dir", str(data), "init", "--grpc-port", str(grpc_port),
                 "--http-port", str(http_port)], {}) == 0
    config = load_config(data / "vnegov.toml", {})
    secret = config.extensions["payments"]["bank_notification_secret"].encode()
    app = Application(config)
    await app.start()
    try:
        pki = data / "pki"
        creds = grpc.ssl_channel_credentials((pki / "root-ca.pem").read_bytes(),
                                             (pki / "clients" / "dvc-hcm.key.pem").read_bytes(),
                                             (pki / "clients" / "dvc-hcm.pem").read_bytes())
        async with grpc.aio.secure_channel(f"localhost:{grpc_port}", creds) as channel:
            stub = payments_pb2_grpc.PaymentsServiceStub(channel)
            payment = await stub.CreatePayment(pb.CreatePaymentRequest(
                request_id="demo-payment-0001", procedure_code="2.000815", province_code="79",
                dossier_code="H29-DEMO-1", payer=pb.Payer(name="Nguyễn Văn A"),
                channel="vietqr"))
            bank = BankSimulator(secret)
            import datetime as dt

            transfer = bank.pay_qr(payment.vietqr_payload, at=dt.datetime.now(dt.UTC))
            body, headers = bank.notification(transfer)
            async with httpx.AsyncClient() as http:
                answer = await http.post(f"http://127.0.0.1:{http_port}/payments/bank/"
                                         "notification?agency=000.00.00.H29", content=body,
                                         headers=headers)
            assert answer.json()["outcome"] == "applied"
            for _ in range(100):
                receipts = await stub.ListReceipts(pb.ListReceiptsRequest(parent=payment.name))
                if receipts.receipts:
                    break
                await asyncio.sleep(0.05)
        [receipt] = receipts.receipts
        (tmp_path / "receipt.xml").write_bytes(receipt.xml)
        done = subprocess.run(["xmlsec1", "--verify", "--trusted-pem", str(pki / "root-ca.pem"),
                               "--untrusted-pem", str(pki / "issuing-ca.pem"),
                               str(tmp_path / "receipt.xml")], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        # Its QR verifies offline against the development root, and the check page the QR opens
        # trusts that root.
        import base64
        import json

        from cryptography import x509
        from cryptography.hazmat.primitives import serialization

        from payments.receipts import verify_qr

        [root] = x509.load_pem_x509_certificates((pki / "root-ca.pem").read_bytes())
        bundle = [c for f in (pki / "agencies").glob("*.pem") if not f.name.endswith(".key.pem")
                  for c in x509.load_pem_x509_certificates(f.read_bytes())]
        verified = verify_qr(receipt.qr_text, roots=[root], certificates=bundle)
        assert verified.claims.agency_code == "000.00.00.H29"
        async with httpx.AsyncClient() as http:
            page = await http.get(f"http://127.0.0.1:{http_port}/payments/receipts/check")
        trust = json.loads(page.text.split('id="trust">', 1)[1].split("</script>", 1)[0])
        assert trust["roots"] == [base64.b64encode(
            root.public_bytes(serialization.Encoding.DER)).decode()]
    finally:
        await app.stop(1.0)
