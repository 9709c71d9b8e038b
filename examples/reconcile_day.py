#!/usr/bin/env python3
"""A finance officer reconciles a day of fee collection against the bank statement.

    .venv/bin/python examples/reconcile_day.py [OUTPUT_DIR]

On a throwaway SQLite database: payments are made during 1 August 2025 over the national payment
platform and by VietQR (one payer mistypes the reference, a stranger transfers money with no
reference, and one payment never reaches the bank); the bank's camt.053 statement for the day is
imported (twice: the second import adds nothing); the day is reconciled; the officer refunds the
stranger's money and re-queues the missing receipt from the exceptions queue; reports are written
as CSV, XLSX and PDF.
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
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.x509.oid import NameOID  # noqa: E402

from payments.accounts import CollectionAccount  # noqa: E402
from payments.fees import load_catalogue_yaml  # noqa: E402
from payments.payments import Payer  # noqa: E402
from payments.receipts import Organisation  # noqa: E402
from payments.receipts.pdf import Fonts  # noqa: E402
from payments.reconcile import (  # noqa: E402
    ReportBounds,
    Statement,
    StatementLine,
    report_csv,
    report_pdf,
    report_xlsx,
    write_camt053,
)
from server.payments.common import trial_balance  # noqa: E402
from server.payments.receipts_store import ReceiptsStore  # noqa: E402
from server.payments.recon_store import ReconStore  # noqa: E402
from server.payments.store import PaymentsStore  # noqa: E402
from server.storage import migrate  # noqa: E402
from server.storage.db import Database  # noqa: E402
from signing.sign.xmldsig import XmlDsigSigner  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
AGENCY, WARD, ACCOUNT = "000.00.00.H29", "000.00.13.H29", "113000012345"
DAY = dt.date(2025, 8, 1)
T0 = dt.datetime(2025, 8, 1, 2, 0, tzinfo=dt.UTC)  # 09:00 in Vietnam
FONTS = Path("/usr/share/fonts/truetype/dejavu")


def signer() -> XmlDsigSigner:
    """A throwaway organisation key and self-signed certificate ."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "UBND TP Ho Chi Minh")])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(T0 - dt.timedelta(days=1))
            .not_valid_after(T0 + dt.timedelta(days=365)).sign(key, hashes.SHA256()))
    return XmlDsigSigner(key, [cert])


