"""``vnegov identity ...``: administer the identity provider from the command line.

    vnegov identity client add FILE.json        register (or update) a client from its metadata
    vnegov identity client add-example --client-id ID --redirect-uri URL --key-out KEY.pem
                                                a FAPI client with a fresh P-256 key (for the example)
    vnegov identity client list | disable ID
    vnegov identity account create --kind citizen --identifier 079084000123 --name "..."
                                   --born 1984-05-17 --sex male [--province 79] [--password-stdin]
    vnegov identity account proof ACCOUNT --place "..." --officer CA-1 --valid-until 2040-05-16
    vnegov identity account lock ACCOUNT --reason "..." | unlock ACCOUNT
    vnegov identity account totp ACCOUNT        print a new TOTP secret's otpauth:// URI
    vnegov identity account enrol-device ACCOUNT   print a one-time device enrolment code
    vnegov identity passwords import-breached FILE   SHA-1 digests of breached passwords
    vnegov identity keys rotate | list
"""

from __future__ import annotations

import argparse
import datetime as dt
import getpass
import json
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

__all__ = ["register"]

Handler = Callable[[argparse.Namespace, Mapping[str, str]], int]


def _parts(args: argparse.Namespace, environ: Mapping[str, str]) -> Any:
    from server.cli import load_config_for
    from server.identity.module import assemble
    from server.storage.db import Database

    config = load_config_for(args, environ)
    db = Database(config.storage.url)
    return assemble(config, db, lambda: dt.datetime.now(dt.UTC)), db


