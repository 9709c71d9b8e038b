"""Sign an official decision as Decree 30/2020 shows it: first the official (title, blue signature,
full name), then the agency (its red seal over the left third of that signature); then verify.

    .venv/bin/python examples/sign_decision.py [--tsa http://127.0.0.1:8080/pki/tsa] [decision.pdf]

Without a PDF a sample decision is made; without --tsa the signatures are PAdES B-B (with a TSA:
B-T; the time-stamp authority of the server `scripts/dev.sh serve` runs is at /pki/tsa, and its
root, data/pki/root-ca.pem, is trusted for the time stamps). Writes the signed PDF and prints the
validation report. The signers' keys and certificates come from a throw-away demo PKI
(examples/_demo.py).
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import logging
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "gen" / "python"), str(ROOT / "examples")]

from _demo import FONT, demo_pki, seal_png, signature_png  # noqa: E402
from cryptography import x509  # noqa: E402
from PIL import Image  # noqa: E402

from server.documents.transport import HttpTimeStampTransport  # noqa: E402
from signing.sign import KeySigner, PadesLevel, PadesOptions, TrustSettings, sign_pdf  # noqa: E402
from signing.stamp import agency_seal, person_layout, person_signature, seal_box  # noqa: E402
from signing.validate import validate_pdf  # noqa: E402


def tsa_roots(path: Path) -> list[x509.Certificate]:
    """The TSA's root(s), or a clear message naming the file when it cannot be used."""
    try:
        return x509.load_pem_x509_certificates(path.read_bytes())
    except OSError as exc:
        raise SystemExit(f"sign_decision: cannot read the time-stamp authority's root {path} "
                         f"({exc.strerror or exc}); give it with --tsa-root (the server "
                         "`scripts/dev.sh serve` runs writes it to data/pki/root-ca.pem)") from None
    except ValueError:
        raise SystemExit(f"sign_decision: {path} holds no PEM certificate (--tsa-root)") from None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pdf", nargs="?", type=Path)
    parser.add_argument("--tsa")
    parser.add_argument("--tsa-root", type=Path, default=ROOT / "data" / "pki" / "root-ca.pem",
                        help="the root the time-stamp authority's certificate chains to")
    parser.add_argument("--out", type=Path,
                        default=Path(tempfile.gettempdir()) / "vnegov-examples" /
                        "decision-signed.pdf")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)

    # The TSA's root is needed to verify the time stamps: checked before anything is signed.
    roots_of_tsa = tsa_roots(args.tsa_root) if args.tsa else []
    pki = demo_pki()
    if args.pdf:
        document = args.pdf.read_bytes()
    else:
        from tests.signing.sign.pdfs import decision_pdf
        document = decision_pdf()
    font = FONT.read_bytes()
    tsa = HttpTimeStampTransport(args.tsa) if args.tsa else None
    level = PadesLevel.B_T if tsa else PadesLevel.B_B

    # 1. The official signs: title, signature image, full name, in the signature block.
    box = (330.0, 150.0, 530.0, 290.0)
    signature = signature_png()
    official = KeySigner(pki.official.key, pki.official.chain[0])
    first = io.BytesIO()
    sign_pdf(io.BytesIO(document), first, official, at=dt.datetime.now(dt.UTC),
             options=PadesOptions(level=level, reason="Ký ban hành", appearance=person_signature(
                 page=0, box=box, title="CHỦ TỊCH", full_name="Nguyễn Văn An",
                 image_png=signature, font=font)), timestamps=tsa)

    # 2. The agency signs: its seal at real size (36 mm) over the left third of the signature.
    plan = person_layout(box, Image.open(io.BytesIO(signature)).size)
    agency = KeySigner(pki.agency.key, pki.agency.chain[0])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    first.seek(0)
    part = args.out.with_name(args.out.name + ".part")  # renamed once complete
    try:
        with part.open("w+b") as out:
            sign_pdf(first, out, agency, at=dt.datetime.now(dt.UTC), options=PadesOptions(
                level=level, appearance=agency_seal(page=0, box=seal_box(plan, 36),
                                                    seal_png=seal_png())), timestamps=tsa)
        part.replace(args.out)
    finally:
        part.unlink(missing_ok=True)
    print(f"wrote {args.out}")

    # 3. Anyone verifies it with the roots they trust. The demo signers' certificates name no
    # revocation service, so none is required for them; the time-stamp authority's certificates
    # do, and their status is fetched from the server's OCSP responder and CRLs.
    roots = [pki.root, *roots_of_tsa]
    trust = TrustSettings(roots, allow_fetching=True, require_revocation=False)
    with args.out.open("rb") as f:
        report = validate_pdf(f, trust=trust, at=dt.datetime.now(dt.UTC))
    print(report.to_text())
    pki.write_root(args.out.with_name("demo-root.pem"))
    print(f"(the demo root is in {args.out.with_name('demo-root.pem')}; pdfsig, pyHanko or "
          "examples/sign_verify.py --no-revocation can check the file too)")


if __name__ == "__main__":
    main()
