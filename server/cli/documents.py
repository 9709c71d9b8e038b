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
import io
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

if TYPE_CHECKING:
    from signing.sign.expected import ExpectedSigner

from server.cli.kit import (
    EXIT_REFUSED,
    EXIT_UNAVAILABLE,
    EXIT_USAGE,
    Arg,
    CliError,
    VnegovCommand,
    classify,
    emit,
    handler,
    json_option,
    progress,
)

__all__ = ["COMMANDS"]

LEVELS = ["B-B", "B-T", "B-LT", "B-LTA"]


def _box(text: str) -> tuple[float, float, float, float]:
    try:
        parts = [float(p) for p in text.split(",")]
    except ValueError:
        parts = []
    if len(parts) != 4:
        raise click.BadParameter(f"{text!r}: a box is x1,y1,x2,y2 in points")
    return (parts[0], parts[1], parts[2], parts[3])


def _size(text: str) -> tuple[int, int]:
    w, _, h = text.partition("x")
    if not (w.isdigit() and h.isdigit()):
        raise click.BadParameter(f"{text!r}: a size is WxH in pixels")
    return int(w), int(h)


class _Parsed(click.ParamType[Any]):
    def __init__(self, name: str, parse: Any) -> None:
        self.name = name
        self.parse = parse

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if not isinstance(value, str):
            return value
        try:
            return self.parse(value)
        except click.BadParameter as exc:
            self.fail(exc.message, param, ctx)


def _documents_config(args: argparse.Namespace, environ: Mapping[str, str]) -> Any:
    from server.cli.commands import load_config_for
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


def _runtime(args: argparse.Namespace, environ: Mapping[str, str], *, signing: bool = False
             ) -> Any:
    """The documents runtime for a command: ``signing`` commands get the configured signers
    and token; the others (verify, ltv, receipts verify) need no key and never open the token."""
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
    if not signing or getattr(args, "key", None):  # a key given here replaces the signers
        changes["signers"] = ()
        changes["token_module"] = ""
    return DocumentsRuntime.build(dataclasses.replace(config, **changes))


def _signer(args: argparse.Namespace, runtime: Any) -> Any:
    from signing.ca.keys import load_private_key
    from signing.sign.signers import KeySigner

    if args.key:
        if not args.cert:
            raise CliError("--key needs --cert (the certificate chain, PEM)", "USAGE")
        passphrase = Path(args.key_passphrase_file).read_bytes().strip() \
            if args.key_passphrase_file else None
        key = load_private_key(Path(args.key).read_bytes(), passphrase)
        if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
            raise CliError("only RSA and ECDSA keys are supported", "UNSUPPORTED_KEY")
        chain = x509.load_pem_x509_certificates(Path(args.cert).read_bytes())
        return KeySigner(key, chain[0], chain[1:])
    if args.signer:
        found = runtime.signers.get(args.signer)
        if found is None:
            raise CliError(f"no signer named {args.signer!r} in [documents]", "NOT_FOUND")
        return found.signer
    raise CliError("give --key and --cert, or --signer NAME", "USAGE")


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
            raise CliError("--signature-png needs --title, --name and --box", "USAGE")
        return person_signature(page=args.page, box=args.box, title=args.title,
                                full_name=args.name, image_png=Path(args.signature_png).read_bytes(),
                                font=runtime.font)
    if args.seal_png:
        if not (args.person_box and args.signature_size):
            raise CliError("--seal-png needs --person-box and --signature-size", "USAGE")
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


