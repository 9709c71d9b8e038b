#!/usr/bin/env python3
"""Verifications per second: a 1-page PAdES B-LT decision validated offline from its embedded
data (EN 319 102-1 with time, our report), beside pyHanko's plain validator on the same file in
the same run; plus detached CAdES and XMLDSig.

    .venv/bin/python benchmarks/documents_verify.py [--seconds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import io
import logging
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "gen" / "python")]

from pyhanko.pdf_utils.reader import PdfFileReader  # noqa: E402
from pyhanko.sign.validation import async_validate_pdf_signature  # noqa: E402
from pyhanko_certvalidator import ValidationContext  # noqa: E402

from server.documents.transport import HttpTimeStampTransport  # noqa: E402
from signing.sign import XmlDsigSigner  # noqa: E402
from signing.sign._pyhanko import to_asn1  # noqa: E402
from signing.sign.cms import sign_detached  # noqa: E402
from signing.sign.pades import PadesLevel, PadesOptions, sign_pdf  # noqa: E402
from signing.sign.revocation import TrustSettings  # noqa: E402
from signing.sign.signers import KeySigner  # noqa: E402
from signing.validate import Indication, validate_cms, validate_pdf, validate_xml  # noqa: E402
from tests.signing.sign.docpki import DocumentPki  # noqa: E402
from tests.signing.sign.pdfs import decision_pdf  # noqa: E402


def rate(fn: Callable[[], object], seconds: float) -> float:
    fn()
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        fn()
        n += 1
    return n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory() as tmp:
        pki = DocumentPki(Path(tmp))
        try:
            cred = pki.credential("official")
            signer = KeySigner(cred.key, cred.cert, cred.chain)
            out = io.BytesIO()
            sign_pdf(io.BytesIO(decision_pdf()), out, signer, at=dt.datetime.now(dt.UTC),
                     options=PadesOptions(level=PadesLevel.B_LT),
                     timestamps=HttpTimeStampTransport(pki.tsa_url),
                     trust=TrustSettings([pki.root]))
            pdf = out.getvalue()
            content = b"x" * 100_000
            p7s = sign_detached(io.BytesIO(content), signer, at=dt.datetime.now(dt.UTC))
            agency = pki.credential("agency")
            xml = XmlDsigSigner(agency.key, [agency.cert, *agency.chain]).sign_xml(
                b'<BLai><DLBLai Id="D"><TgTien>1</TgTien></DLBLai></BLai>',
                signing_time=dt.datetime.now(dt.UTC), reference_id="D")
            offline = TrustSettings([pki.root], allow_fetching=False)
            online = TrustSettings([pki.root])
            now = dt.datetime.now(dt.UTC)
            assert validate_pdf(io.BytesIO(pdf), trust=offline, at=now).indication is \
                Indication.TOTAL_PASSED

            def ours_pdf() -> None:
                validate_pdf(io.BytesIO(pdf), trust=offline, at=dt.datetime.now(dt.UTC),
                             etsi_report=False)

            def pyhanko_pdf() -> None:
                sig = PdfFileReader(io.BytesIO(pdf)).embedded_signatures[0]
                context = ValidationContext(trust_roots=[to_asn1(pki.root)],
                                            allow_fetching=False, revocation_mode="soft-fail")
                asyncio.run(async_validate_pdf_signature(sig, context))

            def ours_cms() -> None:
                validate_cms(p7s, io.BytesIO(content), trust=online, at=dt.datetime.now(dt.UTC))

            def ours_xml() -> None:
                validate_xml(xml, trust=online, at=dt.datetime.now(dt.UTC))

            rows = [("PDF B-LT, EN 319 102-1 offline (ours)", ours_pdf),
                    ("PDF B-LT, pyHanko plain validator", pyhanko_pdf),
                    ("CAdES B-B 100 kB, OCSP live (ours)", ours_cms),
                    ("XMLDSig, OCSP live (ours)", ours_xml)]
            results = [(label, rate(fn, args.seconds)) for label, fn in rows]
        finally:
            pki.close()
    base = results[1][1]
    print(f"{'':40} {'per s':>8} {'ms each':>8} {'vs pyHanko plain':>17}")
    for label, per_second in results:
        print(f"{label:40} {per_second:8.1f} {1000 / per_second:8.1f} "
              f"{per_second / base:17.2f}")


if __name__ == "__main__":
    main()
