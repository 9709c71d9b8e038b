#!/usr/bin/env python3
"""A citizen pays a dossier's fees by VietQR, and gets a signed e-receipt.

    .venv/bin/python examples/pay_vietqr.py [OUTPUT_DIR]

Runs on a throwaway SQLite database with the sample fee catalogue: quote, create the payment,
render its VietQR (PNG), let a simulated bank app scan it and transfer, verify the bank's signed
credit notification, apply it, issue the receipt (XML signed by a throwaway organisation key
through the XMLDSig signer) and render the PDF with its verification QR.
"""

from __future__ import annotations

import datetime as dt
import sys
import tempfile
import uuid
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parents[1]
                                                              / "gen" / "python")]

from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives import hashes  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import rsa  # noqa: E402
from cryptography.x509.oid import NameOID  # noqa: E402

from payments.accounts import CollectionAccount  # noqa: E402
from payments.channels import (  # noqa: E402
    BankSimulator,
    find_references,
    parse_bank_notification,
    qr_png,
    vietqr_for_payment,
)
from payments.fees import load_catalogue_yaml  # noqa: E402
from payments.money import format_vnd  # noqa: E402
from payments.payments import Payer  # noqa: E402
from payments.receipts import Organisation  # noqa: E402
from payments.receipts.pdf import Fonts, render_receipt_pdf  # noqa: E402
from server.payments.receipts_store import ReceiptsStore  # noqa: E402
from server.payments.store import PaymentsStore  # noqa: E402
from server.storage import migrate  # noqa: E402
from server.storage.db import Database  # noqa: E402
from signing.sign.xmldsig import XmlDsigSigner  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
AGENCY = "000.00.00.H29"
FONTS = Path("/usr/share/fonts/truetype/dejavu")


def organisation_signer() -> XmlDsigSigner:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "VN"),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "UBND TP Hồ Chí Minh"),
                      x509.NameAttribute(NameOID.COMMON_NAME, "UBND TP Hồ Chí Minh")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=365)).sign(key, hashes.SHA256()))
    return XmlDsigSigner(key, [cert])


def main() -> int:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp(prefix="pay-"))
    out.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)
    db = Database(f"sqlite:///{out / 'demo.db'}")
    migrate.upgrade(db)
    catalogue = load_catalogue_yaml((ROOT / "payments/fees/data/sample.yaml").read_bytes())
    store = PaymentsStore(db, catalogue=catalogue, ttl=dt.timedelta(minutes=30))
    account = CollectionAccount(AGENCY, "970415", "113000012345", "UBND TP Hồ Chí Minh")
    store.register_account(account, actor="demo", request_id="demo", now=now)

    # 1. The portal quotes the dossier and creates the payment.
    quote = store.quote("2.000815", province="79", on=now.date())
    print(f"quote for {quote.procedure_name}: {format_vnd(quote.total)}")
    payment = store.create_payment(caller="portal", request_id=uuid.uuid4().hex,
                                   agency_code=AGENCY, province="79", procedure_code="2.000815",
                                   dossier_code="H29-000123", payer=Payer("Nguyễn Văn A"),
                                   channel="vietqr", now=now)
    payment = store.open(payment.id, channel_url="", actor="portal", request_id="open", now=now)
    payload = vietqr_for_payment(account, amount=payment.amount_due, reference=payment.reference,
                                 description=f"Ho so {payment.dossier_code}")
    (out / "vietqr.png").write_bytes(qr_png(payload))
    print(f"payment {payment.name}: {payment.state}, reference {payment.reference}")
    print(f"VietQR payload: {payload}")

    # 2. The citizen scans the QR in a banking app; the bank notifies the account holder.
    bank = BankSimulator(secret=b"bank-notification-secret")
    transfer = bank.pay_qr(payload, at=now + dt.timedelta(minutes=2))
    body, headers = bank.notification(transfer)
    notice = parse_bank_notification(body, headers["X-Bank-Signature"],
                                     b"bank-notification-secret", account=account,
                                     now=now + dt.timedelta(minutes=2))
    result = store.confirm(channel="vietqr", transaction_id=notice.transaction_id,
                           reference=find_references(notice.description)[0],
                           amount=notice.amount, at=notice.at, success=True, exact_amount=False,
                           request_id="bank", now=now + dt.timedelta(minutes=2))
    print(f"bank notification {notice.transaction_id}: {result.outcome}; payment is now "
          f"{store.get(payment.id).state}")

    # 3. The outbox worker issues the signed receipt; the citizen downloads the PDF.
    org = Organisation(AGENCY, "Ủy ban nhân dân Thành phố Hồ Chí Minh", "0301234567",
                       "86 Lê Thánh Tôn, Phường Sài Gòn, TP. Hồ Chí Minh")
    signer = organisation_signer()
    receipts = ReceiptsStore(db, organisations={AGENCY: org}, signer_for=lambda _: signer)
    receipts.issue_for_payment(payment.id, now=now + dt.timedelta(minutes=3))
    for r in receipts.for_payment(payment.id):
        (out / f"{r.data.label}.xml").write_bytes(r.xml)
        fonts = Fonts((FONTS / "DejaVuSans.ttf").read_bytes(),
                      (FONTS / "DejaVuSans-Bold.ttf").read_bytes())
        (out / f"{r.data.label}.pdf").write_bytes(render_receipt_pdf(
            r.data, r.xml, fonts=fonts, verify_url="http://127.0.0.1:8080/payments/receipts/verify"))
        print(f"receipt {r.data.label}: {format_vnd(r.data.total)} ({r.status})")
    db.dispose()
    print(f"files in {out}: vietqr.png, the receipt's signed XML and PDF")
    return 0


if __name__ == "__main__":
    sys.exit(main())
