#!/usr/bin/env python3
"""Peak memory signing a large PDF (default 100 MB) from a file to a file, at B-B and B-T.

Each measurement runs in a fresh child process that reports its peak resident set size
(``ru_maxrss``); a baseline child imports the same modules and opens the document without
signing. The figure that matters is the growth over the baseline, against the document's size
(target <= 2x the document size).

    .venv/bin/python benchmarks/documents_memory.py [--mb 100]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": f"{ROOT}:{ROOT / 'proto'}"}

MAKE = r'''
import os, sys
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.writer import PdfFileWriter
target, mb = sys.argv[1], int(sys.argv[2])
w = PdfFileWriter()
for n in range(mb):
    # 1 MiB of incompressible content per page, as a scanned page would be
    data = b"% " + os.urandom(512 * 1024).hex().encode() + b"\nBT ET\n"
    page = generic.DictionaryObject({
        generic.NameObject("/Type"): generic.NameObject("/Page"),
        generic.NameObject("/MediaBox"): generic.ArrayObject(
            [generic.NumberObject(x) for x in (0, 0, 595, 842)]),
        generic.NameObject("/Contents"): w.add_object(generic.StreamObject(stream_data=data)),
        generic.NameObject("/Resources"): generic.DictionaryObject()})
    w.insert_page(page)
with open(target, "wb") as f:
    w.write(f)
'''

CHILD = r'''
import datetime as dt, json, resource, sys, time
from signing.sign.pades import PadesLevel, PadesOptions, sign_pdf
from signing.sign.signers import KeySigner
from signing.sign.revocation import TrustSettings
from server.documents.transport import HttpTimeStampTransport
from signing.ca import CertificateSpec, KeyAlgorithm, KeyUsages, generate_private_key, issue_certificate
from tests.support.pki import TestPki, name
mode, source, target, tsa = sys.argv[1:5]
pki = TestPki()
key = generate_private_key(KeyAlgorithm.RSA_3072)
now = dt.datetime.now(dt.UTC)
cert = issue_certificate(CertificateSpec(subject=name("Signer"),
    not_before=now - dt.timedelta(hours=1), not_after=now + dt.timedelta(days=30),
    key_usages=KeyUsages(digital_signature=True, content_commitment=True)),
    key.public_key(), pki.issuing.key, pki.issuing.cert)
signer = KeySigner(key, cert, [pki.issuing.cert])
t = time.perf_counter()
with open(source, "rb") as src:
    if mode == "baseline":
        src.read(1 << 20)
    else:
        with open(target, "w+b") as out:
            sign_pdf(src, out, signer, at=dt.datetime.now(dt.UTC),
                     options=PadesOptions(level=PadesLevel(mode)),
                     timestamps=HttpTimeStampTransport(tsa) if mode != "B-B" else None)
elapsed = time.perf_counter() - t
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
if mode != "baseline":  # the signature must hold: check it over the whole 100 MB
    from pyhanko.pdf_utils.reader import PdfFileReader
    with open(target, "rb") as f:
        sig = PdfFileReader(f).embedded_signatures[0]
        sig.compute_integrity_info()
        assert sig.summarise_integrity_info()["coverage"].name == "ENTIRE_FILE"
print(json.dumps({"maxrss_kib": rss, "seconds": elapsed}))
'''


def child(mode: str, source: Path, target: Path, tsa: str) -> dict[str, float]:
    done = subprocess.run([sys.executable, "-c", CHILD, mode, str(source), str(target), tsa],
                          capture_output=True, text=True, env=ENV, cwd=ROOT, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=100)
    args = parser.parse_args()
    sys.path[:0] = [str(ROOT), str(ROOT / "gen" / "python")]
    import logging

    from tests.signing.sign.docpki import DocumentPki

    logging.getLogger("werkzeug").setLevel(logging.ERROR)

    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        source = directory / "large.pdf"
        subprocess.run([sys.executable, "-c", MAKE, str(source), str(args.mb)], check=True,
                       env=ENV, cwd=ROOT)
        size = source.stat().st_size
        pki = DocumentPki(directory / "pki")  # a live TSA for B-T
        try:
            base = child("baseline", source, directory / "x.pdf", "")
            print(f"document: {size / 2**20:.1f} MiB; baseline process peak "
                  f"{base['maxrss_kib'] / 1024:.1f} MiB")
            print(f"{'level':6} {'peak MiB':>9} {'growth MiB':>11} {'growth/doc':>11} {'s':>6}")
            for level in ("B-B", "B-T"):
                r = child(level, source, directory / f"{level}.pdf", pki.tsa_url)
                growth = (r["maxrss_kib"] - base["maxrss_kib"]) / 1024
                print(f"{level:6} {r['maxrss_kib'] / 1024:9.1f} {growth:11.1f} "
                      f"{growth * 2**20 / size:11.2f} {r['seconds']:6.1f}")
            print("target: growth <= 2.0 x the document size")
        finally:
            pki.close()


if __name__ == "__main__":
    main()
