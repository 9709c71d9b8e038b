#!/usr/bin/env python3
"""Receipts issued, numbered, stored and signed per second on SQLite, beside signxml alone
signing the same receipt XML with a preloaded RSA-2048 key, measured in the same run.

    .venv/bin/python benchmarks/payments_receipts.py [--receipts N]

The outbox worker issues in batches (default 100 payments per write transaction): take the
outbox rows, lock and advance the (template, series, year) counter, build each QĐ 1271-style
XML, sign it (XMLDSig, RSA-2048, SigningTime property), store the receipts with their
tax-transmission outbox rows and audit events, and mark the work done, all in one commit.
Target: >= 500 receipts/s.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parents[1]
                                                              / "gen" / "python")]

from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives import hashes  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import rsa  # noqa: E402
from cryptography.x509.oid import NameOID  # noqa: E402
from signxml import XMLSigner  # noqa: E402
from signxml.algorithms import SignatureConstructionMethod  # noqa: E402

from payments.accounts import CollectionAccount  # noqa: E402
from payments.fees import load_catalogue_yaml  # noqa: E402
from payments.payments import Payer  # noqa: E402
from payments.receipts import Organisation, build_receipt_xml  # noqa: E402
from server.payments.receipts_store import ReceiptsStore  # noqa: E402
from server.payments.store import PaymentsStore  # noqa: E402
from server.storage import migrate  # noqa: E402
from server.storage.db import Database  # noqa: E402
from signing.sign.xmldsig import XmlDsigSigner  # noqa: E402

AGENCY = "000.00.00.H29"
T0 = dt.datetime(2025, 8, 1, 2, 0, tzinfo=dt.UTC)
CATALOGUE = Path(__file__).resolve().parents[1] / "payments" / "fees" / "data" / "sample.yaml"


def certificate() -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "VN"),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "UBND TP Ho Chi Minh"),
                      x509.NameAttribute(NameOID.COMMON_NAME, "UBND TP Ho Chi Minh")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=365)).sign(key, hashes.SHA256()))
    return key, cert


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--receipts", type=int, default=3000)
    parser.add_argument("--batch", type=int, default=100,
                        help="payments per issuing transaction (the outbox worker's batch)")
    args = parser.parse_args()
    n = args.receipts
    key, cert = certificate()
    org = Organisation(AGENCY, "Ủy ban nhân dân Thành phố Hồ Chí Minh", "0301234567",
                       "86 Lê Thánh Tôn, TP. Hồ Chí Minh")
    signer = XmlDsigSigner(key, [cert])
    with tempfile.TemporaryDirectory() as tmp:
        db = Database(f"sqlite:///{tmp}/bench.db")
        migrate.upgrade(db)
        store = PaymentsStore(db, catalogue=load_catalogue_yaml(CATALOGUE.read_bytes()),
                              ttl=dt.timedelta(hours=1))
        store.register_account(CollectionAccount(AGENCY, "970415", "113000012345", "UBND"),
                               actor="bench", request_id="bench", now=T0)
        receipts = ReceiptsStore(db, organisations={AGENCY: org},
                                 signer_for=lambda _: signer)
        ids = []
        t = time.perf_counter()
        for i in range(n):
            p = store.create_payment(caller="bench", request_id=uuid.uuid4().hex,
                                     agency_code=AGENCY, province="79",
                                     procedure_code="2.000815", dossier_code=f"D{i}",
                                     payer=Payer("Nguyễn Văn A"), channel="platform", now=T0)
            store.open(p.id, channel_url="", actor="bench", request_id="o", now=T0)
            store.confirm(channel="platform", transaction_id=f"T{i}", reference=p.reference,
                          amount=p.amount_due, at=T0, success=True, exact_amount=True,
                          request_id="cb", now=T0)
            ids.append(p.id)
        print(f"setup: {n:,} paid payments in {time.perf_counter() - t:.1f} s (not timed below)")
        t0 = time.perf_counter()
        issued = 0
        for start in range(0, len(ids), args.batch):  # as the outbox worker takes its work
            issued += len(receipts.issue_batch(ids[start:start + args.batch], now=T0))
        ours = issued / (time.perf_counter() - t0)
        numbers = sorted(n for ns in receipts.numbers().values() for n in ns)
        assert numbers == list(range(1, issued + 1)), "numbering has a gap"
        sample = receipts.get(receipts.for_payment(ids[0])[0].id).data
        db.dispose()
    document = build_receipt_xml(sample)
    from lxml import etree

    xml_signer = XMLSigner(method=SignatureConstructionMethod.enveloped,
                           signature_algorithm="rsa-sha256", digest_algorithm="sha256",
                           c14n_algorithm="http://www.w3.org/2006/12/xml-c14n11")
    t1 = time.perf_counter()
    for _ in range(n):
        xml_signer.sign(etree.fromstring(document), key=key, cert=[cert])
    baseline = n / (time.perf_counter() - t1)
    t2 = time.perf_counter()
    for _ in range(n):
        signer.sign_xml(document, signing_time=T0)
    signing_only = n / (time.perf_counter() - t2)
    print(f"ours:    {ours:8.0f} receipts/s issued+numbered+stored+signed on SQLite "
          f"({issued:,} receipts, numbers 1..{issued} without gaps)")
    print(f"         {signing_only:8.0f} signatures/s by the receipt signer alone")
    print(f"signxml: {baseline:8.0f} signatures/s alone (enveloped, RSA-2048, preloaded key)")
    print(f"ratio:   ours / signxml alone = {ours / baseline:.2f} (target: ours >= 500/s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
