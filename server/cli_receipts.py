"""Offline receipt checks, without a server or a database:

    vnegov receipts verify --qr IMAGE|--text TEXT --root ROOT.pem [--certs SEALS.pem] [--xml F]
                                               verify a receipt's signed QR (photo or text)
    vnegov receipts verifier-page --root ROOT.pem --certs SEALS.pem -o verify.html
                                               write the self-contained browser verification page

``--root`` is the trust anchor (the national root); ``--certs`` the published seal certificates
and issuing CAs, untrusted (only a path to the root counts). Exit status 0 valid, 1 not.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["register_receipt_checks", "register_reconcile_report"]


def _certs(paths: list[str]) -> list[Any]:
    from cryptography import x509

    out: list[x509.Certificate] = []
    for name in paths:
        out.extend(x509.load_pem_x509_certificates(Path(name).read_bytes()))
    return out


def _decode_picture(path: str) -> str | None:
    import zxingcpp
    from PIL import Image, UnidentifiedImageError

    try:
        image = Image.open(path)
        image.load()
    except (OSError, UnidentifiedImageError):
        return None
    for candidate in (image, image.convert("L")):
        found = [r for r in zxingcpp.read_barcodes(candidate)
                 if r.format == zxingcpp.BarcodeFormat.QRCode and r.text]
        if found:
            return str(found[0].text)
    return None


def cmd_verify(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    import hashlib

    from payments.errors import ReceiptQrInvalid
    from payments.money import format_vnd
    from payments.receipts.qr_jws import verify_qr

    try:
        roots, certificates = _certs(args.root), _certs(args.certs)
    except (OSError, ValueError) as exc:
        print(f"vnegov: cannot read certificates: {exc}", file=sys.stderr)
        return 2
    if args.qr:
        text = _decode_picture(args.qr)
        if text is None:
            print(f"vnegov: no QR code found in {args.qr}", file=sys.stderr)
            return 1
    else:
        text = args.text
    try:
        verified = verify_qr(text, roots=roots, certificates=certificates)
    except ReceiptQrInvalid as exc:
        print(f"INVALID: {exc.message} ({exc.detail})", file=sys.stderr)
        return 1
    c = verified.claims
    if args.xml:
        if hashlib.sha256(Path(args.xml).read_bytes()).digest() != c.xml_sha256:
            print("INVALID: the XML file is not the receipt the QR names (SHA-256 differs)",
                  file=sys.stderr)
            return 1
    print(f"VALID receipt {c.label}, issued {c.issued_at:%Y-%m-%d %H:%M:%S} (GMT+7)")
    print(f"  collecting body {c.agency_code}, tax code {c.tax_code}")
    print(f"  payer {c.payer_ref or '-'}, total {format_vnd(c.total)}")
    print(f"  signed XML SHA-256 {c.xml_sha256_hex}" + (" (matches --xml)" if args.xml else ""))
    print(f"  sealed by {verified.seal_subject} ({verified.algorithm})")
    print("  chain " + " <- ".join(x.subject.rfc4514_string() for x in verified.chain))
    print("  (cancellation or replacement is visible only in the online lookup)")
    return 0


def cmd_verify_any(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    """One ``receipts verify``: the QR route when --qr/--text is given, else the signed XML."""
    if args.qr and args.text:
        print("vnegov: give --qr or --text, not both", file=sys.stderr)
        return 2
    if args.qr or args.text:
        if not args.trust:
            print("vnegov: --trust (or --root) names the trusted root for a QR check",
                  file=sys.stderr)
            return 2
        args.root = args.trust
        args.xml = args.xml or args.file
        return cmd_verify(args, environ)
    from server.cli_receipts_verify import cmd_receipts_verify

    return cmd_receipts_verify(args, environ)


def cmd_verifier_page(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    from payments.receipts.qr_page import verifier_page

    try:
        roots, certificates = _certs(args.root), _certs(args.certs)
    except (OSError, ValueError) as exc:
        print(f"vnegov: cannot read certificates: {exc}", file=sys.stderr)
        return 2
    Path(args.output).write_bytes(verifier_page(roots, certificates))
    print(f"wrote {args.output} ({len(roots)} root(s), {len(certificates)} certificate(s))")
    return 0


def register_receipt_checks(receipts: Any) -> None:
    """Add ``verify`` and ``verifier-page`` to the ``vnegov receipts`` subcommands."""
    p = receipts.add_parser(
        "verify", help="verify a receipt offline: its signed XML (FILE: signature, the seal "
        "belongs to the collecting body, trust), or its signed QR code (--qr PICTURE or --text)")
    p.add_argument("file", nargs="?", help="the signed receipt XML")
    p.add_argument("--qr", help="a picture (photo, scan, PNG) of the receipt's QR code")
    p.add_argument("--text", help="the text the QR code holds")
    p.add_argument("--trust", "--root", dest="trust", action="append",
                   help="trusted root (PEM, repeatable; default documents.trust_roots for FILE)")
    p.add_argument("--certs", action="append", default=[],
                   help="QR: seal certificates and issuing CAs (PEM, untrusted)")
    p.add_argument("--xml", help="QR: the receipt's signed XML, to check it is the one the QR "
                   "names (FILE given with --qr means the same)")
    p.add_argument("--offline", action="store_true",
                   help="FILE: no network: certificate path and validity only, no revocation")
    p.add_argument("--at", help="FILE: validation time (ISO 8601 with offset; default now)")
    p.add_argument("--json", action="store_true", help="FILE: print the result as JSON")
    p.set_defaults(func=cmd_verify_any)
    p = receipts.add_parser("verifier-page", help="write the offline verification page (HTML)")
    p.add_argument("--root", action="append", required=True)
    p.add_argument("--certs", action="append", default=[])
    p.add_argument("-o", "--output", required=True)
    p.set_defaults(func=cmd_verifier_page)


def cmd_reconcile_report(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    import datetime as dt

    from payments.errors import PaymentsError
    from payments.money import local_date
    from payments.reconcile.papers import paper_pdf, paper_xlsx
    from server.cli_payments import _stores
    from server.payments.papers import paper_for

    now = dt.datetime.now(dt.UTC)
    try:
        last = dt.date.fromisoformat(args.to) if args.to else local_date(now)
        first = dt.date.fromisoformat(args.start) if args.start else last
    except ValueError:
        print("vnegov: --from and --to are dates (YYYY-MM-DD)", file=sys.stderr)
        return 2
    if first > last:
        print("vnegov: --from is after --to", file=sys.stderr)
        return 2
    module, db = _stores(args, environ)
    try:
        account = module.store.account(args.agency)
        paper = paper_for(db, account, module.organisations.get(args.agency), first_day=first,
                          last_day=last, now=now, place=args.place,
                          signers=(args.prepared_by, args.chief_accountant, args.head))
        out = Path(args.out_dir)
        out.mkdir(parents=True, exist_ok=True)
        stem = f"doi-soat-{account.account_number}-{first:%Y%m%d}-{last:%Y%m%d}" + (
            "-en" if args.lang == "en" else "")
        (out / f"{stem}.xlsx").write_bytes(paper_xlsx(paper, lang=args.lang))
        (out / f"{stem}.pdf").write_bytes(paper_pdf(paper, fonts=module.fonts(), lang=args.lang))
    except PaymentsError as exc:
        print(f"vnegov: {exc.message} ({exc.reason})", file=sys.stderr)
        return 1
    finally:
        db.dispose()
    print(f"wrote {out / stem}.xlsx and .pdf: opening {paper.opening_balance}, "
          f"closing {paper.closing_balance}, {len(paper.exceptions)} exception(s)")
    return 0


def register_reconcile_report(sub: Any) -> None:
    """``vnegov reconcile-report``: the finance unit's papers (XLSX and PDF)."""
    p = sub.add_parser("reconcile-report",
                       help="reconciliation papers of a collection account (XLSX and PDF)")
    p.add_argument("--agency", required=True, help="the collecting agency's code")
    p.add_argument("--from", dest="start", default="", help="first day (default: --to)")
    p.add_argument("--to", default="", help="last day, Vietnam calendar (default: today)")
    p.add_argument("--lang", choices=["vi", "en"], default="vi")
    p.add_argument("--out-dir", required=True)
    p.add_argument("--place", default="", help="place in the date line (e.g. TP. Hồ Chí Minh)")
    p.add_argument("--prepared-by", default="", help="Người lập biểu")
    p.add_argument("--chief-accountant", default="", help="Kế toán trưởng")
    p.add_argument("--head", default="", help="Thủ trưởng đơn vị")
    p.set_defaults(func=cmd_reconcile_report)
