#!/usr/bin/env python3
"""Verifications per second: a 1-page PAdES B-LT decision validated offline from its embedded
data (EN 319 102-1 long-term process with revocation checks, our report) now and one year later,
beside pyHanko's plain validator on the same file in the same run (no revocation checks; goal:
at least 1.0x at +1 year), as shipped and with this project's speed-ups of pyHanko loaded (a
faster /Contents reader, memoised X.509 name preparation); plus detached CAdES and XMLDSig.
Then the cost of the co-signing path (the DSS-only revision for earlier signatures that every
long-term signature now starts with) on a single-signer B-LTA signature, against the same
signature without that step (goal: at most +10%), and a second signer's B-LTA.

    .venv/bin/python benchmarks/documents_verify.py [--seconds 5] [--n 15]
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
from signing.validate import _speedups as speedups  # noqa: E402
from tests.signing.sign.docpki import DocumentPki  # noqa: E402
from tests.signing.sign.pdfs import decision_pdf  # noqa: E402


def rates(fns: list[Callable[[], object]], seconds: float) -> list[float]:
    """Calls per second of each function, measured in interleaved rounds (one call of each per
    round) so that a change in the machine's load affects all of them alike."""
    for fn in fns:
        fn()
    spent = [0.0] * len(fns)
    calls = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds * len(fns):
        for i, fn in enumerate(fns):
            t = time.perf_counter()
            fn()
            spent[i] += time.perf_counter() - t
        calls += 1
    return [calls / s for s in spent]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--n", type=int, default=15, help="signatures per co-signing sample")
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

            def ours_pdf_later() -> None:
                validate_pdf(io.BytesIO(pdf), trust=offline, etsi_report=False,
                             at=dt.datetime.now(dt.UTC) + dt.timedelta(days=365))

            assert validate_pdf(io.BytesIO(pdf), trust=offline,
                                at=now + dt.timedelta(days=365)).indication is \
                Indication.TOTAL_PASSED

            def pyhanko_stock() -> None:  # without this project's speed-ups of pyHanko
                speedups.uninstall()
                try:
                    pyhanko_pdf()
                finally:
                    speedups.install()

            def ours_cms() -> None:
                validate_cms(p7s, io.BytesIO(content), trust=online, at=dt.datetime.now(dt.UTC))

            def ours_xml() -> None:
                validate_xml(xml, trust=online, at=dt.datetime.now(dt.UTC))

            rows = [("PDF B-LT, EN 319 102-1 offline (ours)", ours_pdf),
                    ("PDF B-LT, pyHanko plain validator", pyhanko_stock),
                    ("  the same, with our speed-ups loaded", pyhanko_pdf),
                    ("PDF B-LT at +1 year, offline (ours)", ours_pdf_later),
                    ("CAdES B-B 100 kB, OCSP live (ours)", ours_cms),
                    ("XMLDSig, OCSP live (ours)", ours_xml)]
            results = list(zip([label for label, _ in rows],
                               rates([fn for _, fn in rows], args.seconds), strict=True))
            cosign = cosigning(pki, signer, args.n)
        finally:
            pki.close()
    base = results[1][1]  # pyHanko as shipped
    print(f"{'':40} {'per s':>8} {'ms each':>8} {'vs pyHanko plain':>17}")
    for label, per_second in results:
        print(f"{label:40} {per_second:8.1f} {1000 / per_second:8.1f} "
              f"{per_second / base:17.2f}")
    print()
    print("B-LTA signature, 1-page PDF (no grace period), median of", args.n)
    single, without, second, alone = cosign
    print(f"{'single signer, before the co-signing path':45} {without * 1000:8.1f} ms")
    print(f"{'single signer, with the co-signing path':45} {single * 1000:8.1f} ms "
          f"{(single / without - 1) * 100:+6.1f}%")
    print(f"{'second signer after a B-LTA (covers the first)':45} {second * 1000:8.1f} ms "
          f"{(second / without - 1) * 100:+6.1f}%")
    print(f"{'the co-signing step alone, single signer':45} {alone * 1000:8.2f} ms "
          f"{alone / without * 100:+6.2f}%")


def cosigning(pki: DocumentPki, signer: KeySigner,
              n: int) -> tuple[float, float, float, float]:
    """Median seconds of a B-LTA signature: single signer as now, single signer without the
    DSS-only revision for earlier signatures (the code before co-signing), second signer."""
    import statistics
    from unittest import mock

    import signing.sign.pades as pades

    tsa = HttpTimeStampTransport(pki.tsa_url)
    trust = TrustSettings([pki.root], grace_period=0)
    document = decision_pdf()

    def sign(data: bytes) -> bytes:
        out = io.BytesIO()
        sign_pdf(io.BytesIO(data), out, signer, at=dt.datetime.now(dt.UTC),
                 options=PadesOptions(level=PadesLevel.B_LTA), timestamps=tsa, trust=trust)
        return out.getvalue()

    async def no_cover(*args: object, **kwargs: object) -> None:
        return None

    first = sign(document)

    def timed(fn: Callable[[], object]) -> float:
        start = time.perf_counter()
        fn()
        return time.perf_counter() - start

    def without_cover() -> None:
        with mock.patch.object(pades, "cover_signatures", no_cover):
            sign(document)

    samples: list[list[float]] = [[], [], []]
    try:
        sign(document)  # warm-up
        for _ in range(n):  # interleaved, so that load changes hit all three alike
            samples[0].append(timed(lambda: sign(document)))
            samples[1].append(timed(without_cover))
            samples[2].append(timed(lambda: sign(first)))
    finally:
        tsa.close()
    single, without, second = (statistics.median(s) for s in samples)
    return single, without, second, step(document, trust, n * 10)


def step(document: bytes, trust: TrustSettings, n: int) -> float:
    """Median seconds of the co-signing step alone on a document without signatures (what it
    adds to a single signer's signature, measured directly: the difference of two signature
    timings drowns in the TSA's and responders' noise)."""
    import asyncio
    import contextlib
    import statistics

    from signing.sign.ltv import cover_signatures

    async def once() -> float:
        start = time.perf_counter()
        with contextlib.ExitStack() as spools:
            await cover_signatures(io.BytesIO(document), trust, dt.datetime.now(dt.UTC), spools)
        return time.perf_counter() - start

    return statistics.median(asyncio.run(once()) for _ in range(n))


if __name__ == "__main__":
    main()
