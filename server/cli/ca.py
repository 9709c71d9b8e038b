"""``vnegov ca``: the certificate authority at the command line, for the CA operator.

    vnegov ca issue --profile individual --csr req.pem --subject subject.yaml [--managing-body C]
    vnegov ca renew CERT [--extension-days N]
    vnegov ca rekey CERT --csr req.pem
    vnegov ca modify CERT --set unit="Phòng Tư pháp" [--set ...] [--managing-body C]
    vnegov ca revoke CERT --reason keyCompromise        (certificateHold to suspend)
    vnegov ca revoke CERT --release                     (end a hold)
    vnegov ca crl [--out DIR]                           publish new CRLs (and write them)
    vnegov ca status CERT | --serial HEX | --requests   status, or the service-target report
    vnegov ca reorg plan MAPPING.yaml                   dry run: what would change
    vnegov ca reorg run MAPPING.yaml [--batch-size N]   carry it out (resumable, progress bar)
    vnegov ca token init                                generate the CA's keys in the PKCS#11 token

CERT is ``certificates/{id}`` or the bare id. The command works on the database and keys named by
the configuration, as the operator (audited as ``cli/<user>``); the running server picks up what
it changes within ``ca.status_poll_seconds``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import getpass
import json
import sys
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click
import yaml

from server.cli.kit import Arg, CliError, VnegovCommand, emit, handler, json_option, progress

__all__ = ["COMMANDS"]


def load_config_for(args: argparse.Namespace, environ: Mapping[str, str]) -> Any:
    from server.cli.commands import load_config_for as load  # the entry point reads the configuration

    return load(args, environ)


def _open(args: argparse.Namespace, environ: Mapping[str, str]) -> Any:
    from server.ca.module import bootstrap, open_ca
    from server.storage.db import Database

    config = load_config_for(args, environ)
    db = Database(config.storage.url)
    parts = open_ca(config, db, lambda: dt.datetime.now(dt.UTC))
    bootstrap(parts, config)
    return db, parts


def _actor() -> Any:
    from server.ca.records import Actor

    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "operator"
    return Actor.command_line(uuid.uuid4().hex, user)


def _cert_id(text: str) -> int:
    tail = text.removeprefix("certificates/")
    if not tail.isdigit():
        raise CliError(f"{text!r} is not certificates/{{id}} or an id", "INVALID_ARGUMENT")
    return int(tail)


def _print_request(view: Any) -> int:
    """Print the request; the exit status is 1 if it was rejected."""
    out = {"name": view.name, "kind": view.kind.value, "state": view.state.value,
           "profile": view.profile}
    if view.certificate_id:
        out["certificate"] = f"certificates/{view.certificate_id}"
    if view.result_certificate_id:
        out["result_certificate"] = f"certificates/{view.result_certificate_id}"
    if view.rejection_reason:
        out["rejection"] = f"{view.rejection_reason}: {view.rejection_message}"
    print(json.dumps(out, ensure_ascii=False))
    return 1 if view.state.value == "rejected" else 0


def _run(args: argparse.Namespace, environ: Mapping[str, str], action: Any) -> int:
    """Run ``action(parts, actor)`` on the CA; a refusal (SigningError) ends the command with
    ``vnegov: <message> [REASON]`` and its exit code (:mod:`server.cli.kit`)."""
    db, parts = _open(args, environ)
    try:
        return int(action(parts, _actor()) or 0)
    finally:
        parts.runtime.close()
        db.dispose()


# ------------------------------------------------------------------------ commands
def cmd_issue(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    from signing.ca import SubjectData

    subject = SubjectData.from_dict(yaml.safe_load(Path(args.subject).read_bytes()) or {})
    csr = Path(args.csr).read_bytes()

    def action(parts: Any, actor: Any) -> int:
        view = parts.service.issue(actor, profile_id=args.profile, subject=subject, csr=csr,
                                   managing_body=args.managing_body,
                                   validity_days=args.validity_days,
                                   client_request_id=args.request_id or "")
        code = _print_request(view)
        if args.out and view.result_certificate_id:
            cert = parts.service.get_certificate(actor, view.result_certificate_id)
            from cryptography import x509
            from cryptography.hazmat.primitives import serialization

            Path(args.out).write_bytes(x509.load_der_x509_certificate(cert.der).public_bytes(
                serialization.Encoding.PEM))
        return code

    return _run(args, environ, action)


def cmd_renew(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    return _run(args, environ, lambda parts, actor: _print_request(parts.service.renew(
        actor, _cert_id(args.certificate), extension_days=args.extension_days)))


def cmd_rekey(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    csr = Path(args.csr).read_bytes()
    return _run(args, environ, lambda parts, actor: _print_request(parts.service.rekey(
        actor, _cert_id(args.certificate), csr=csr)))


def cmd_modify(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    from signing.ca import RevocationReason

    changes: dict[str, Any] = {}
    for item in args.set or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise CliError(f"--set needs FIELD=VALUE, not {item!r}", "USAGE")
        changes[key.strip()] = tuple(v for v in value.split(",") if v) \
            if key.strip() == "dns_names" else value
    reason = RevocationReason(args.reason) if args.reason else None
    return _run(args, environ, lambda parts, actor: _print_request(parts.service.modify(
        actor, _cert_id(args.certificate), changes=changes,
        managing_body=args.managing_body or "", reason=reason)))


def cmd_revoke(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    from signing.ca import RevocationReason

    if args.release:
        return _run(args, environ, lambda parts, actor: _print_request(parts.service.release(
            actor, _cert_id(args.certificate))))
    reason = RevocationReason(args.reason)
    invalidity = dt.datetime.fromisoformat(args.invalidity_date) if args.invalidity_date \
        else None
    return _run(args, environ, lambda parts, actor: _print_request(parts.service.revoke(
        actor, _cert_id(args.certificate), reason=reason, invalidity_date=invalidity)))


def cmd_crl(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    def action(parts: Any, actor: Any) -> int:
        parts.publisher.publish(rebase=args.rebase)
        for name, crl in sorted(parts.publisher.crls.items()):
            print(json.dumps({"crl": name, "number": crl.number,
                              "this_update": crl.this_update.isoformat(),
                              "next_update": crl.next_update.isoformat()}))
            if args.out:
                out = Path(args.out)
                out.mkdir(parents=True, exist_ok=True)
                (out / f"{name}.crl").write_bytes(crl.der)
        return 0

    return _run(args, environ, action)


def cmd_status(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    def action(parts: Any, actor: Any) -> int:
        if args.requests:
            return _report(parts, actor)
        service = parts.service
        if args.serial:
            try:
                serial = int(args.serial.lower().removeprefix("0x"), 16)
            except ValueError:
                raise CliError(f"--serial {args.serial!r} is not a hexadecimal number") from None
            view = service.find_by_serial(actor, serial)
        elif args.certificate:
            view = service.get_certificate(actor, _cert_id(args.certificate))
        else:
            raise CliError("name a certificate, --serial or --requests", "USAGE")
        now = service.clock()
        status = "expired" if view.status.value == "valid" and view.expired(now) \
            else view.status.value
        out = {"name": view.name, "serial_number": format(view.serial_number, "x"),
               "status": status, "profile": view.profile, "subject": view.subject_dn,
               "managing_body": view.managing_body,
               "not_after": view.not_after.isoformat()}
        if view.revoked_at:
            out["revoked_at"] = view.revoked_at.isoformat()
            out["reason"] = view.revocation_reason.value if view.revocation_reason else ""
        if view.superseded_by_id:
            out["superseded_by"] = f"certificates/{view.superseded_by_id}"
        if view.held_with_id:
            out["held_with"] = f"certificates/{view.held_with_id}"
        print(json.dumps(out, ensure_ascii=False))
        return 0

    return _run(args, environ, action)


def _report(parts: Any, actor: Any) -> int:
    """Service target: requests by kind, how many finished within the working-day target."""
    from server.ca.listing import list_requests

    rt = parts.runtime
    now = parts.service.clock()
    totals: dict[str, dict[str, int]] = {}
    after = 0
    while True:
        views = list_requests(parts.service.db, actor, [], after_id=after, size=1000)
        for v in views[:1000]:
            row = totals.setdefault(v.kind.value, {"requests": 0, "open": 0, "within_target": 0,
                                                   "late": 0, "rejected": 0})
            row["requests"] += 1
            days = v.timeline.working_days(rt.holidays, now) or 0.0
            if not v.state.final:
                row["open"] += 1
            elif v.state.value == "rejected":
                row["rejected"] += 1
            if days <= rt.settings.service_target_working_days:
                row["within_target"] += 1
            else:
                row["late"] += 1
        if len(views) <= 1000:
            break
        after = views[999].id
    print(json.dumps({"target_working_days": rt.settings.service_target_working_days,
                      "by_kind": totals}, ensure_ascii=False, indent=2))
    return 0


def cmd_reorg_plan(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    from signing.ca import load_reorganisation

    mapping = load_reorganisation(Path(args.mapping).read_bytes())

    def action(parts: Any, actor: Any) -> int:
        changes = parts.runner.plan(actor, mapping)
        for c in changes:
            print(json.dumps({"certificate": f"certificates/{c.certificate_id}",
                              "action": c.action.value, "changes": c.changed_fields(),
                              "new_managing_body": c.new_managing_body,
                              **({"on_hold": True} if c.on_hold else {})},
                             ensure_ascii=False))
        print(json.dumps({"total": len(changes),
                          "reissue": sum(c.action.value == "reissue" for c in changes),
                          "reassign": sum(c.action.value == "reassign" for c in changes)}),
              file=sys.stderr)
        return 0

    return _run(args, environ, action)


def cmd_reorg_run(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    from signing.ca import load_reorganisation

    mapping = load_reorganisation(Path(args.mapping).read_bytes())

    def action(parts: Any, actor: Any) -> int:
        run = parts.runner.create(actor, mapping)
        print(json.dumps({"operation": run.name, "total": run.total, "done": run.done}),
              flush=True)
        with progress("re-issuing", run.total, enabled=not args.no_progress,
                      initial=run.done + run.failed) as bar:

            def report(status: Any) -> None:
                bar.update(completed=status.done + status.failed, failed=status.failed)

            final = parts.runner.run(actor, run.id, batch_size=args.batch_size, progress=report,
                                     throttle=args.throttle)
        print(json.dumps({"operation": final.name, "state": final.state, "total": final.total,
                          "done": final.done, "failed": final.failed}), flush=True)
        if final.failed:
            for item in parts.runner.items(run.id, after_id=0, size=100000):
                if item.state == "failed":
                    print(json.dumps({"certificate": f"certificates/{item.certificate_id}",
                                      "error": item.error}), file=sys.stderr)
        return 0 if final.state == "succeeded" else 1

    return _run(args, environ, action)


def cmd_token_init(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    """Generate the issuing CA, OCSP and TSA keys in the token and certify them: the issuing CA by
    the root (whose key file must be at hand), the responder and TSA by the new issuing CA."""
    from server.ca.token_setup import initialise_token

    config = load_config_for(args, environ)
    written = initialise_token(config, algorithm=args.algorithm, force=args.force,
                               root_key_file=args.root_key or "")
    emit(args, {"written": [str(p) for p in written]}, "\n".join(str(p) for p in written))
    return 0


# ------------------------------------------------------------------------ the command tree
CERT: dict[str, Any] = dict(cls=Arg, help="the certificate: certificates/{id} or the bare id")


@click.group("ca")
def ca() -> None:
    """The certificate authority (operator commands).

    Works on the database and keys named by the configuration, as the operator (audited as
    cli/<user>). Results are printed as JSON lines (--json is accepted for uniformity)."""


@ca.command("issue", cls=VnegovCommand)
@click.option("--profile", required=True, help="certificate profile (individual, device, ...)")
@click.option("--csr", required=True, type=click.Path(exists=True, dir_okay=False),
              help="PKCS#10 request (PEM or DER)")
@click.option("--subject", required=True, type=click.Path(exists=True, dir_okay=False),
              help="YAML/JSON file with the subject fields")
@click.option("--managing-body", default="", help="agency code of the managing body")
@click.option("--validity-days", type=click.IntRange(min=1), help="validity in days (default: the profile's)")
@click.option("--request-id", help="idempotency key: the same key returns the same request")
@click.option("--out", type=click.Path(dir_okay=False), help="write the certificate (PEM) here")
@json_option
@handler
def issue(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    """Issue a certificate from a CSR; exit 1 if the request is rejected."""
    return cmd_issue(args, environ)


@ca.command("renew", cls=VnegovCommand)
@click.argument("certificate", **CERT)
@click.option("--extension-days", type=click.IntRange(min=1), help="days added to notAfter")
@json_option
@handler
def renew(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    """Renew a certificate (same key, later notAfter)."""
    return cmd_renew(args, environ)


@ca.command("rekey", cls=VnegovCommand)
@click.argument("certificate", **CERT)
@click.option("--csr", required=True, type=click.Path(exists=True, dir_okay=False),
              help="PKCS#10 request with the new key (PEM or DER)")
@json_option
@handler
def rekey(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    """Re-key a certificate (new CSR, same identity)."""
    return cmd_rekey(args, environ)


@ca.command("modify", cls=VnegovCommand)
@click.argument("certificate", **CERT)
@click.option("--set", "set", multiple=True, metavar="FIELD=VALUE",
              help="a changed subject field (repeatable; dns_names takes a comma list)")
@click.option("--managing-body", help="the new managing body's agency code")
@click.option("--reason", type=click.Choice(["superseded", "affiliationChanged"]),
              help="revocation reason recorded for the old certificate")
@json_option
@handler
def modify(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    """Re-issue a certificate with changed fields."""
    return cmd_modify(args, environ)


REASONS = ["unspecified", "keyCompromise", "affiliationChanged", "superseded",
           "cessationOfOperation", "certificateHold", "privilegeWithdrawn"]


@ca.command("revoke", cls=VnegovCommand)
@click.argument("certificate", **CERT)
@click.option("--reason", type=click.Choice(REASONS),
              help="revocation reason (certificateHold suspends)")
@click.option("--release", is_flag=True, help="end a certificateHold")
@click.option("--invalidity-date", help="ISO 8601, with offset: when the key was compromised")
@json_option
@handler
def revoke(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    """Revoke, hold (--reason certificateHold) or release a hold (--release)."""
    if bool(args.reason) == bool(args.release):
        raise CliError("give exactly one of --reason and --release", "USAGE")
    return cmd_revoke(args, environ)


@ca.command("crl", cls=VnegovCommand)
@click.option("--out", type=click.Path(file_okay=False), help="also write the CRLs to this directory")
@click.option("--rebase", is_flag=True, help="start a new base for delta CRLs (as the schedule does)")
@json_option
@handler
def crl(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    """Publish new CRLs."""
    return cmd_crl(args, environ)


@ca.command("status", cls=VnegovCommand)
@click.argument("certificate", required=False, **CERT)
@click.option("--serial", help="serial number (hex) instead of a name")
@click.option("--requests", is_flag=True, help="requests by kind against the working-day target")
@json_option
@handler
def status(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    """A certificate's status, or the service-target report (--requests)."""
    return cmd_status(args, environ)