def _run(fn: Callable[[Any, argparse.Namespace], int]) -> Handler:
    def handler(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
        from vnid.errors import VnidError

        parts, db = _parts(args, environ)
        try:
            return fn(parts, args)
        except VnidError as exc:
            print(f"vnegov: {exc.reason}: {exc.message}", file=sys.stderr)
            return 1
        finally:
            db.dispose()
    return handler


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


# ---------------------------------------------------------------------- clients


def client_add(parts: Any, args: argparse.Namespace) -> int:
    from server.identity.state import ClientDirectory
    from vnid.oauth2.clients import Client

    client = Client.from_metadata(json.loads(Path(args.file).read_text(encoding="utf-8")))
    ClientDirectory.save(parts.store.db, client, _now(), actor="cli")
    print(f"registered client {client.client_id} ({client.profile.value})")
    return 0


def client_add_example(parts: Any, args: argparse.Namespace) -> int:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from jwt.algorithms import ECAlgorithm

    from server.identity.state import ClientDirectory
    from vnid.oauth2.clients import Client

    key = ec.generate_private_key(ec.SECP256R1())
    out = Path(args.key_out)
    out.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                      serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
    out.chmod(0o600)
    jwk = ECAlgorithm.to_jwk(key.public_key(), as_dict=True)
    base = args.redirect_uri.rsplit("/", 1)[0]
    client = Client.from_metadata({
        "client_id": args.client_id, "client_name": args.name or args.client_id,
        "profile": "fapi2", "redirect_uris": [args.redirect_uri],
        "post_logout_redirect_uris": [args.redirect_uri + "/logged-out"],
        "backchannel_logout_uri": base + "/backchannel-logout",
        "jwks": {"keys": [{**jwk, "kid": f"{args.client_id}-k1", "use": "sig",
                           "alg": "ES256"}]},
        "claim_profile": "national_portal", "scope": "openid profile national_id",
    })
    ClientDirectory.save(parts.store.db, client, _now(), actor="cli")
    print(f"registered client {client.client_id}; private key in {out}")
    return 0


def client_list(parts: Any, args: argparse.Namespace) -> int:
    for client in parts.clients.all():
        print(f"{client.client_id}\t{client.profile.value}\t{client.client_name}")
    return 0


def client_disable(parts: Any, args: argparse.Namespace) -> int:
    from server.identity.state import ClientDirectory

    if not ClientDirectory.disable(parts.store.db, args.client_id, _now(), actor="cli"):
        print(f"no stored client {args.client_id} (clients from the configuration file are "
              "removed there)", file=sys.stderr)
        return 1
    print(f"disabled {args.client_id}")
    return 0


# ---------------------------------------------------------------------- accounts


def account_create(parts: Any, args: argparse.Namespace) -> int:
    from vnid.accounts import AccountKind
    from vnid.personal_id import Sex

    password = None
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    elif args.password_prompt:
        password = getpass.getpass("Password: ")
    account = parts.admin.create(
        kind=AccountKind(args.kind), identifier=args.identifier, full_name=args.name,
        now=_now(), date_of_birth=dt.date.fromisoformat(args.born) if args.born else None,
        sex=Sex(args.sex) if args.sex else None, nationality=args.nationality,
        province_code=args.province, guardian_request=args.guardian_request,
        residence_card=args.residence_card, password=password, actor="cli")
    print(account.account_id)
    return 0


def account_proof(parts: Any, args: argparse.Namespace) -> int:
    from vnid.accounts import EvidenceType, ProofingMethod, ProofingRecord

    evidence = {"citizen": EvidenceType.CHIP_ID_CARD,
                "foreign_resident": EvidenceType.RESIDENCE_CARD,
                "organisation": EvidenceType.ORGANISATION_REGISTRATION}
    current = parts.admin.get(args.account)
    record = ProofingRecord(
        evidence_type=evidence[current.kind.value], method=ProofingMethod(args.method),
        place=args.place, officer=args.officer, proofed_at=_now(),
        evidence_valid_until=dt.date.fromisoformat(args.valid_until) if args.valid_until
        else None)
    account = parts.admin.record_proofing(args.account, record, _now(), actor="cli")
    print(f"{account.account_id} is at {account.level.acr}")
    return 0


def account_lock(parts: Any, args: argparse.Namespace) -> int:
    parts.admin.lock(args.account, args.reason, _now(), actor="cli")
    print(f"locked {args.account}")
    return 0


def account_unlock(parts: Any, args: argparse.Namespace) -> int:
    parts.admin.unlock(args.account, _now(), actor="cli")
    print(f"unlocked {args.account}")
    return 0


def account_totp(parts: Any, args: argparse.Namespace) -> int:
    _secret, uri = parts.admin.enrol_totp(args.account, _now(), actor="cli")
    print(uri)
    return 0


def account_enrol_device(parts: Any, args: argparse.Namespace) -> int:
    print(parts.provider.devices.create_enrolment(args.account, _now(), actor="cli"))
    return 0


def evidence_verify(parts: Any, args: argparse.Namespace) -> int:
    """Re-check chip evidence against today's trust list and CRLs (identity.chip)."""
    from vnid.errors import FailedPrecondition

    if parts.chip is None:
        raise FailedPrecondition("chip proofing is not configured (identity.chip.csca_file or "
                                 "master_list_file)", reason="CHIP_PROOFING_DISABLED")
    if args.all == bool(args.account):
        print("vnegov: name one ACCOUNT or give --all [USAGE]", file=sys.stderr)
        return 2
    outcomes = parts.chip.reverify_all(_now(), actor="cli") if args.all else \
        parts.chip.reverify(args.account, _now(), actor="cli")
    failed = 0
    for o in outcomes:
        failed += not o.ok
        line = f"{o.account_id}  evidence {o.evidence_id}  {'valid' if o.ok else o.reason}"
        if o.level_lowered:
            line += "  (account lowered to level 1)"
        print(line)
    print(f"{len(outcomes)} evidence record(s) checked, {failed} no longer valid")
    return 1 if failed else 0


def passwords_import(parts: Any, args: argparse.Namespace) -> int:
    from server.identity.state import SqlBreachedPasswords

    with open(args.file, "rb") as fh:
        added = SqlBreachedPasswords.load(parts.store.db, fh)
    print(f"{added} breached-password digests added")
    return 0


# ---------------------------------------------------------------------- keys


def keys_rotate(parts: Any, args: argparse.Namespace) -> int:
    changes = parts.keys.rotate(_now())
    print("\n".join(changes) if changes else "keys are up to date")
    return 0


def keys_list(parts: Any, args: argparse.Namespace) -> int:
    for record in parts.keys.ring.records:
        print(f"{record.kid}\t{record.alg}\t{record.state.value}\t{record.created_at:%Y-%m-%d}")
    return 0


def register(subparsers: Any) -> None:
    identity = subparsers.add_parser("identity", help="the identity provider")
    groups = identity.add_subparsers(dest="identity_command", required=True)

    client = groups.add_parser("client", help="registered clients").add_subparsers(
        dest="client_command", required=True)
    p = client.add_parser("add", help="register a client from a metadata JSON file")
    p.add_argument("file")
    p.set_defaults(func=_run(client_add))
    p = client.add_parser("add-example", help="a FAPI client with a new key, for the example")
    p.add_argument("--client-id", required=True)
    p.add_argument("--redirect-uri", required=True)
    p.add_argument("--key-out", required=True)
    p.add_argument("--name", default="")
    p.set_defaults(func=_run(client_add_example))
    p = client.add_parser("list")
    p.set_defaults(func=_run(client_list))
    p = client.add_parser("disable")
    p.add_argument("client_id")
    p.set_defaults(func=_run(client_disable))

    account = groups.add_parser("account", help="accounts").add_subparsers(
        dest="account_command", required=True)
    p = account.add_parser("create")
    p.add_argument("--kind", required=True,
                   choices=["citizen", "foreign_resident", "organisation"])
    p.add_argument("--identifier", required=True)
    p.add_argument("--name", required=True)
    p.add_argument("--born", default="")
    p.add_argument("--sex", choices=["male", "female"], default="")
    p.add_argument("--nationality", default="VN")
    p.add_argument("--province", default="")
    p.add_argument("--guardian-request", action="store_true")
    p.add_argument("--residence-card", action="store_true")
    p.add_argument("--password-stdin", action="store_true")
    p.add_argument("--password-prompt", action="store_true")
    p.set_defaults(func=_run(account_create))
    p = account.add_parser("proof", help="record in-person proofing (level 2)")
    p.add_argument("account")
    p.add_argument("--place", required=True)
    p.add_argument("--officer", required=True)
    p.add_argument("--method", default="in_person_chip_and_face",
                   choices=["in_person_chip_and_face", "in_person_chip_face_and_fingerprint"])
    p.add_argument("--valid-until", default="")
    p.set_defaults(func=_run(account_proof))
    p = account.add_parser("lock")
    p.add_argument("account")
    p.add_argument("--reason", required=True)
    p.set_defaults(func=_run(account_lock))
    p = account.add_parser("unlock")
    p.add_argument("account")
    p.set_defaults(func=_run(account_unlock))
    p = account.add_parser("totp", help="enrol a new TOTP secret and print its URI")
    p.add_argument("account")
    p.set_defaults(func=_run(account_totp))
    p = account.add_parser("enrol-device", help="print a device enrolment code")
    p.add_argument("account")
    p.set_defaults(func=_run(account_enrol_device))

    passwords = groups.add_parser("passwords", help="password policy data").add_subparsers(
        dest="passwords_command", required=True)
    p = passwords.add_parser("import-breached", help="import a Pwned Passwords SHA-1 file")
    p.add_argument("file")
    p.set_defaults(func=_run(passwords_import))

    evidence = groups.add_parser("evidence", help="level-2 evidence from chip ID cards") \
        .add_subparsers(dest="evidence_command", required=True)
    p = evidence.add_parser(
        "verify", help="re-check an account's chip evidence (or every account's, with --all) "
        "against today's CSCA trust list and CRLs; a revoked document signer marks the evidence "
        "revoked and lowers the accounts it raised to level 2; exit 1 when any is not valid")
    p.add_argument("account", nargs="?", default="", help="the account id")
    p.add_argument("--all", action="store_true", help="every account holding chip evidence")
    p.set_defaults(func=_run(evidence_verify))

    keys = groups.add_parser("keys", help="signing keys").add_subparsers(
        dest="keys_command", required=True)
    p = keys.add_parser("rotate")
    p.set_defaults(func=_run(keys_rotate))
    p = keys.add_parser("list")
    p.set_defaults(func=_run(keys_list))
