"""Verify the signatures of a PDF, an XML document or a file with its .p7s, and print the
EN 319 102-1 report (text, JSON, or the ETSI TS 119 102-2 XML report).

    .venv/bin/python examples/sign_verify.py out/decision-signed.pdf --trust out/demo-root.pem
    .venv/bin/python examples/sign_verify.py hoso.zip --signature hoso.zip.p7s --trust root.pem
    .venv/bin/python examples/sign_verify.py receipt.xml --trust root.pem --json
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "gen" / "python")]

from cryptography import x509  # noqa: E402

from signing.validate import (  # noqa: E402
    Indication,
    TrustSettings,
    validate_cms,
    validate_pdf,
    validate_xml,
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", type=Path)
    parser.add_argument("--trust", type=Path, action="append", required=True)
    parser.add_argument("--signature", type=Path)
    parser.add_argument("--offline", action="store_true", help="embedded revocation data only")
    parser.add_argument("--no-revocation", action="store_true",
                        help="do not require revocation data (PKIs without responders)")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--etsi", action="store_true")
    args = parser.parse_args()
    roots = [c for p in args.trust for c in x509.load_pem_x509_certificates(p.read_bytes())]
    logging.basicConfig(level=logging.ERROR)
    trust = TrustSettings(roots, allow_fetching=not args.offline,
                          require_revocation=not args.no_revocation)
    at = dt.datetime.now(dt.UTC)
    if args.signature:
        with args.file.open("rb") as f:
            report = validate_cms(args.signature.read_bytes(), f, trust=trust, at=at)
    elif args.file.suffix.lower() == ".xml":
        report = validate_xml(args.file.read_bytes(), trust=trust, at=at)
    else:
        with args.file.open("rb") as f:
            report = validate_pdf(f, trust=trust, at=at)
    if args.json:
        print(report.to_json())
    elif args.etsi:
        print("\n".join(report.etsi_xml_reports))
    else:
        print(report.to_text(), end="")
    return 0 if report.indication is Indication.TOTAL_PASSED else 1


if __name__ == "__main__":
    sys.exit(main())