@ca.group("reorg")
def reorg() -> None:
    """Bulk re-issuance after a reorganisation of agencies."""


MAPPING: dict[str, Any] = dict(cls=Arg, type=click.Path(exists=True, dir_okay=False),
               help="YAML/JSON mapping: reference, effective_date, changes")


@reorg.command("plan", cls=VnegovCommand)
@click.argument("mapping", **MAPPING)
@json_option
@handler
def reorg_plan(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    """Dry run: print what would change, one JSON line per certificate (totals on stderr)."""
    return cmd_reorg_plan(args, environ)


@reorg.command("run", cls=VnegovCommand)
@click.argument("mapping", **MAPPING)
@click.option("--batch-size", type=click.IntRange(min=1), help="certificates per transaction")
@click.option("--throttle", type=click.FloatRange(min=0), default=0.0, show_default=True,
              help="seconds to pause between batches (spread the load)")
@click.option("--no-progress", is_flag=True, help="draw no progress bar")
@json_option
@handler
def reorg_run(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    """Carry out a reorganisation (resumes an interrupted run), with a progress bar."""
    return cmd_reorg_run(args, environ)


@ca.group("token")
def token() -> None:
    """Keys in the PKCS#11 token."""


@token.command("init", cls=VnegovCommand)
@click.option("--algorithm", default="ec-p256", show_default=True,
              type=click.Choice(["ec-p256", "ec-p384", "rsa-3072"]), help="key algorithm")
@click.option("--force", is_flag=True, help="replace existing certificate files")
@click.option("--root-key", type=click.Path(dir_okay=False),
              help="the root's encrypted key file (default: <pki>/root-ca.key.pem)")
@json_option
@handler
def token_init(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    """Generate the CA's keys in the token and certify them."""
    return cmd_token_init(args, environ)


COMMANDS = [ca]
