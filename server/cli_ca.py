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

import yaml

__all__ = ["register"]


def load_config_for(args: argparse.Namespace, environ: Mapping[str, str]) -> Any:
    from server.cli import load_config_for as load  # the entry point reads the configuration

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
        raise SystemExit(f"vnegov ca: {text!r} is not certificates/{{id}} or an id")
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
    from signing.errors import SigningError

    db, parts = _open(args, environ)
    try:
        return int(action(parts, _actor()) or 0)
    except SigningError as exc:
        print(f"vnegov ca: {exc.reason}: {exc.message}", file=sys.stderr)
        return 1
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
            raise SystemExit(f"vnegov ca: --set needs FIELD=VALUE, not {item!r}")
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
            view = service.find_by_serial(actor, int(args.serial.lower().removeprefix("0x"), 16))
        elif args.certificate:
            view = service.get_certificate(actor, _cert_id(args.certificate))
        else:
            raise SystemExit("vnegov ca status: name a certificate, --serial or --requests")
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
    from tqdm import tqdm

    from signing.ca import load_reorganisation

    mapping = load_reorganisation(Path(args.mapping).read_bytes())

    def action(parts: Any, actor: Any) -> int:
        run = parts.runner.create(actor, mapping)
        print(json.dumps({"operation": run.name, "total": run.total, "done": run.done}),
              flush=True)
        bar = tqdm(total=run.total, initial=run.done + run.failed, unit="cert",
                   desc="re-issuing", disable=args.no_progress, file=sys.stderr)

        def progress(status: Any) -> None:
            bar.n = status.done + status.failed
            bar.set_postfix(failed=status.failed)
            bar.refresh()

        final = parts.runner.run(actor, run.id, batch_size=args.batch_size, progress=progress,
                                 throttle=args.throttle)
        bar.close()
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
    for path in written:
        print(path)
    return 0


def register(sub: Any) -> None:
    ca = sub.add_parser("ca", help="the certificate authority (operator commands)")
    cmds = ca.add_subparsers(dest="ca_command", required=True)

    p = cmds.add_parser("issue", help="issue a certificate from a CSR")
    p.add_argument("--profile", required=True)
    p.add_argument("--csr", required=True, help="PKCS#10 request (PEM or DER)")
    p.add_argument("--subject", required=True, help="YAML/JSON file with the subject fields")
    p.add_argument("--managing-body", default="", help="agency code of the managing body")
    p.add_argument("--validity-days", type=int)
    p.add_argument("--request-id", help="idempotency key")
    p.add_argument("--out", help="write the certificate (PEM) here")
    p.set_defaults(func=cmd_issue)

    p = cmds.add_parser("renew", help="renew (same key, later notAfter)")
    p.add_argument("certificate")
    p.add_argument("--extension-days", type=int)
    p.set_defaults(func=cmd_renew)

    p = cmds.add_parser("rekey", help="re-key (new CSR, same identity)")
    p.add_argument("certificate")
    p.add_argument("--csr", required=True)
    p.set_defaults(func=cmd_rekey)

    p = cmds.add_parser("modify", help="re-issue with changed fields")
    p.add_argument("certificate")
    p.add_argument("--set", action="append", metavar="FIELD=VALUE")
    p.add_argument("--managing-body")
    p.add_argument("--reason", choices=["superseded", "affiliationChanged"])
    p.set_defaults(func=cmd_modify)

    p = cmds.add_parser("revoke", help="revoke, hold (certificateHold) or release a hold")
    p.add_argument("certificate")
    group = p.add_mutually_exclusive_group(required=True)
    group.add_argument("--reason", choices=["unspecified", "keyCompromise",
                                            "affiliationChanged", "superseded",
                                            "cessationOfOperation", "certificateHold",
                                            "privilegeWithdrawn"])
    group.add_argument("--release", action="store_true", help="end a certificateHold")
    p.add_argument("--invalidity-date", help="ISO 8601, with offset")
    p.set_defaults(func=cmd_revoke)

    p = cmds.add_parser("crl", help="publish new CRLs")
    p.add_argument("--out", help="also write them to this directory")
    p.add_argument("--rebase", action="store_true",
                   help="start a new base for delta CRLs (as the schedule does)")
    p.set_defaults(func=cmd_crl)

    p = cmds.add_parser("status", help="a certificate's status, or the service-target report")
    p.add_argument("certificate", nargs="?")
    p.add_argument("--serial", help="serial number (hex) instead of a name")
    p.add_argument("--requests", action="store_true",
                   help="requests by kind against the working-day target")
    p.set_defaults(func=cmd_status)

    reorg = cmds.add_parser("reorg", help="bulk re-issuance after a reorganisation")
    reorg_cmds = reorg.add_subparsers(dest="reorg_command", required=True)
    p = reorg_cmds.add_parser("plan", help="dry run")
    p.add_argument("mapping", help="YAML/JSON: reference, effective_date, changes")
    p.set_defaults(func=cmd_reorg_plan)
    p = reorg_cmds.add_parser("run", help="carry out (resumes an interrupted run)")
    p.add_argument("mapping")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--throttle", type=float, default=0.0,
                   help="seconds to pause between batches (spread the load)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_reorg_run)

    token = cmds.add_parser("token", help="keys in the PKCS#11 token")
    token_cmds = token.add_subparsers(dest="token_command", required=True)
    p = token_cmds.add_parser("init", help="generate and certify the CA's keys in the token")
    p.add_argument("--algorithm", default="ec-p256", choices=["ec-p256", "ec-p384",
                                                               "rsa-3072"])
    p.add_argument("--force", action="store_true", help="replace existing certificate files")
    p.add_argument("--root-key", help="the root's encrypted key file (default: "
                                      "<pki>/root-ca.key.pem)")
    p.set_defaults(func=cmd_token_init)
