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
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click

from server.cli.kit import (
    EXIT_REFUSED,
    Arg,
    CliError,
    VnegovCommand,
    emit,
    handler,
    json_option,
)

__all__ = ["reconcile_report", "verifier_page", "verify_command"]


def _certs(paths: list[str]) -> list[Any]:
    from cryptography import x509

    out: list[x509.Certificate] = []
    for name in paths:
        out.extend(x509.load_pem_x509_certificates(Path(name).read_bytes()))
    return out


def _decode_picture(path: str) -> str | None:
    """The text of the QR code in the picture; None when the picture holds none (a file that is
    not a picture at all is an input error)."""
    import zxingcpp
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as opened:
            opened.load()
            image = opened.copy()
    except (OSError, UnidentifiedImageError):
        raise CliError(f"{path} is not a picture (PNG, JPEG, ...)", "MALFORMED_INPUT") \
            from None
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
    except ValueError as exc:
        raise CliError(f"cannot read certificates: {exc}", "BAD_CERTIFICATE") from None
    if args.qr:
        text = _decode_picture(args.qr)
        if text is None:
            raise CliError(f"no QR code found in {args.qr}", "NO_QR_CODE", EXIT_REFUSED)
    else:
        text = args.text
    try:
        verified = verify_qr(text, roots=roots, certificates=certificates)
    except ReceiptQrInvalid as exc:
        raise CliError(f"INVALID: {exc.message} ({exc.detail})", exc.reason,
                       EXIT_REFUSED) from None
    c = verified.claims
    if args.xml:
        if hashlib.sha256(Path(args.xml).read_bytes()).digest() != c.xml_sha256:
            raise CliError("INVALID: the XML file is not the receipt the QR names (SHA-256 "
                           "differs)", "XML_NOT_THE_RECEIPT", EXIT_REFUSED)
    emit(args, {"valid": True, "label": c.label, "issued_at": c.issued_at.isoformat(),
                "agency_code": c.agency_code, "tax_code": c.tax_code, "payer": c.payer_ref,
                "total": c.total, "xml_sha256": c.xml_sha256_hex,
                "xml_matches": bool(args.xml), "seal_subject": verified.seal_subject,
                "algorithm": verified.algorithm,
                "chain": [x.subject.rfc4514_string() for x in verified.chain]}, "\n".join([
        f"VALID receipt {c.label}, issued {c.issued_at:%Y-%m-%d %H:%M:%S} (GMT+7)",
        f"  collecting body {c.agency_code}, tax code {c.tax_code}",
        f"  payer {c.payer_ref or '-'}, total {format_vnd(c.total)}",
        f"  signed XML SHA-256 {c.xml_sha256_hex}" + (" (matches --xml)" if args.xml else ""),
        f"  sealed by {verified.seal_subject} ({verified.algorithm})",
        "  chain " + " <- ".join(x.subject.rfc4514_string() for x in verified.chain),
        "  (cancellation or replacement is visible only in the online lookup)"]))
    return 0


