#!/usr/bin/env python3
"""Receipts issued, numbered, stored and signed per second on SQLite, with and without the signed
QR (compact JWS by the same seal), beside signxml alone signing the same receipt XML with a
preloaded key, measured in the same run.

    .venv/bin/python benchmarks/payments_receipts.py [--receipts N] [--rounds R]
                                                     [--key ec|rsa] [--signing-threads N]

The outbox worker issues in batches (default 100 payments per write transaction): take the
outbox rows, lock and advance the (template, series, year) counter and number the batch's
receipts in order, build each QĐ 1271-style XML, sign it (XMLDSig, C14N 1.1, SigningTime
property, the signature placed in DSCKS/TCThu) and seal its QR (ES256 for an EC P-256 key,
PS256 for RSA-2048), on ``--signing-threads`` threads (default 1), then store the receipts with
their tax-transmission outbox rows and audit events and mark the work done, all in one commit.
Target: >= 1,000 receipts/s with the QR signature.

Every figure is measured in rounds: each round issues a share of the receipts with the QR, then
the same share without it, then times the XML signer, the QR seal and signxml alone, and the
medians of the rounds are printed with their ranges. On a shared machine the load moves within a
run; measured in turn, a burst slows one round of every line rather than one line's whole figure.
Each timed phase starts after a full garbage collection: otherwise the phase that follows the
signers' loops pays for their garbage (whichever line ran first measured 15-30% slower).

The default key is EC P-256 because that is what collecting bodies have here: the development
PKI (server/devpki.py) issues EC P-256 keys to every organisation, and the receipt QR format is
ES256 first (a 64-byte signature keeps the QR small). ``--key rsa`` measures RSA-2048 seals
(two RSA private-key operations per receipt, each several times an ECDSA one): RSA signing runs
outside the GIL, so ``--signing-threads 2`` (what the server uses for RSA seals) overlaps it on
two cores.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parents[1]
                                                              / "gen" / "python")]

from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives import hashes  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec, rsa  # noqa: E402
from cryptography.x509.oid import NameOID  # noqa: E402
from signxml import XMLSigner  # noqa: E402
from signxml.algorithms import SignatureConstructionMethod  # noqa: E402

from payments.accounts import CollectionAccount  # noqa: E402
from payments.fees import load_catalogue_yaml  # noqa: E402
from payments.payments import Payer  # noqa: E402
from payments.receipts import Organisation, QrSeal, build_receipt_xml  # noqa: E402
from server.payments.receipts_store import ReceiptsStore  # noqa: E402
from server.payments.store import PaymentsStore  # noqa: E402
from server.storage import migrate  # noqa: E402
from server.storage.db import Database  # noqa: E402
from signing.sign.xmldsig import XmlDsigSigner  # noqa: E402

AGENCY = "000.00.00.H29"
T0 = dt.datetime(2025, 8, 1, 2, 0, tzinfo=dt.UTC)
CATALOGUE = Path(__file__).resolve().parents[1] / "payments" / "fees" / "data" / "sample.yaml"


def certificate(kind: str = "rsa") -> tuple[Any, x509.Certificate]:
    from signing.ca import SubjectInfo

    key: Any = rsa.generate_private_key(public_exponent=65537, key_size=2048) if kind == "rsa" \
        else ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "VN"),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "UBND TP Ho Chi Minh"),
                      x509.NameAttribute(NameOID.COMMON_NAME, "UBND TP Ho Chi Minh")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=365))
            .add_extension(SubjectInfo(agency_code=AGENCY).to_extension(), critical=False)
            .sign(key, hashes.SHA256()))
    return key, cert


class Issuer:
    """A SQLite database holding ``n`` paid payments whose receipts are then issued in rounds,
    as the outbox worker takes its work (``batch`` payments per write transaction)."""

    def __init__(self, tmp: str, n: int, batch: int, signer: XmlDsigSigner,
                 seal: QrSeal | None, org: Organisation, threads: int = 1) -> None:
        self.db = Database(f"sqlite:///{tmp}/bench.db")
        migrate.upgrade(self.db)
        store = PaymentsStore(self.db, catalogue=load_catalogue_yaml(CATALOGUE.read_bytes()),
                              ttl=dt.timedelta(hours=1))
        store.register_account(CollectionAccount(AGENCY, "970415", "113000012345", "UBND"),
                               actor="bench", request_id="bench", now=T0)
        self.receipts = ReceiptsStore(self.db, organisations={AGENCY: org},
                                      signer_for=lambda _: signer,
                                      seal_for=(lambda _: seal) if seal else None,
                                      signing_threads=threads)
        self.seal, self.batch = seal, batch
        self.ids: list[str] = []
        for i in range(n):
            p = store.create_payment(caller="bench", request_id=uuid.uuid4().hex,
                                     agency_code=AGENCY, province="79",
                                     procedure_code="2.000815", dossier_code=f"D{i}",
                                     payer=Payer("Nguyễn Văn A"), channel="platform", now=T0)
            store.open(p.id, channel_url="", actor="bench", request_id="o", now=T0)
            store.confirm(channel="platform", transaction_id=f"T{i}", reference=p.reference,
                          amount=p.amount_due, at=T0, success=True, exact_amount=True,
                          request_id="cb", now=T0)
            self.ids.append(p.id)
        self.next = 0

    def run(self, count: int) -> float:
        """Issue the receipts of the next ``count`` payments: receipts per second."""
        todo = self.ids[self.next:self.next + count]
        self.next += len(todo)
        gc.collect()  # no line pays for the garbage the line before left
        t0 = time.perf_counter()
        issued = 0
        for start in range(0, len(todo), self.batch):
            issued += len(self.receipts.issue_batch(todo[start:start + self.batch], now=T0))
        elapsed = time.perf_counter() - t0
        assert issued == len(todo)
        return issued / elapsed

    def finish(self) -> Any:
        """Check that the numbers run 1..N without a gap; one issued receipt."""
        numbers = sorted(n for ns in self.receipts.numbers().values() for n in ns)
        assert numbers == list(range(1, self.next + 1)), "numbering has a gap"
        sample = self.receipts.get(self.receipts.for_payment(self.ids[0])[0].id)
        assert bool(sample.qr_token) == (self.seal is not None)
        self.db.dispose()
        return sample


def rate(count: int, action: Any) -> float:
    gc.collect()
    t0 = time.perf_counter()
    for _ in range(count):
        action()
    return count / (time.perf_counter() - t0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--receipts", type=int, default=3000,
                        help="receipts issued by each of the two issuers, over all rounds")
    parser.add_argument("--rounds", type=int, default=6,
                        help="rounds, each measuring every variant once in turn (the medians "
                             "are reported: a burst of other work on the machine moves one "
                             "round of each variant alike, not one variant's whole figure)")
    parser.add_argument("--batch", type=int, default=100,
                        help="payments per issuing transaction (the outbox worker's batch)")
    parser.add_argument("--key", choices=["ec", "rsa"], default="ec",
                        help="the seal's key: EC P-256 (ecdsa-sha256, QR ES256; the default, as "
                             "the development PKI issues) or RSA-2048 (rsa-sha256, QR PS256)")
    parser.add_argument("--signing-threads", type=int, default=1,
                        help="threads signing a batch's receipts (helps RSA keys on 2+ cores)")
    args = parser.parse_args()
    n, rounds = args.receipts, args.rounds
    per_round = max(n // rounds, 1)
    key, cert = certificate(args.key)
    org = Organisation(AGENCY, "Ủy ban nhân dân Thành phố Hồ Chí Minh", "0301234567",
                       "86 Lê Thánh Tôn, TP. Hồ Chí Minh")
    signer = XmlDsigSigner(key, [cert])
    seal = QrSeal(key, cert)
    threads = args.signing_threads
    from lxml import etree

    xml_signer = XMLSigner(method=SignatureConstructionMethod.enveloped,
                           signature_algorithm="rsa-sha256" if args.key == "rsa"
                           else "ecdsa-sha256", digest_algorithm="sha256",
                           c14n_algorithm="http://www.w3.org/2006/12/xml-c14n11")
    with tempfile.TemporaryDirectory() as with_dir, tempfile.TemporaryDirectory() as plain_dir:
        t = time.perf_counter()
        with_qr = Issuer(with_dir, per_round * rounds, args.batch, signer, seal, org, threads)
        without_qr = Issuer(plain_dir, per_round * rounds, args.batch, signer, None, org,
                            threads)
        print(f"setup: {2 * per_round * rounds:,} paid payments in "
              f"{time.perf_counter() - t:.1f} s (not timed)")
        with_qr.run(args.batch)  # warm-up, not counted: the first batch creates the counter
        without_qr.run(args.batch)  # and loads what the first signature needs
        sample_data = with_qr.receipts.get(with_qr.receipts.for_payment(with_qr.ids[0])[0].id)
        document = build_receipt_xml(sample_data.data)
        figures: dict[str, list[float]] = {k: [] for k in ("qr", "plain", "signer", "seal",
                                                           "signxml")}
        for _ in range(rounds):
            figures["qr"].append(with_qr.run(per_round))
            figures["plain"].append(without_qr.run(per_round))
            figures["signer"].append(rate(per_round, lambda: signer.sign_xml(
                document, signing_time=T0)))
            figures["seal"].append(rate(per_round, lambda: seal.sign_receipt(
                sample_data.data, sample_data.xml)))
            figures["signxml"].append(rate(per_round, lambda: xml_signer.sign(
                etree.fromstring(document), key=key, cert=[cert])))
        sample = with_qr.finish()
        without_qr.finish()
    med = {k: statistics.median(v) for k, v in figures.items()}
    spread = {k: f"{min(v):.0f}-{max(v):.0f}" for k, v in figures.items()}
    alg = seal.alg
    name = "RSA-2048" if args.key == "rsa" else "EC P-256"
    print(f"medians of {rounds} rounds of {per_round:,} (each round runs every line in turn; "
          "range in brackets):")
    print(f"ours+QR: {med['qr']:8.0f} receipts/s issued+numbered+stored+signed+QR-sealed "
          f"({alg}) on SQLite [{spread['qr']}] (numbers without gaps, {threads} signing "
          f"thread{'s' if threads > 1 else ''})")
    print(f"ours:    {med['plain']:8.0f} receipts/s the same without the QR signature "
          f"[{spread['plain']}]")
    print(f"         {med['signer']:8.0f} signatures/s by the receipt XML signer alone "
          f"[{spread['signer']}]")
    print(f"         {med['seal']:8.0f} QR signatures/s alone ({alg}, "
          f"{len(sample.qr_token)} characters) [{spread['seal']}]")
    print(f"signxml: {med['signxml']:8.0f} signatures/s alone (enveloped, {name}, preloaded "
          f"key) [{spread['signxml']}]")
    print(f"ratio:   ours+QR / signxml alone = {med['qr'] / med['signxml']:.2f}; "
          f"ours+QR / ours = {med['qr'] / med['plain']:.2f} (target: ours+QR >= 1,000/s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