def _sign_one(args: argparse.Namespace, runtime: Any, signer: Any, source: Path,
              out_arg: str | None) -> dict[str, Any]:
    """Sign one file; the result (file, out, format, level, field, warnings)."""
    from signing.sign.cms import CadesLevel, sign_detached
    from signing.sign.pades import DocMdp, PadesLevel, PadesOptions, sign_pdf
    from signing.sign.xmldsig import XmlDsigSigner

    at = dt.datetime.now(dt.UTC)
    fmt = args.format or {".pdf": "pdf", ".xml": "xml"}.get(source.suffix.lower(), "cms")
    if fmt == "pdf":
        out = Path(out_arg or source.with_name(source.stem + "-signed.pdf"))
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
        return {"file": str(source), "out": str(out), "format": "pdf", "level": result.level,
                "field": result.field_name, "warnings": list(result.warnings),
                "text": f"signed {out} ({result.level}, field {result.field_name})"}
    if fmt == "cms":
        out = Path(out_arg or str(source) + ".p7s")
        with source.open("rb") as src:
            p7s = sign_detached(src, signer, at=at, level=CadesLevel(args.level),
                                timestamps=runtime.tsa)
        out.write_bytes(p7s)
        return {"file": str(source), "out": str(out), "format": "cms", "level": args.level,
                "warnings": [], "text": f"signed {out} (detached CAdES {args.level})"}
    key = getattr(signer, "key", None)
    if key is None:
        raise CliError("XML signing needs a key (--key or a file signer)", "USAGE")
    out = Path(out_arg or source.with_name(source.stem + "-signed.xml"))
    out.write_bytes(XmlDsigSigner(key, [signer.certificate, *signer.chain]).sign_xml(
        source.read_bytes(), signing_time=at, reference_id=args.reference_id,
        signature_id=args.signature_id, signature_parent=args.signature_parent))
    return {"file": str(source), "out": str(out), "format": "xml", "level": "XMLDSig",
            "warnings": [], "text": f"signed {out} (XMLDSig)"}


def _refusal(exc: BaseException) -> CliError:
    """A file that could not be signed: its exit code and reason (:func:`classify`)."""
    code, reason, message = classify(exc)
    return CliError(message, reason, code)


def _check_inputs(args: argparse.Namespace) -> None:
    """Read the appearance's font and images before signing anything: a bad one stops the
    command at once, not after the first of many files."""
    if args.font:
        from fontTools.ttLib import TTFont, TTLibError

        try:
            TTFont(io.BytesIO(Path(args.font).read_bytes())).close()
        except (TTLibError, OSError, ValueError, AssertionError):
            raise CliError(f"{args.font}: not a TrueType/OpenType font", "MALFORMED_INPUT") \
                from None
    for image in (args.signature_png, args.seal_png):
        if image and not Path(image).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n":
            raise CliError(f"{image}: not a PNG image", "MALFORMED_INPUT")


