"""``vnegov receipts verify FILE``: verify a signed e-receipt (XML) as anyone holding it can.

    vnegov receipts verify receipt.xml [--trust root.pem]... [--offline] [--at ISO] [--json]

Checks (``payments.receipts.verification.verify_receipt``): the signature, that nothing outside
what is signed imitates it, that the seal belongs to the collecting body the receipt names (its
agency code or tax code), and the seal's certificate against the trust anchors (``--trust``, else
``documents.trust_roots`` of the configuration) with revocation, or with ``--offline`` path and
validity only. Everything printed is read from the signed data. Exit status: 0 verified, 1 not
verified (the reason is printed), 2 the command could not run (no file, no trust anchors).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from server.cli.kit import EXIT_USAGE, CliError

__all__ = ["cmd_receipts_verify"]


def _say(args: argparse.Namespace, data: dict[str, Any], text: str) -> None:
    if args.json:
        print(json.dumps(data, ensure_ascii=False, indent=2, sort_keys=True))
    else:
        print(text)


def cmd_receipts_verify(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    from payments.errors import PaymentsError
    from payments.money import format_vnd
    from payments.receipts.verification import ReceiptNotVerified, verify_receipt
    from server.cli.documents import _runtime
    from signing.errors import SigningError

    if not args.file:
        raise CliError("name the signed receipt file", "USAGE")
    try:
        at = dt.datetime.fromisoformat(args.at) if args.at else None
    except ValueError:
        at = None
    if args.at and (at is None or at.tzinfo is None):
        raise CliError("--at must be ISO 8601 with an offset", "USAGE")
    data = Path(args.file).read_bytes()
    try:
        runtime = _runtime(args, environ)
    except SigningError as exc:
        raise CliError(exc.message, exc.reason, EXIT_USAGE) from None
    try:
        roots = list(runtime.trust.trust_roots)
        if not roots:
            raise CliError("no trust anchors (--trust root.pem or documents.trust_roots)",
                           "NO_TRUST_ANCHORS")
        verified = verify_receipt(data, trust=roots if args.offline else runtime.trust, at=at)
    except ReceiptNotVerified as exc:
        if exc.reason == "NOT_A_RECEIPT" and "well-formed" in exc.message:
            raise CliError(exc.message, exc.reason, EXIT_USAGE) from None  # not even XML
        _say(args, {"verified": False, "reason": exc.reason, "message": exc.message,
                    **exc.metadata},
             f"NOT VERIFIED [{exc.reason}]: {exc.message}")
        return 1
    except PaymentsError as exc:
        raise CliError(exc.message, exc.reason, EXIT_USAGE) from None
    finally:
        runtime.close()
    r = verified.receipt
    number = f"{r.template} {r.series} {r.number:07d}"
    lines = [f"VERIFIED: receipt {number}",
             f"  Collecting body: {r.collector.name} (agency code {r.collector.agency_code}, "
             f"tax code {r.collector.tax_code})",
             f"  Payer: {r.payer.name}"]
    lines += [f"  {line.name}: {format_vnd(line.amount)}" for line in r.lines]
    lines += [f"  Total: {format_vnd(r.total)}",
              f"  Sealed by: {verified.signer_subject}",
              f"  Signed data: {verified.signed_path} (SHA-256 {verified.signed_sha256})",
              f"  Document SHA-256: {verified.document_sha256}"]
    _say(args, {
        "verified": True, "template": r.template, "series": r.series, "number": r.number,
        "collector": {"name": r.collector.name, "agency_code": r.collector.agency_code,
                      "tax_code": r.collector.tax_code},
        "payer": r.payer.name, "total": r.total,
        "lines": [{"name": line.name, "amount": line.amount} for line in r.lines],
        "signer_subject": verified.signer_subject,
        "signer_agency_code": verified.signer_agency_code,
        "signer_tax_codes": list(verified.signer_tax_codes),
        "signed_path": verified.signed_path, "signed_sha256": verified.signed_sha256,
        "document_sha256": verified.document_sha256,
        "validation_time": verified.validation_time.isoformat(),
    }, "\n".join(lines))
    return 0
