"""``vnegov sign``, ``vnegov verify`` and ``vnegov documents``: signing and verifying documents from
the command line, and managing officials' remote-signing credentials.

    vnegov sign decision.pdf --key official.key.pem --cert official-chain.pem \\
        --level B-LTA --tsa http://127.0.0.1:8080/tsa --trust root.pem \\
        --title "CHỦ TỊCH" --name "Nguyễn Văn An" --signature-png an.png --box 330,150,530,290
    vnegov sign decision-signed.pdf --signer ubnd-hcm --seal-png seal.png --seal-mm 36 \\
        --person-box 330,150,530,290 --signature-size 600x240
    vnegov sign hoso.zip --format cms --key ... --cert ...       # writes hoso.zip.p7s
    vnegov verify decision-signed.pdf --trust root.pem [--json | --etsi]
    vnegov verify hoso.zip --signature hoso.zip.p7s --trust root.pem
    vnegov verify decision-signed.pdf --trust root.pem --at 2031-01-01T00:00Z
    vnegov verify decision-signed.pdf --signed-revision 1 -o as-signed.pdf
    vnegov ltv extend archive/2026/*.pdf --tsa http://127.0.0.1:8080/tsa --trust root.pem
    vnegov ltv status archive/ --within 90          # exit 1 when some need renewal
    vnegov documents credential-add --credential-id ... --owner ... --agency-code ... \\
        --key-label ... --cert-file chain.pem
    vnegov documents totp --owner 079084000123          # prints the otpauth:// URI once
    vnegov documents credential-link --credential-id ... # approvals by the owner's app account

Settings not given on the command line come from the ``[documents]`` section of the
configuration (TSA, trust anchors, font, the agencies' signers). ``verify`` exits 0 only when
every signature is TOTAL-PASSED.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

if TYPE_CHECKING:
    from signing.sign.expected import ExpectedSigner

__all__ = ["register"]

LEVELS = ["B-B", "B-T", "B-LT", "B-LTA"]


def _box(text: str) -> tuple[float, float, float, float]:
    parts = [float(p) for p in text.split(",")]
    if len(parts) != 4:
        raise argparse.ArgumentTypeError("a box is x1,y1,x2,y2 in points")
    return (parts[0], parts[1], parts[2], parts[3])


def _size(text: str) -> tuple[int, int]:
    w, _, h = text.partition("x")
    return int(w), int(h)


def _documents_config(args: argparse.Namespace, environ: Mapping[str, str]) -> Any:
    from server.cli import load_config_for
    from server.config import ConfigError
    from server.documents.config import DocumentsConfig

    try:
        config = load_config_for(args, environ)
    except ConfigError:
        if args.config or environ.get("VNEGOV_CONFIG"):
            raise
        return DocumentsConfig()  # no data directory: command-line settings only
    return DocumentsConfig.from_config(config.extensions.get("documents", {}),
                                       base_dir=Path(config.data_dir or "."))


def _runtime(args: argparse.Namespace, environ: Mapping[str, str]) -> Any:
    import dataclasses

    from server.documents.runtime import DocumentsRuntime

    config = _documents_config(args, environ)
    changes: dict[str, Any] = {}
    if getattr(args, "tsa", None):
        changes["tsa_url"] = args.tsa
    if getattr(args, "trust", None):
        changes["trust_roots"] = tuple(str(Path(p).resolve()) for p in args.trust)
    if getattr(args, "offline", False):
        changes["allow_fetching"] = False
    if getattr(args, "font", None):
        changes["font_file"] = str(Path(args.font).resolve())
    if getattr(args, "key", None):  # a key given here replaces the configured signers
        changes["signers"] = ()
        changes["token_module"] = ""
    return DocumentsRuntime.build(dataclasses.replace(config, **changes))


def _signer(args: argparse.Namespace, runtime: Any) -> Any:
    from signing.ca.keys import load_private_key
    from signing.sign.signers import KeySigner

    if args.key:
        if not args.cert:
            raise SystemExit("vnegov sign: --key needs --cert (the certificate chain, PEM)")
        passphrase = Path(args.key_passphrase_file).read_bytes().strip() \
            if args.key_passphrase_file else None
        key = load_private_key(Path(args.key).read_bytes(), passphrase)
        if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
            raise SystemExit("vnegov sign: only RSA and ECDSA keys are supported")
        chain = x509.load_pem_x509_certificates(Path(args.cert).read_bytes())
        return KeySigner(key, chain[0], chain[1:])
    if args.signer:
        found = runtime.signers.get(args.signer)
        if found is None:
            raise SystemExit(f"vnegov sign: no signer named {args.signer!r} in [documents]")
        return found.signer
    raise SystemExit("vnegov sign: give --key and --cert, or --signer NAME")


def _appearance(args: argparse.Namespace, runtime: Any, at: dt.datetime, document: Any) -> Any:
    from signing.stamp import (
        agency_seal,
        electronic_copy,
        page_box,
        person_layout,
        person_signature,
        seal_box,
    )

    if args.signature_png:
        if not (args.title and args.name and args.box):
            raise SystemExit("vnegov sign: --signature-png needs --title, --name and --box")
        return person_signature(page=args.page, box=args.box, title=args.title,
                                full_name=args.name, image_png=Path(args.signature_png).read_bytes(),
                                font=runtime.font)
    if args.seal_png:
        if not (args.person_box and args.signature_size):
            raise SystemExit("vnegov sign: --seal-png needs --person-box and --signature-size")
        plan = person_layout(args.person_box, args.signature_size)
        return agency_seal(page=args.page, box=seal_box(plan, args.seal_mm),
                           seal_png=Path(args.seal_png).read_bytes())
    if args.copy_of:  # top right of page 1, whatever its size
        _, _, right, top = page_box(document, 0)
        return electronic_copy(page_width=right, page_height=top, copying_body=args.copy_of,
                               at=at, font=runtime.font)
    return None


def _quiet() -> None:
    # pyHanko logs every validation problem with a traceback; the report says it better.
    import logging

    for name in ("pyhanko", "pyhanko_certvalidator", "fontTools"):
        logging.getLogger(name).setLevel(logging.CRITICAL)


def cmd_sign(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    from signing.errors import SigningError
    from signing.sign.cms import CadesLevel, sign_detached
    from signing.sign.pades import DocMdp, PadesLevel, PadesOptions, sign_pdf
    from signing.sign.xmldsig import XmlDsigSigner

    _quiet()
    runtime = _runtime(args, environ)
    try:
        signer = _signer(args, runtime)
        at = dt.datetime.now(dt.UTC)
        source = Path(args.file)
        fmt = args.format or {".pdf": "pdf", ".xml": "xml"}.get(source.suffix.lower(), "cms")
        if fmt == "pdf":
            out = Path(args.out or source.with_name(source.stem + "-signed.pdf"))
            # Written beside the target and renamed when complete: a refused signature leaves
            # no empty or partial file, and --out may name the input itself.
            part = out.with_name(out.name + ".part")
            try:
                with source.open("rb") as src, part.open("w+b") as dst:
                    profile = runtime.signers.get(args.signer) if args.signer else None
                    result = sign_pdf(src, dst, signer, at=at, options=PadesOptions(
                        level=PadesLevel(args.level), reason=args.reason,
                        certify=DocMdp(args.certify) if args.certify else None,
                        certify_if_first=DocMdp(profile.certify_first)
                        if profile is not None and profile.certify_first else None,
                        lock_fields=not args.no_lock_fields,
                        location=args.location, appearance=_appearance(args, runtime, at, src)),
                        timestamps=runtime.tsa, trust=runtime.trust)
                part.replace(out)
            finally:
                part.unlink(missing_ok=True)
            for warning in result.warnings:
                print(f"warning: {warning}", file=sys.stderr)
            print(f"signed {out} ({result.level}, field {result.field_name})")
        elif fmt == "cms":
            if args.level not in ("B-B", "B-T"):
                raise SystemExit("vnegov sign: detached CMS signatures are B-B or B-T")
            out = Path(args.out or str(source) + ".p7s")
            with source.open("rb") as src:
                p7s = sign_detached(src, signer, at=at, level=CadesLevel(args.level),
                                    timestamps=runtime.tsa)
            out.write_bytes(p7s)
            print(f"signed {out} (detached CAdES {args.level})")
        else:
            key = getattr(signer, "key", None)
            if key is None:
                raise SystemExit("vnegov sign: XML signing needs a key (--key or a file signer)")
            out = Path(args.out or source.with_name(source.stem + "-signed.xml"))
            out.write_bytes(XmlDsigSigner(key, [signer.certificate, *signer.chain]).sign_xml(
                source.read_bytes(), signing_time=at, reference_id=args.reference_id,
                signature_id=args.signature_id, signature_parent=args.signature_parent))
            print(f"signed {out} (XMLDSig)")
    except SigningError as exc:
        print(f"vnegov sign: {exc.message} [{exc.reason}]"
              + "".join(f" {k}={v}" for k, v in exc.metadata.items()), file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"vnegov sign: {exc.filename or args.file}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    finally:
        runtime.close()
    return 0


def _expected_signer(args: argparse.Namespace) -> ExpectedSigner | None:
    from signing.sign.expected import ExpectedSigner  # noqa: F811 - imported when used

    if not (args.expect_agency or args.expect_tax_code):
        return None
    return ExpectedSigner(agency_code=args.expect_agency, tax_code=args.expect_tax_code)


def cmd_verify(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    from signing.errors import SigningError
    from signing.validate import Indication, validate_cms, validate_pdf, validate_xml

    _quiet()
    runtime = _runtime(args, environ)
    if args.signed_revision is not None:  # extraction needs no trust anchors
        return _signed_revision(args, Path(args.file), runtime)
    if not runtime.trust.trust_roots:
        print("vnegov verify: no trust anchors (--trust root.pem or documents.trust_roots)",
              file=sys.stderr)
        return 2
    at = args.at or dt.datetime.now(dt.UTC)
    source = Path(args.file)
    try:
        if args.signature:
            with source.open("rb") as content:
                report = validate_cms(Path(args.signature).read_bytes(), content,
                                      trust=runtime.trust, at=at)
        elif source.suffix.lower() == ".xml" or args.format == "xml":
            report = validate_xml(source.read_bytes(), trust=runtime.trust, at=at,
                                  expected_signer=_expected_signer(args))
            if args.signed_data:  # what applications read: the canonical signed data
                signed = [s.signed_data for s in report.signatures if s.signed_data is not None]
                Path(args.signed_data).write_bytes(b"\n".join(signed))
        else:
            with source.open("rb") as content:
                report = validate_pdf(content, trust=runtime.trust, at=at)
    except SigningError as exc:
        print(f"vnegov verify: {exc.message} [{exc.reason}]", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"vnegov verify: {exc.filename or args.file}: {exc.strerror or exc}",
              file=sys.stderr)
        return 2
    finally:
        runtime.close()
    if args.json:
        print(report.to_json())
    elif args.etsi:
        print("\n".join(report.etsi_xml_reports) or "(no ETSI report for this format)")
    else:
        print(report.to_text(), end="")
    return 0 if report.indication is Indication.TOTAL_PASSED else 1


def _refuse(command: str, message: str, reason: str) -> int:
    print(f"vnegov: documents {command}: {message} [{reason}]", file=sys.stderr)
    return 2


def _token_of(config: Any, command: str) -> Any:
    """(token, documents config) of the data directory, or an exit code after saying why not."""
    from server.documents.config import DocumentsConfig
    from server.documents.runtime import DocumentsSetupError, open_token
    from signing.errors import SigningError

    docs = DocumentsConfig.from_config(config.extensions.get("documents", {}),
                                       base_dir=Path(config.data_dir or "."))
    try:
        token = open_token(docs)
    except (DocumentsSetupError, SigningError) as exc:
        return _refuse(command, f"the token cannot be opened: {exc}", "TOKEN_UNAVAILABLE")
    if token is None:
        return _refuse(command, "no token is configured (documents.token_module): officials' "
                       "keys for remote signing live in a PKCS#11 token", "TOKEN_NOT_CONFIGURED")
    return token


def _signed_revision(args: argparse.Namespace, source: Path, runtime: Any) -> int:
    from signing.errors import SigningError
    from signing.validate.changes import extract_signed_revision

    runtime.close()
    if not args.out:
        print("vnegov verify: --signed-revision needs -o FILE", file=sys.stderr)
        return 2
    out = Path(args.out)
    part = out.with_name(out.name + ".part")
    try:
        with source.open("rb") as src, part.open("wb") as dst:
            name = extract_signed_revision(src, dst, args.signed_revision)
        part.replace(out)
    except SigningError as exc:
        print(f"vnegov verify: {exc.message} [{exc.reason}]", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"vnegov verify: {exc.filename or args.file}: {exc.strerror or exc}",
              file=sys.stderr)
        return 2
    finally:
        part.unlink(missing_ok=True)
    print(f"wrote {out}: the document as signature {args.signed_revision} ({name}) signed it")
    return 0


def _instant(text: str) -> dt.datetime:
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError("an ISO 8601 date or time, e.g. 2030-01-31T00:00Z") \
            from exc
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


def _days(text: str) -> dt.timedelta:
    try:
        days = int(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError("a whole number of days") from exc
    if not 0 <= days <= 36500:
        raise argparse.ArgumentTypeError("between 0 and 36500 days")
    return dt.timedelta(days=days)


def cmd_ltv_extend(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    """Archive renewal: fresh validation data and a document time-stamp for each FILE, written
    in place (through a temporary file renamed when complete) or into --out-dir."""
    from signing.errors import SigningError
    from signing.sign.ltv import extend_ltv

    _quiet()
    runtime = _runtime(args, environ)
    if runtime.tsa is None:
        runtime.close()
        print("vnegov ltv extend: no time-stamping authority (--tsa URL or documents.tsa_url)",
              file=sys.stderr)
        return 2
    failed = 0
    try:
        for name in args.files:
            source = Path(name)
            out = Path(args.out_dir) / source.name if args.out_dir else source
            part = out.with_name(out.name + ".part")
            try:
                with source.open("rb") as src, part.open("w+b") as dst:
                    done = extend_ltv(src, dst, timestamps=runtime.tsa, trust=runtime.trust,
                                      at=dt.datetime.now(dt.UTC))
                part.replace(out)
                print(f"extended {out}: time-stamp {done.timestamp_time.isoformat()}, "
                      f"valid until {done.valid_until.date().isoformat()}")
            except SigningError as exc:
                failed += 1
                print(f"vnegov ltv extend: {name}: {exc.message} [{exc.reason}]",
                      file=sys.stderr)
            except OSError as exc:
                failed += 1
                print(f"vnegov ltv extend: {exc.filename or name}: {exc.strerror or exc}",
                      file=sys.stderr)
            finally:
                part.unlink(missing_ok=True)
    finally:
        runtime.close()
    return 1 if failed else 0


def cmd_ltv_status(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    """List the PDFs under DIR whose newest time-stamp stops proving anything within the
    window (exit status 1 when there are some: a cron job can mail them), with a progress bar
    on standard error."""
    import json

    from tqdm import tqdm

    from signing.errors import SigningError
    from signing.sign.ltv import archive_status

    _quiet()
    root = Path(args.directory)
    if not root.is_dir():
        print(f"vnegov ltv status: {root}: not a directory", file=sys.stderr)
        return 2
    at = args.at or dt.datetime.now(dt.UTC)
    paths = sorted(p for p in root.rglob("*") if p.suffix.lower() == ".pdf" and p.is_file())
    due: list[dict[str, str | None]] = []
    for path in tqdm(paths, unit="file", desc="checking", file=sys.stderr,
                     disable=args.quiet):
        try:
            with path.open("rb") as f:
                status = archive_status(f)
        except (SigningError, OSError) as exc:
            due.append({"file": str(path), "state": "unreadable", "expires": None,
                        "reason": getattr(exc, "message", None) or str(exc)})
            continue
        if status.signatures == 0 and status.document_timestamps == 0:
            continue
        if status.expires is None:
            due.append({"file": str(path), "state": "no-timestamp", "expires": None,
                        "reason": "no time-stamp: B-B signatures cannot be renewed"})
        elif status.expires_within(args.within, at):
            due.append({"file": str(path), "state": "expired" if status.expires <= at
                        else "expiring", "expires": status.expires.isoformat(),
                        "reason": None})
    if args.json:
        print(json.dumps({"checked": len(paths), "due": due}, ensure_ascii=False, indent=2))
    else:
        for item in due:
            print(f"{item['state']:<13} {item['expires'] or '-':<26} {item['file']}")
        print(f"{len(due)} of {len(paths)} file(s) need attention within "
              f"{args.within.days} day(s)", file=sys.stderr)
    return 1 if due else 0


def cmd_credential_add(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    """Register a token key and its certificate as an official's credential, after checking that
    the configured token holds that key and that it is the certificate's."""
    from server.cli import load_config_for
    from server.documents.stores import add_credential
    from server.storage.db import Database
    from signing.errors import SigningError
    from signing.sign.remote import SigningCredential
    from signing.sign.signers import TokenSigner

    config = load_config_for(args, environ)
    try:
        chain = tuple(x509.load_pem_x509_certificates(Path(args.cert_file).read_bytes()))
    except OSError as exc:
        return _refuse("credential-add", f"cannot read {args.cert_file}: {exc.strerror}",
                       "FILE_UNREADABLE")
    except ValueError:
        return _refuse("credential-add", f"{args.cert_file} holds no PEM certificate",
                       "BAD_CERTIFICATE")
    token = _token_of(config, "credential-add")
    if isinstance(token, int):
        return token
    try:
        TokenSigner(token, args.key_label, chain[0], chain[1:])
    except SigningError as exc:
        return _refuse("credential-add", str(exc), exc.reason)
    finally:
        token.close()
    db = Database(config.storage.url)
    try:
        add_credential(db, SigningCredential(args.credential_id, args.owner, args.key_label,
                                             chain, description=args.description or "",
                                             identity_account=args.identity_account or ""),
                       args.agency_code, at=dt.datetime.now(dt.UTC), actor="cli")
    finally:
        db.dispose()
    print(f"credential {args.credential_id} added for {args.owner}")
    return 0