def cmd_verify_any(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    """One ``receipts verify``: the QR route when --qr/--text is given, else the signed XML."""
    if args.qr and args.text:
        raise CliError("give --qr or --text, not both", "USAGE")
    if args.qr or args.text:
        if not args.trust:
            raise CliError("--trust (or --root) names the trusted root for a QR check", "USAGE")
        args.root = args.trust
        args.xml = args.xml or args.file
        return cmd_verify(args, environ)
    from server.cli.receipts_verify import cmd_receipts_verify

    if not args.file:
        raise CliError("name the signed receipt FILE, or give --qr or --text", "USAGE")
    args.json = args.json_output
    return cmd_receipts_verify(args, environ)


def cmd_verifier_page(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    from payments.receipts.qr_page import verifier_page

    try:
        roots, certificates = _certs(args.root), _certs(args.certs)
    except ValueError as exc:
        raise CliError(f"cannot read certificates: {exc}", "BAD_CERTIFICATE") from None
    Path(args.output).write_bytes(verifier_page(roots, certificates))
    emit(args, {"output": args.output, "roots": len(roots), "certificates": len(certificates)},
         f"wrote {args.output} ({len(roots)} root(s), {len(certificates)} certificate(s))")
    return 0


PEM = click.Path(exists=True, dir_okay=False)


@click.command("verify", cls=VnegovCommand)
@click.argument("file", required=False, type=PEM, cls=Arg,
                help="the signed receipt XML (with --qr: the XML the QR must name)")
@click.option("--qr", type=PEM, help="a picture (photo, scan, PNG) of the receipt's QR code")
@click.option("--text", help="the text the QR code holds")
@click.option("--trust", "--root", "trust", multiple=True, type=PEM,
              help="trusted root (PEM, repeatable; default documents.trust_roots for FILE)")
@click.option("--certs", multiple=True, type=PEM,
              help="QR: seal certificates and issuing CAs (PEM, untrusted)")
@click.option("--xml", type=PEM, help="QR: the receipt's signed XML, to check it is the one "
              "the QR names (FILE given with --qr means the same)")
@click.option("--offline", is_flag=True,
              help="FILE: no network: certificate path and validity only, no revocation")
@click.option("--at", help="FILE: validation time (ISO 8601 with offset; default now)")
@json_option
@handler
def verify_command(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    """Verify a receipt offline: its signed XML (FILE: the signature, that the seal belongs to
    the collecting body, trust), or its signed QR code (--qr PICTURE or --text). Exit 0 valid,
    1 not valid (the reason is printed), 2 the command could not run."""
    args.trust = list(args.trust)
    args.certs = list(args.certs)
    return cmd_verify_any(args, environ)


@click.command("verifier-page", cls=VnegovCommand)
@click.option("--root", multiple=True, required=True, type=PEM,
              help="trusted root (PEM, repeatable): the national root")
@click.option("--certs", multiple=True, type=PEM,
              help="published seal certificates and issuing CAs (PEM, untrusted)")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="where to write the page (HTML)")
@json_option
@handler
def verifier_page(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    """Write the self-contained browser page that verifies receipt QR codes offline."""
    args.root = list(args.root)
    args.certs = list(args.certs)
    return cmd_verifier_page(args, environ)


def cmd_reconcile_report(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    import datetime as dt

    from payments.money import local_date
    from payments.reconcile.papers import paper_pdf, paper_xlsx
    from server.cli.payments import _stores
    from server.payments.papers import paper_for

    now = dt.datetime.now(dt.UTC)
    try:
        last = dt.date.fromisoformat(args.to) if args.to else local_date(now)
        first = dt.date.fromisoformat(args.start) if args.start else last
    except ValueError:
        raise CliError("--from and --to are dates (YYYY-MM-DD)", "USAGE") from None
    if first > last:
        raise CliError("--from is after --to", "USAGE")
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
    finally:
        db.dispose()
    emit(args, {"xlsx": f"{out / stem}.xlsx", "pdf": f"{out / stem}.pdf",
                "opening_balance": paper.opening_balance,
                "closing_balance": paper.closing_balance,
                "exceptions": len(paper.exceptions)},
         f"wrote {out / stem}.xlsx and .pdf: opening {paper.opening_balance}, "
         f"closing {paper.closing_balance}, {len(paper.exceptions)} exception(s)")
    return 0


@click.command("reconcile-report", cls=VnegovCommand)
@click.option("--agency", required=True, help="the collecting agency's code")
@click.option("--from", "start", default="", help="first day, YYYY-MM-DD (default: --to)")
@click.option("--to", default="", help="last day, Vietnam calendar, YYYY-MM-DD (default: today)")
@click.option("--lang", type=click.Choice(["vi", "en"]), default="vi", show_default=True,
              help="language of the papers")
@click.option("--out-dir", required=True, type=click.Path(file_okay=False),
              help="write the XLSX and PDF here")
@click.option("--place", default="", help="place in the date line (e.g. TP. Hồ Chí Minh)")
@click.option("--prepared-by", default="", help="Người lập biểu (who prepared the papers)")
@click.option("--chief-accountant", default="", help="Kế toán trưởng (the chief accountant)")
@click.option("--head", default="", help="Thủ trưởng đơn vị (the head of the unit)")
@json_option
@handler
def reconcile_report(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    """Reconciliation papers of a collection account (XLSX and PDF) for the finance unit."""
    return cmd_reconcile_report(args, environ)