def main() -> int:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp(prefix="recon-"))
    out.mkdir(parents=True, exist_ok=True)
    db = Database(f"sqlite:///{out / 'demo.db'}")
    migrate.upgrade(db)
    store = PaymentsStore(db, catalogue=load_catalogue_yaml(
        (ROOT / "payments/fees/data/sample.yaml").read_bytes()), ttl=dt.timedelta(hours=1))
    store.register_account(CollectionAccount(AGENCY, "970415", ACCOUNT, "UBND TP HCM"),
                           actor="demo", request_id="demo", now=T0)
    paid = []
    for i, (procedure, channel) in enumerate([("1.000494", "platform"), ("2.000815", "vietqr"),
                                              ("1.001612", "vietqr"), ("2.000815", "platform")]):
        at = T0 + dt.timedelta(hours=i)
        p = store.create_payment(caller="portal", request_id=uuid.uuid4().hex,
                                 agency_code=AGENCY, province="79", procedure_code=procedure,
                                 dossier_code=f"H29-25080{i}", payer=Payer(f"Người nộp {i}"),
                                 channel=channel, now=at)
        store.open(p.id, channel_url="", actor="portal", request_id="open", now=at)
        store.confirm(channel=channel, transaction_id=f"TX{i}", reference=p.reference,
                      amount=p.amount_due, at=at, success=True, exact_amount=False,
                      request_id="callback", now=at)
        paid.append(store.get(p.id))
    # The outbox worker has issued the receipts of all but the last payment (its signing key was
    # missing that day): reconciliation reports it as paid without receipt.
    organisations = {
        AGENCY: Organisation(AGENCY, "Ủy ban nhân dân Thành phố Hồ Chí Minh", "0301234567",
                             "86 Lê Thánh Tôn, TP. Hồ Chí Minh"),
        WARD: Organisation(WARD, "Ủy ban nhân dân Phường Bến Thành", "0309876543",
                           "92 Nguyễn Trãi, Phường Bến Thành, TP. Hồ Chí Minh")}
    key = signer()
    receipts = ReceiptsStore(db, organisations=organisations, signer_for=lambda _: key)
    receipts.issue_batch([p.id for p in paid[:-1]], now=T0 + dt.timedelta(hours=5))
    ref = paid[1].reference  # the payer mistypes a check digit
    typo = ref[:3] + ("0" if ref[3] != "0" else "1") + ref[4:]
    lines = [
        StatementLine(ACCOUNT, "FT25213000101", paid[0].amount_due, True, DAY, DAY,
                      "FT25213000101", "", f"{paid[0].reference} thanh toan qua Cong DVCQG"),
        StatementLine(ACCOUNT, "FT25213000102", paid[1].amount_due, True, DAY, DAY,
                      "FT25213000102", "", f"{typo} le phi", "NGUOI NOP 1"),
        StatementLine(ACCOUNT, "FT25213000103", paid[2].amount_due, True, DAY, DAY,
                      "FT25213000103", "", f"{paid[2].reference}", "NGUOI NOP 2"),
        StatementLine(ACCOUNT, "FT25213000104", 500000, True, DAY, DAY, "FT25213000104", "",
                      "chuyen tien", "NGUOI LA"),
    ]
    statement = write_camt053([Statement("STMT-20250801", ACCOUNT, bank_id="970415",
                                         from_date=DAY, to_date=DAY, opening=0, lines=lines)],
                              message_id="MSG-20250801", created=T0 + dt.timedelta(hours=14))
    (out / "camt053-20250801.xml").write_bytes(statement)
    recon = ReconStore(db, settlement_delay=dt.timedelta(days=2))
    for attempt in (1, 2):
        totals = recon.import_statement(statement, fmt="camt053", actor="finance",
                                        request_id=f"import-{attempt}", now=T0)
        print(f"import #{attempt}: {totals['lines']} lines, {totals['new_lines']} new")
    as_of = T0 + dt.timedelta(days=3)
    summary = recon.reconcile(as_of=as_of, actor="finance", run_id="run-20250801")
    for outcome, count in sorted(summary["counts"].items()):
        print(f"  {outcome:<24} {count}  ({summary['amounts'][outcome]:,} đồng)".replace(",", "."))
    for exc in recon.exceptions():
        print(f"exception #{exc.id}: {exc.outcome} {exc.amount} {exc.note}")
        if exc.outcome == "money_without_payment":
            recon.resolve(exc.id, action="refund_to_sender", actor="finance",
                          request_id="resolve", now=as_of)
            print("  resolved: refund to sender (ledger: SUSPENSE -> REFUNDS_PAYABLE)")
        elif exc.outcome == "paid_without_receipt":
            recon.resolve(exc.id, action="issue_receipt", actor="finance",
                          request_id="resolve", now=as_of)
            issued = receipts.issue_batch(exc.payment_ids.split(), now=as_of)
            print(f"  resolved: receipt re-queued and issued ({len(issued)})")
    with db.read() as s:
        tb = trial_balance(s)
    print(f"trial balance: debits {tb.total_debits:,} credits {tb.total_credits:,} "
          f"difference {tb.difference}".replace(",", "."))
    items = recon.items("run-20250801")
    bounds = ReportBounds(DAY, DAY, as_of, "UBND TP Hồ Chí Minh")
    fonts = Fonts((FONTS / "DejaVuSans.ttf").read_bytes(),
                  (FONTS / "DejaVuSans-Bold.ttf").read_bytes())
    (out / "reconcile-20250801.csv").write_bytes(report_csv(items, bounds))
    (out / "reconcile-20250801.xlsx").write_bytes(report_xlsx(items, bounds))
    (out / "reconcile-20250801.pdf").write_bytes(report_pdf(items, bounds, fonts=fonts))
    db.dispose()
    print(f"statement and reports in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