def cmd_key_generate(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    """Generate an official's key in the configured token (never leaving it) and, with
    --cert-out, certify it with the development CA of the data directory (demo only)."""
    from server.cli import load_config_for
    from server.devpki import DevPki, issue_dev_certificate
    from signing.ca import KeyAlgorithm, SubjectData
    from signing.errors import SigningError

    config = load_config_for(args, environ)
    token = _token_of(config, "key-generate")
    if isinstance(token, int):
        return token
    try:
        key = token.generate_key(args.label, KeyAlgorithm(args.algorithm))
    except SigningError as exc:
        return _refuse("key-generate", str(exc), exc.reason)
    finally:
        token.close()
    print(f"generated {args.algorithm} key {args.label!r} in the token")
    if args.cert_out:
        pki = DevPki(Path(config.pki.directory), Path(config.pki.key_passphrase_file))
        if not (pki.directory / "issuing-ca.key.pem").exists():
            return _refuse("key-generate", f"no development CA in {pki.directory}: have the "
                           "key certified by the CA (it is in the token, label above)",
                           "NO_DEVELOPMENT_CA")
        chain = issue_dev_certificate(pki, config.server.public_url, "individual", SubjectData(
            full_name=args.name, title=args.title or "", unit=args.unit,
            parent_body=args.parent_body, agency_code=args.agency_code,
            personal_id=args.owner), key.public_key())
        Path(args.cert_out).write_bytes(b"".join(
            c.public_bytes(serialization.Encoding.PEM) for c in chain))
        print(f"certificate for {args.name} (development CA) written to {args.cert_out}")
    return 0


def cmd_credential_link(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    """Link a credential to its owner's identity account (by default the account whose personal
    ID number is the credential's owner): that account's app approvals then authorise it."""
    from sqlalchemy import select

    from server.cli import load_config_for
    from server.documents.stores import link_identity_account
    from server.storage.db import Database
    from server.storage.documents import SigningCredentialRow
    from server.storage.identity import AccountRow
    from signing.errors import SigningError

    config = load_config_for(args, environ)
    db = Database(config.storage.url)
    try:
        account_id = args.identity_account
        if not account_id:
            with db.read() as s:
                owner = s.execute(select(SigningCredentialRow.owner).where(
                    SigningCredentialRow.credential_id == args.credential_id)).scalar()
                account_id = s.execute(select(AccountRow.account_id).where(
                    AccountRow.identifier == owner)).scalar() if owner else None
            if not account_id:
                print(f"vnegov documents: no identity account for the owner of "
                      f"{args.credential_id}", file=sys.stderr)
                return 2
        try:
            link_identity_account(db, args.credential_id, account_id,
                                  at=dt.datetime.now(dt.UTC), actor="cli")
        except SigningError as exc:
            print(f"vnegov documents: {exc.message} [{exc.reason}]", file=sys.stderr)
            return 2
    finally:
        db.dispose()
    print(f"credential {args.credential_id} linked to identity account {account_id}")
    return 0


def cmd_totp(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    import pyotp

    from server.cli import load_config_for
    from server.documents.stores import set_totp_secret
    from server.sealing import secret_box
    from server.storage.db import Database

    config = load_config_for(args, environ)
    secret = pyotp.random_base32()
    db = Database(config.storage.url)
    try:
        set_totp_secret(db, args.owner, secret, at=dt.datetime.now(dt.UTC), actor="cli",
                        box=secret_box(config))
    finally:
        db.dispose()
    uri = pyotp.TOTP(secret).provisioning_uri(name=args.owner, issuer_name="vnegov ký số")
    print("Scan this into the official's authenticator app (shown once):")
    print(uri)
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser("sign", help="sign a PDF (PAdES), an XML document, or any file (CMS)")
    p.add_argument("file")
    p.add_argument("--format", choices=["pdf", "cms", "xml"])
    p.add_argument("--out")
    p.add_argument("--level", choices=LEVELS, default="B-B")
    p.add_argument("--key", help="private key file (PEM/DER, PKCS#8)")
    p.add_argument("--key-passphrase-file")
    p.add_argument("--cert", help="certificate chain, PEM, signer first")
    p.add_argument("--signer", help="name of a signer configured in [documents]")
    p.add_argument("--tsa", help="RFC 3161 time-stamping URL")
    p.add_argument("--trust", action="append", help="trust anchor PEM (repeatable)")
    p.add_argument("--offline", action="store_true", help="use no online revocation sources")
    p.add_argument("--font")
    p.add_argument("--reason")
    p.add_argument("--location")
    p.add_argument("--page", type=int, default=0)
    p.add_argument("--title", action="append",
                   help="the signer's title; repeat for each line of an authority form "
                        "(--title 'KT. CHỦ TỊCH' --title 'PHÓ CHỦ TỊCH'), at most three")
    p.add_argument("--name")
    p.add_argument("--signature-png")
    p.add_argument("--box", type=_box)
    p.add_argument("--seal-png")
    p.add_argument("--seal-mm", type=float, default=36)
    p.add_argument("--person-box", type=_box)
    p.add_argument("--signature-size", type=_size, help="pixel size of the signature image, WxH")
    p.add_argument("--copy-of", help="sign as an electronic copy made by this body")
    p.add_argument("--certify", type=int, choices=[1, 2, 3], nargs="?", const=2,
                   help="certify (first signature only): DocMDP P, 2 by default (form filling "
                        "and signing allowed); 1 forbids even LTV maintenance")
    p.add_argument("--no-lock-fields", action="store_true",
                   help="leave the existing form fields fillable after this signature")
    p.add_argument("--reference-id")
    p.add_argument("--signature-id", default="signature")
    p.add_argument("--signature-parent", default="")
    p.set_defaults(func=cmd_sign)

    p = sub.add_parser("verify", help="verify the signatures of a PDF, XML or CMS-signed file")
    p.add_argument("file")
    p.add_argument("--signature", help="detached .p7s for FILE")
    p.add_argument("--format", choices=["pdf", "cms", "xml"])
    p.add_argument("--trust", action="append", help="trust anchor PEM (repeatable)")
    p.add_argument("--offline", action="store_true", help="use embedded revocation data only")
    p.add_argument("--expect-agency", metavar="CODE",
                   help="XML: fail unless signed by this agency code (SIGNER_NOT_EXPECTED)")
    p.add_argument("--expect-tax-code", metavar="MST",
                   help="XML: fail unless signed by this tax code (SIGNER_NOT_EXPECTED)")
    p.add_argument("--signed-data", metavar="FILE",
                   help="XML: write the canonical signed data (what to read) to FILE")
    p.add_argument("--at", type=_instant,
                   help="validation time (ISO 8601; default now): long-term validation at a "
                        "later date, from the document's own validation data")
    p.add_argument("--signed-revision", type=int, metavar="N",
                   help="write the document as signature N signed it (with -o)")
    p.add_argument("-o", "--out", help="output file for --signed-revision")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--json", action="store_true")
    group.add_argument("--etsi", action="store_true", help="ETSI TS 119 102-2 XML report")
    p.set_defaults(func=cmd_verify)

    ltv = sub.add_parser("ltv", help="long-term validation data of signed PDFs (archives)")
    lsub = ltv.add_subparsers(dest="ltv_command", required=True)
    p = lsub.add_parser("extend", help="renew: fresh validation data and a document "
                                       "time-stamp (in place, or into --out-dir)")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--out-dir")
    p.add_argument("--tsa", help="RFC 3161 time-stamping URL")
    p.add_argument("--trust", action="append", help="trust anchor PEM (repeatable)")
    p.add_argument("--offline", action="store_true", help="use no online revocation sources")
    p.set_defaults(func=cmd_ltv_extend)
    p = lsub.add_parser("status", help="list PDFs whose last time-stamp expires soon")
    p.add_argument("directory", metavar="DIR")
    p.add_argument("--within", type=_days, default=dt.timedelta(days=90), metavar="DAYS",
                   help="window in days (default 90)")
    p.add_argument("--at", type=_instant, help="as of this time (default now)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_ltv_status)

    documents = sub.add_parser("documents", help="remote-signing credentials")
    dsub = documents.add_subparsers(dest="documents_command", required=True)
    p = dsub.add_parser("credential-add", help="register a token key as an official's credential")
    p.add_argument("--credential-id", required=True)
    p.add_argument("--owner", required=True, help="the official (personal ID number)")
    p.add_argument("--agency-code", required=True)
    p.add_argument("--key-label", required=True)
    p.add_argument("--cert-file", required=True)
    p.add_argument("--description")
    p.add_argument("--identity-account",
                   help="the owner's identity account id (approvals in the app)")
    p.set_defaults(func=cmd_credential_add)
    p = dsub.add_parser("credential-link",
                        help="let the owner's approvals in the citizen app authorise a credential")
    p.add_argument("--credential-id", required=True)
    p.add_argument("--identity-account",
                   help="account id; default: the account of the credential owner's ID number")
    p.set_defaults(func=cmd_credential_link)
    p = dsub.add_parser("key-generate", help="generate an official's key in the token (and, "
                        "on the demo, certify it with the development CA)")
    p.add_argument("--label", required=True, help="the key's label in the token")
    p.add_argument("--algorithm", default="ec-p256", choices=["ec-p256", "ec-p384", "rsa-3072"],
                   help="key algorithm (default ec-p256)")
    p.add_argument("--cert-out", help="certify with the development CA and write the chain here")
    p.add_argument("--owner", default="", help="the official's personal ID number (with --cert-out)")
    p.add_argument("--name", default="", help="the official's full name (with --cert-out)")
    p.add_argument("--title", help="the official's title (with --cert-out)")
    p.add_argument("--unit", default="Văn phòng", help="the official's unit (with --cert-out)")
    p.add_argument("--parent-body", default="UBND Thành phố Hồ Chí Minh",
                   help="the parent body (with --cert-out)")
    p.add_argument("--agency-code", default="000.00.00.H29", help="agency code (with --cert-out)")
    p.set_defaults(func=cmd_key_generate)

    p = dsub.add_parser("totp", help="give an official a new TOTP secret")
    p.add_argument("--owner", required=True)
    p.set_defaults(func=cmd_totp)