def cmd_sign(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    """Sign one file, or many (``vnegov sign dir/*.pdf``) with a result per file; with several
    files ``--out`` names a directory. Exit: 0 all signed, else the worst file's code."""
    from signing.errors import SigningError

    files = [Path(f) for f in args.files]
    many = len(files) > 1
    if args.format == "cms" and args.level not in ("B-B", "B-T"):
        raise CliError("detached CMS signatures are B-B or B-T", "USAGE")
    if many and args.out and not Path(args.out).is_dir():
        raise CliError(f"with several files --out must be an existing directory: {args.out}",
                       "USAGE")
    _check_inputs(args)
    _quiet()
    runtime = _runtime(args, environ, signing=True)
    results: list[dict[str, Any]] = []
    worst = 0
    try:
        signer = _signer(args, runtime)
        with progress("signing", len(files), enabled=many) as bar:
            for source in files:
                out_arg = str(Path(args.out) / source.name) if many and args.out else args.out
                if many and args.out and Path(out_arg).resolve() == source.resolve():
                    out_arg = None
                try:
                    result = _sign_one(args, runtime, signer, source, out_arg)
                except (SigningError, OSError, ValueError) as exc:
                    if not many:
                        raise _refusal(exc) from None
                    err = _refusal(exc)
                    worst = max(worst, err.code)
                    result = {"file": str(source), "error": err.message, "reason": err.reason,
                              "text": f"FAILED {source}: {err.message} [{err.reason}]"}
                results.append(result)
                for warning in result.get("warnings", []):
                    click.echo(f"warning: {source}: {warning}" if many else f"warning: {warning}",
                               err=True)
                if not args.json_output:
                    click.echo(result["text"])
                bar.update(advance=1)
    finally:
        runtime.close()
    if args.json_output:
        for r in results:
            r.pop("text", None)
        emit(args, {"signed": sum("error" not in r for r in results),
                    "failed": sum("error" in r for r in results), "files": results}, "")
    elif many:
        failed = sum("error" in r for r in results)
        click.echo(f"{len(results) - failed} signed, {failed} failed")
    return worst


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
        runtime.close()
        raise CliError("no trust anchors (--trust root.pem or documents.trust_roots)",
                       "NO_TRUST_ANCHORS")
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
    except SigningError as exc:  # not a signature that failed: an input it cannot check
        raise CliError(exc.message, exc.reason, EXIT_USAGE) from None
    finally:
        runtime.close()
    if args.json:
        click.echo(report.to_json())
    elif args.etsi:
        click.echo("\n".join(report.etsi_xml_reports) or "(no ETSI report for this format)")
    else:
        click.echo(report.to_text(), nl=False)
    if report.indication is Indication.TOTAL_PASSED:
        return 0
    if any(sig.sub_indication == "TRY_LATER" for sig in report.signatures):
        return EXIT_UNAVAILABLE  # revocation data could not be fetched: try again later
    return EXIT_REFUSED


def _token_of(config: Any) -> Any:
    """The token of the data directory's documents configuration (CliError when there is none
    or it cannot be opened)."""
    from server.documents.config import DocumentsConfig
    from server.documents.runtime import DocumentsSetupError, open_token
    from signing.errors import SigningError

    docs = DocumentsConfig.from_config(config.extensions.get("documents", {}),
                                       base_dir=Path(config.data_dir or "."))
    try:
        token = open_token(docs)
    except (DocumentsSetupError, SigningError) as exc:
        raise CliError(f"the token cannot be opened: {exc}", "TOKEN_UNAVAILABLE") from None
    if token is None:
        raise CliError("no token is configured (documents.token_module): officials' keys for "
                       "remote signing live in a PKCS#11 token", "TOKEN_NOT_CONFIGURED")
    return token


def _signed_revision(args: argparse.Namespace, source: Path, runtime: Any) -> int:
    from signing.errors import SigningError
    from signing.validate.changes import extract_signed_revision

    runtime.close()
    if not args.out:
        raise CliError("--signed-revision needs -o FILE", "USAGE")
    out = Path(args.out)
    part = out.with_name(out.name + ".part")
    try:
        with source.open("rb") as src, part.open("wb") as dst:
            name = extract_signed_revision(src, dst, args.signed_revision)
        part.replace(out)
    except SigningError as exc:
        raise CliError(exc.message, exc.reason, EXIT_USAGE) from None
    finally:
        part.unlink(missing_ok=True)
    emit(args, {"out": str(out), "revision": args.signed_revision, "field": name},
         f"wrote {out}: the document as signature {args.signed_revision} ({name}) signed it")
    return 0


def _instant(text: str) -> dt.datetime:
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError as exc:
        raise click.BadParameter(f"{text!r}: an ISO 8601 date or time, e.g. 2030-01-31T00:00Z") \
            from exc
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


def _days(text: str) -> dt.timedelta:
    try:
        days = int(text)
    except ValueError as exc:
        raise click.BadParameter(f"{text!r}: a whole number of days") from exc
    if not 0 <= days <= 36500:
        raise click.BadParameter(f"{text!r}: between 0 and 36500 days")
    return dt.timedelta(days=days)


def cmd_ltv_extend(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    """Archive renewal: fresh validation data and a document time-stamp for each FILE, written
    in place (through a temporary file renamed when complete) or into --out-dir. One file: its
    error ends the command; several: a result per file, the exit code is the worst file's."""
    from signing.errors import SigningError
    from signing.sign.ltv import extend_ltv

    _quiet()
    runtime = _runtime(args, environ)
    if runtime.tsa is None:
        runtime.close()
        raise CliError("no time-stamping authority (--tsa URL or documents.tsa_url)",
                       "NO_TSA")
    files = [Path(f) for f in args.files]
    many = len(files) > 1
    results: list[dict[str, Any]] = []
    worst = 0
    try:
        with progress("extending", len(files), enabled=many) as bar:
            for source in files:
                out = Path(args.out_dir) / source.name if args.out_dir else source
                part = out.with_name(out.name + ".part")
                try:
                    with source.open("rb") as src, part.open("w+b") as dst:
                        done = extend_ltv(src, dst, timestamps=runtime.tsa, trust=runtime.trust,
                                          at=dt.datetime.now(dt.UTC))
                    part.replace(out)
                    result = {"file": str(source), "out": str(out),
                              "timestamp": done.timestamp_time.isoformat(),
                              "valid_until": done.valid_until.date().isoformat(),
                              "text": f"extended {out}: time-stamp "
                                      f"{done.timestamp_time.isoformat()}, valid until "
                                      f"{done.valid_until.date().isoformat()}"}
                except (SigningError, OSError, ValueError) as exc:
                    err = _refusal(exc)
                    if not many:
                        raise err from None
                    worst = max(worst, err.code)
                    result = {"file": str(source), "error": err.message, "reason": err.reason,
                              "text": f"FAILED {source}: {err.message} [{err.reason}]"}
                finally:
                    part.unlink(missing_ok=True)
                results.append(result)
                if not args.json_output:
                    click.echo(result["text"])
                bar.update(advance=1)
    finally:
        runtime.close()
    if args.json_output:
        for r in results:
            r.pop("text", None)
        emit(args, {"extended": sum("error" not in r for r in results),
                    "failed": sum("error" in r for r in results), "files": results}, "")
    elif many:
        failed = sum("error" in r for r in results)
        click.echo(f"{len(results) - failed} extended, {failed} failed")
    return worst


def cmd_ltv_status(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    """List the PDFs under DIR whose newest time-stamp stops proving anything within the
    window (exit status 1 when there are some: a cron job can mail them), with a progress bar
    on standard error."""
    from signing.errors import SigningError
    from signing.sign.ltv import archive_status

    _quiet()
    root = Path(args.directory)
    at = args.at or dt.datetime.now(dt.UTC)
    paths = sorted(p for p in root.rglob("*") if p.suffix.lower() == ".pdf" and p.is_file())
    due: list[dict[str, str | None]] = []
    with progress("checking", len(paths), enabled=not args.quiet) as bar:
        for path in paths:
            bar.update(advance=1)
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
    if args.json_output:
        emit(args, {"checked": len(paths), "due": due}, "")
    else:
        for item in due:
            click.echo(f"{item['state']:<13} {item['expires'] or '-':<26} {item['file']}")
        click.echo(f"{len(due)} of {len(paths)} file(s) need attention within "
                   f"{args.within.days} day(s)", err=True)
    return EXIT_REFUSED if due else 0


def cmd_key_generate(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    """Generate an official's key in the configured token (never leaving it) and, with
    --cert-out, certify it with the development CA of the data directory (demo only)."""
    from server.cli.commands import load_config_for
    from server.devpki import DevPki, issue_dev_certificate
    from signing.ca import KeyAlgorithm, SubjectData

    config = load_config_for(args, environ)
    pki = DevPki(Path(config.pki.directory), Path(config.pki.key_passphrase_file))
    if args.cert_out:
        from signing.ca.keys import load_private_key

        ca_key = pki.directory / "issuing-ca.key.pem"
        if not ca_key.exists():
            raise CliError(f"no development CA in {pki.directory}: generate the key without "
                           "--cert-out and have it certified by the CA", "NO_DEVELOPMENT_CA")
        # The CA's key opens before a key is made: a wrong passphrase leaves no orphan key.
        load_private_key(ca_key.read_bytes(), pki.passphrase_file.read_bytes().strip())
    token = _token_of(config)
    try:
        key = token.generate_key(args.label, KeyAlgorithm(args.algorithm))
    finally:
        token.close()
    lines = [f"generated {args.algorithm} key {args.label!r} in the token"]
    if args.cert_out:
        chain = issue_dev_certificate(pki, config.server.public_url, "individual", SubjectData(
            full_name=args.name, title=args.title or "", unit=args.unit,
            parent_body=args.parent_body, agency_code=args.agency_code,
            personal_id=args.owner), key.public_key())
        Path(args.cert_out).write_bytes(b"".join(
            c.public_bytes(serialization.Encoding.PEM) for c in chain))
        lines.append(f"certificate for {args.name} (development CA) written to {args.cert_out}")
    emit(args, {"label": args.label, "algorithm": args.algorithm,
                "certificate": args.cert_out or None}, "\n".join(lines))
    return 0


def cmd_credential_add(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    """Register a token key and its certificate as an official's credential, after checking that
    the configured token holds that key and that it is the certificate's."""
    from server.cli.commands import _check_database, load_config_for
    from server.documents.stores import add_credential
    from server.storage.db import Database
    from signing.errors import SigningError
    from signing.sign.remote import SigningCredential
    from signing.sign.signers import TokenSigner

    config = load_config_for(args, environ)
    try:
        chain = tuple(x509.load_pem_x509_certificates(Path(args.cert_file).read_bytes()))
    except ValueError:
        raise CliError(f"{args.cert_file} holds no PEM certificate", "BAD_CERTIFICATE") \
            from None
    _check_database(config)  # an unreachable database says so before the token is opened
    token = _token_of(config)
    try:
        TokenSigner(token, args.key_label, chain[0], chain[1:])
    except SigningError as exc:
        raise CliError(str(exc), exc.reason, EXIT_USAGE) from None
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
    emit(args, {"credential_id": args.credential_id, "owner": args.owner},
         f"credential {args.credential_id} added for {args.owner}")
    return 0


def cmd_credential_link(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    """Link a credential to its owner's identity account (by default the account whose personal
    ID number is the credential's owner): that account's app approvals then authorise it."""
    from sqlalchemy import select

    from server.cli.commands import load_config_for
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
                raise CliError(f"no identity account for the owner of {args.credential_id}",
                               "ACCOUNT_NOT_FOUND")
        try:
            link_identity_account(db, args.credential_id, account_id,
                                  at=dt.datetime.now(dt.UTC), actor="cli")
        except SigningError as exc:
            raise CliError(exc.message, exc.reason, EXIT_USAGE) from None
    finally:
        db.dispose()
    emit(args, {"credential_id": args.credential_id, "identity_account": account_id},
         f"credential {args.credential_id} linked to identity account {account_id}")
    return 0


def cmd_totp(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    import pyotp

    from server.cli.commands import load_config_for
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
    emit(args, {"owner": args.owner, "uri": uri},
         f"Scan this into the official's authenticator app (shown once):\n{uri}")
    return 0


# ------------------------------------------------------------------------ the command tree
BOX = _Parsed("box", _box)
SIZE = _Parsed("size", _size)
TRUST: dict[str, Any] = dict(multiple=True, type=click.Path(exists=True, dir_okay=False),
             help="trust anchor PEM (repeatable; default documents.trust_roots)")
FORMATS = click.Choice(["pdf", "cms", "xml"])


@click.command("sign", cls=VnegovCommand)
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False),
                cls=Arg, help="the files to sign: one, or many (dir/*.pdf) with a result each")
@click.option("--format", type=FORMATS,
              help="pdf (PAdES), xml (XMLDSig) or cms (detached .p7s); default by extension")
@click.option("--out", type=click.Path(),
              help="output file (default NAME-signed.pdf, NAME-signed.xml, NAME.p7s); "
                   "with several files, an existing directory")
@click.option("--level", type=click.Choice(LEVELS), default="B-B", show_default=True,
              help="signature level (B-LT and B-LTA embed revocation data and time-stamps)")
@click.option("--key", type=click.Path(exists=True, dir_okay=False),
              help="private key file (PEM/DER, PKCS#8)")
@click.option("--key-passphrase-file", type=click.Path(exists=True, dir_okay=False),
              help="file holding the key's passphrase")
@click.option("--cert", type=click.Path(exists=True, dir_okay=False),
              help="certificate chain, PEM, signer first")
@click.option("--signer", help="name of a signer configured in [documents]")
@click.option("--tsa", help="RFC 3161 time-stamping URL")
@click.option("--trust", **TRUST)
@click.option("--offline", is_flag=True, help="use no online revocation sources")
@click.option("--font", type=click.Path(exists=True, dir_okay=False),
              help="TrueType font with Vietnamese glyphs for the appearance")
@click.option("--reason", help="the signature's reason (shown by PDF readers)")
@click.option("--location", help="where it was signed")
@click.option("--page", type=click.IntRange(min=0), default=0, show_default=True,
              help="page of the appearance (0 = first)")
@click.option("--title", multiple=True,
              help="the signer's title; repeat for each line of an authority form "
                   "(--title 'KT. CHỦ TỊCH' --title 'PHÓ CHỦ TỊCH'), at most three")
@click.option("--name", help="the signer's full name under the signature")
@click.option("--signature-png", type=click.Path(exists=True, dir_okay=False),
              help="image of the handwritten signature (needs --title, --name, --box)")
@click.option("--box", type=BOX, help="appearance box x1,y1,x2,y2 in points")
@click.option("--seal-png", type=click.Path(exists=True, dir_okay=False),
              help="the agency's seal image, over the person's signature")
@click.option("--seal-mm", type=click.FloatRange(min=1), default=36, show_default=True,
              help="seal diameter in millimetres")
@click.option("--person-box", type=BOX, help="box of the person's signature the seal overlaps")
@click.option("--signature-size", type=SIZE, help="pixel size of the signature image, WxH")
@click.option("--copy-of", help="sign as an electronic copy made by this body")
@click.option("--certify", type=click.IntRange(1, 3), is_flag=False, flag_value=2,
              help="certify (first signature only): DocMDP P, 2 when given alone (form filling "
                   "and signing allowed); 1 forbids even LTV maintenance")
@click.option("--no-lock-fields", is_flag=True,
              help="leave the existing form fields fillable after this signature")
@click.option("--reference-id", help="XML: sign the element with this Id (default the document)")
@click.option("--signature-id", default="signature", show_default=True,
              help="XML: Id of the Signature element")
@click.option("--signature-parent", default="", help="XML: path of the element to hold the signature")
@json_option
@handler
def sign(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    """Sign PDFs (PAdES), XML documents (XMLDSig) or any file (detached CMS).

    Several files (vnegov sign dir/*.pdf ...) are signed with one key, a result line per file
    and a summary; the exit code is the worst file's."""
    args.title = list(args.title) or None
    args.file = args.files[0]
    return cmd_sign(args, environ)


@click.command("verify", cls=VnegovCommand)
@click.argument("file", type=click.Path(exists=True, dir_okay=False), cls=Arg,
                help="the signed PDF or XML, or the content of a detached signature")
@click.option("--signature", type=click.Path(exists=True, dir_okay=False),
              help="detached .p7s for FILE")
@click.option("--format", type=FORMATS, help="the file's format (default by extension)")
@click.option("--trust", **TRUST)
@click.option("--offline", is_flag=True, help="use embedded revocation data only")
@click.option("--expect-agency", metavar="CODE",
              help="XML: fail unless signed by this agency code (SIGNER_NOT_EXPECTED)")
@click.option("--expect-tax-code", metavar="MST",
              help="XML: fail unless signed by this tax code (SIGNER_NOT_EXPECTED)")
@click.option("--signed-data", metavar="FILE", type=click.Path(dir_okay=False),
              help="XML: write the canonical signed data (what to read) to FILE")
@click.option("--at", type=_Parsed("instant", _instant),
              help="validation time (ISO 8601; default now): long-term validation at a "
                   "later date, from the document's own validation data")
@click.option("--signed-revision", type=click.IntRange(min=1), metavar="N",
              help="write the document as signature N signed it (with -o)")
@click.option("-o", "--out", type=click.Path(dir_okay=False),
              help="output file for --signed-revision")
@click.option("--json", "json_output", is_flag=True, help="print the report as JSON")
@click.option("--etsi", is_flag=True, help="print the ETSI TS 119 102-2 XML report")
@handler
def verify(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    """Verify the signatures of a PDF, XML or CMS-signed file; exit 0 only when every
    signature is TOTAL-PASSED, 3 when revocation data could not be fetched (INDETERMINATE /
    TRY_LATER), 1 otherwise."""
    if args.json_output and args.etsi:
        raise CliError("--json and --etsi exclude each other", "USAGE")
    args.json = args.json_output
    return cmd_verify(args, environ)


@click.group("ltv")
def ltv() -> None:
    """Long-term validation data of signed PDFs (archives)."""


@ltv.command("extend", cls=VnegovCommand)
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False),
                cls=Arg, help="the signed PDFs to renew (one, or many with a result each)")
@click.option("--out-dir", type=click.Path(exists=True, file_okay=False),
              help="write the renewed files here (default: in place)")
@click.option("--tsa", help="RFC 3161 time-stamping URL (default documents.tsa_url)")
@click.option("--trust", **TRUST)
@click.option("--offline", is_flag=True, help="use no online revocation sources")
@json_option
@handler
def ltv_extend(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    """Renew: fresh validation data and a document time-stamp (in place, or into --out-dir);
    a progress bar for several files; the exit code is the worst file's."""
    return cmd_ltv_extend(args, environ)


@ltv.command("status", cls=VnegovCommand)
@click.argument("directory", metavar="DIR", type=click.Path(exists=True, file_okay=False),
                cls=Arg, help="the archive: every PDF under it is checked")
@click.option("--within", type=_Parsed("days", _days), default="90", show_default=True,
              metavar="DAYS", help="window in days")
@click.option("--at", type=_Parsed("instant", _instant), help="as of this time (default now)")
@click.option("--quiet", is_flag=True, help="no progress bar")
@json_option
@handler
def ltv_status(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    """List PDFs whose last time-stamp expires within the window; exit 1 when there are some
    (a cron job can mail them)."""
    return cmd_ltv_status(args, environ)


@click.group("documents")
def documents() -> None:
    """Remote-signing credentials of officials."""


@documents.command("credential-add", cls=VnegovCommand)
@click.option("--credential-id", required=True, help="the credential's id (chosen by the operator)")
@click.option("--owner", required=True, help="the official (personal ID number)")
@click.option("--agency-code", required=True, help="the official's agency code")
@click.option("--key-label", required=True, help="label of the key in the token")
@click.option("--cert-file", required=True, type=click.Path(exists=True, dir_okay=False),
              help="the official's certificate chain, PEM, signer first")
@click.option("--description", help="free text shown to the official")
@click.option("--identity-account", help="the owner's identity account id (approvals in the app)")
@json_option
@handler
def credential_add(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    """Register a token key as an official's remote-signing credential."""
    return cmd_credential_add(args, environ)


@documents.command("credential-link", cls=VnegovCommand)
@click.option("--credential-id", required=True, help="the credential to link")
@click.option("--identity-account",
              help="account id; default: the account of the credential owner's ID number")
@json_option
@handler
def credential_link(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    """Let the owner's approvals in the citizen app authorise a credential."""
    return cmd_credential_link(args, environ)


@documents.command("key-generate", cls=VnegovCommand)
@click.option("--label", required=True, help="the key's label in the token")
@click.option("--algorithm", default="ec-p256", show_default=True,
              type=click.Choice(["ec-p256", "ec-p384", "rsa-3072"]), help="key algorithm")
@click.option("--cert-out", type=click.Path(dir_okay=False),
              help="certify with the development CA and write the chain here")
@click.option("--owner", default="", help="the official's personal ID number (with --cert-out)")
@click.option("--name", default="", help="the official's full name (with --cert-out)")
@click.option("--title", help="the official's title (with --cert-out)")
@click.option("--unit", default="Văn phòng", show_default=True,
              help="the official's unit (with --cert-out)")
@click.option("--parent-body", default="UBND Thành phố Hồ Chí Minh", show_default=True,
              help="the parent body (with --cert-out)")
@click.option("--agency-code", default="000.00.00.H29", show_default=True,
              help="agency code (with --cert-out)")
@json_option
@handler
def key_generate(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    """Generate an official's key in the token (and, on the demo, certify it with the
    development CA)."""
    return cmd_key_generate(args, environ)


@documents.command("totp", cls=VnegovCommand)
@click.option("--owner", required=True, help="the official (personal ID number)")
@json_option
@handler
def totp(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    """Give an official a new TOTP secret (the otpauth:// URI is shown once)."""
    return cmd_totp(args, environ)


COMMANDS = [sign, verify, ltv, documents]
