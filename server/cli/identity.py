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
import functools
import getpass
import json
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import click

from server.cli.kit import Arg, CliError, VnegovCommand, emit, handler, json_option, progress

__all__ = ["COMMANDS"]

Handler = Callable[[argparse.Namespace, Mapping[str, str]], int]


def _parts(args: argparse.Namespace, environ: Mapping[str, str]) -> Any:
    from server.cli.commands import load_config_for
    from server.identity.module import assemble
    from server.storage.db import Database

    config = load_config_for(args, environ)
    db = Database(config.storage.url)
    return assemble(config, db, lambda: dt.datetime.now(dt.UTC)), db


def _run(fn: Callable[[Any, argparse.Namespace], int]) -> Handler:
    """``fn(parts, args)`` on the assembled identity provider; a refusal (VnidError) ends the
    command as ``vnegov: <message> [REASON]`` with its exit code (:mod:`server.cli.kit`)."""

    @functools.wraps(fn)
    def run(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
        parts, db = _parts(args, environ)
        try:
            return fn(parts, args)
        finally:
            db.dispose()
    return run


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


# ---------------------------------------------------------------------- clients


def client_add(parts: Any, args: argparse.Namespace) -> int:
    from server.identity.state import ClientDirectory
    from vnid.oauth2.clients import Client

    client = Client.from_metadata(json.loads(Path(args.file).read_text(encoding="utf-8")))
    ClientDirectory.save(parts.store.db, client, _now(), actor="cli")
    emit(args, {"client_id": client.client_id, "profile": client.profile.value},
         f"registered client {client.client_id} ({client.profile.value})")
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
    emit(args, {"client_id": client.client_id, "key": str(out)},
         f"registered client {client.client_id}; private key in {out}")
    return 0


def client_list(parts: Any, args: argparse.Namespace) -> int:
    clients = list(parts.clients.all())
    emit(args, [{"client_id": c.client_id, "profile": c.profile.value, "name": c.client_name}
                for c in clients],
         "\n".join(f"{c.client_id}\t{c.profile.value}\t{c.client_name}" for c in clients))
    return 0


def client_disable(parts: Any, args: argparse.Namespace) -> int:
    from server.identity.state import ClientDirectory

    if not ClientDirectory.disable(parts.store.db, args.client_id, _now(), actor="cli"):
        raise CliError(f"no stored client {args.client_id} (clients from the configuration "
                       "file are removed there)", "CLIENT_NOT_FOUND")
    emit(args, {"client_id": args.client_id, "disabled": True}, f"disabled {args.client_id}")
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
    emit(args, {"account_id": account.account_id}, account.account_id)
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
    emit(args, {"account_id": account.account_id, "acr": account.level.acr},
         f"{account.account_id} is at {account.level.acr}")
    return 0


def account_lock(parts: Any, args: argparse.Namespace) -> int:
    parts.admin.lock(args.account, args.reason, _now(), actor="cli")
    emit(args, {"account_id": args.account, "locked": True}, f"locked {args.account}")
    return 0


def account_unlock(parts: Any, args: argparse.Namespace) -> int:
    parts.admin.unlock(args.account, _now(), actor="cli")
    emit(args, {"account_id": args.account, "locked": False}, f"unlocked {args.account}")
    return 0


def account_totp(parts: Any, args: argparse.Namespace) -> int:
    _secret, uri = parts.admin.enrol_totp(args.account, _now(), actor="cli")
    emit(args, {"account_id": args.account, "uri": uri}, uri)
    return 0


def account_enrol_device(parts: Any, args: argparse.Namespace) -> int:
    code = parts.provider.devices.create_enrolment(args.account, _now(), actor="cli")
    emit(args, {"account_id": args.account, "enrolment_code": code}, code)
    return 0


def evidence_verify(parts: Any, args: argparse.Namespace) -> int:
    """Re-check chip evidence against today's trust list and CRLs (identity.chip)."""
    from vnid.errors import FailedPrecondition

    if parts.chip is None:
        raise FailedPrecondition("chip proofing is not configured (identity.chip.csca_file or "
                                 "master_list_file)", reason="CHIP_PROOFING_DISABLED")
    if args.all == bool(args.account):
        raise CliError("name one ACCOUNT or give --all", "USAGE")
    outcomes = parts.chip.reverify_all(_now(), actor="cli") if args.all else \
        parts.chip.reverify(args.account, _now(), actor="cli")
    failed = 0
    lines = []
    for o in outcomes:
        failed += not o.ok
        line = f"{o.account_id}  evidence {o.evidence_id}  {'valid' if o.ok else o.reason}"
        if o.level_lowered:
            line += "  (account lowered to level 1)"
        lines.append(line)
    lines.append(f"{len(outcomes)} evidence record(s) checked, {failed} no longer valid")
    emit(args, {"checked": len(outcomes), "not_valid": failed, "evidence": [
        {"account_id": o.account_id, "evidence_id": o.evidence_id, "valid": o.ok,
         "reason": "" if o.ok else o.reason, "level_lowered": o.level_lowered}
        for o in outcomes]}, "\n".join(lines))
    return 1 if failed else 0


def passwords_import(parts: Any, args: argparse.Namespace) -> int:
    from server.identity.state import SqlBreachedPasswords

    size = Path(args.file).stat().st_size
    with open(args.file, "rb") as fh, progress("importing", size, enabled=size > 1 << 20) as bar:
        added = SqlBreachedPasswords.load(parts.store.db, _Counting(fh, bar))
    emit(args, {"added": added}, f"{added} breached-password digests added")
    return 0


# ---------------------------------------------------------------------- keys


def keys_rotate(parts: Any, args: argparse.Namespace) -> int:
    changes = parts.keys.rotate(_now())
    emit(args, {"changes": list(changes)},
         "\n".join(changes) if changes else "keys are up to date")
    return 0


def keys_list(parts: Any, args: argparse.Namespace) -> int:
    records = list(parts.keys.ring.records)
    emit(args, [{"kid": r.kid, "alg": r.alg, "state": r.state.value,
                 "created_at": r.created_at.isoformat()} for r in records],
         "\n".join(f"{r.kid}\t{r.alg}\t{r.state.value}\t{r.created_at:%Y-%m-%d}"
                   for r in records))
    return 0


class _Counting:
    """A binary file that moves a progress bar as it is read."""

    def __init__(self, fh: Any, bar: Any) -> None:
        self._fh = fh
        self._bar = bar

    def read(self, size: int = -1) -> bytes:
        data: bytes = self._fh.read(size)
        self._bar.update(advance=len(data))
        return data

    def readline(self, size: int = -1) -> bytes:
        data: bytes = self._fh.readline(size)
        self._bar.update(advance=len(data))
        return data

    def __iter__(self) -> Any:
        for line in self._fh:
            self._bar.update(advance=len(line))
            yield line


# ------------------------------------------------------------------------ the command tree
ACCOUNT: dict[str, Any] = dict(cls=Arg, help="the account id")


def _command(group: click.Group, name: str, fn: Callable[[Any, argparse.Namespace], int],
             help: str, *params: Callable[[Any], Any]) -> click.Command:  # noqa: A002
    callback: Any = handler(_run(fn))
    for param in reversed((*params, json_option)):
        callback = param(callback)
    return group.command(name, cls=VnegovCommand, help=help)(callback)


@click.group("identity")
def identity() -> None:
    """The identity provider: clients, accounts, passwords, evidence, keys."""


@identity.group("client")
def client() -> None:
    """Registered clients (relying parties)."""


_command(client, "add", client_add, "Register (or update) a client from its metadata JSON file.",
         click.argument("file", type=click.Path(exists=True, dir_okay=False), cls=Arg,
                        help="the client's metadata (JSON)"))
_command(client, "add-example", client_add_example,
         "Register a FAPI 2.0 client with a fresh P-256 key (for the examples).",
         click.option("--client-id", required=True, help="the new client's id"),
         click.option("--redirect-uri", required=True, help="its redirect URI"),
         click.option("--key-out", required=True, type=click.Path(dir_okay=False),
                      help="where to write its private key (PEM, mode 600)"),
         click.option("--name", default="", help="display name (default the client id)"))
_command(client, "list", client_list, "List the registered clients.")
_command(client, "disable", client_disable, "Disable a client registered in the database.",
         click.argument("client_id", cls=Arg, help="the client's id"))


@identity.group("account")
def account() -> None:
    """Citizens', foreign residents' and organisations' accounts."""


_command(account, "create", account_create, "Create an account (level 1 until proofed).",
         click.option("--kind", required=True,
                      type=click.Choice(["citizen", "foreign_resident", "organisation"]),
                      help="the kind of account"),
         click.option("--identifier", required=True,
                      help="personal ID number, residence card number or tax code"),
         click.option("--name", required=True, help="full name"),
         click.option("--born", default="", help="date of birth, YYYY-MM-DD"),
         click.option("--sex", type=click.Choice(["male", "female", ""]), default="",
                      help="sex as on the ID card"),
         click.option("--nationality", default="VN", show_default=True,
                      help="nationality (ISO 3166 alpha-2)"),
         click.option("--province", default="", help="province code of residence"),
         click.option("--guardian-request", is_flag=True,
                      help="created on a guardian's request (a minor's account)"),
         click.option("--residence-card", is_flag=True,
                      help="the identifier is a residence card number"),
         click.option("--password-stdin", is_flag=True, help="read the password from stdin"),
         click.option("--password-prompt", is_flag=True, help="ask for the password"))
_command(account, "proof", account_proof, "Record in-person proofing (raises to level 2).",
         click.argument("account", **ACCOUNT),
         click.option("--place", required=True, help="where the proofing took place"),
         click.option("--officer", required=True, help="the officer's id"),
         click.option("--method", default="in_person_chip_and_face", show_default=True,
                      type=click.Choice(["in_person_chip_and_face",
                                         "in_person_chip_face_and_fingerprint"]),
                      help="how the person was proofed"),
         click.option("--valid-until", default="", help="evidence valid until, YYYY-MM-DD"))
_command(account, "lock", account_lock, "Lock an account.",
         click.argument("account", **ACCOUNT),
         click.option("--reason", required=True, help="why (recorded in the audit log)"))
_command(account, "unlock", account_unlock, "Unlock an account.",
         click.argument("account", **ACCOUNT))
_command(account, "totp", account_totp, "Enrol a new TOTP secret and print its otpauth:// URI.",
         click.argument("account", **ACCOUNT))
_command(account, "enrol-device", account_enrol_device,
         "Print a one-time device enrolment code for the citizen app.",
         click.argument("account", **ACCOUNT))


@identity.group("passwords")
def passwords() -> None:
    """Password policy data."""


_command(passwords, "import-breached", passwords_import,
         "Import a Pwned Passwords SHA-1 file (progress bar for large files).",
         click.argument("file", type=click.Path(exists=True, dir_okay=False), cls=Arg,
                        help="SHA-1 digests, one per line (HASH or HASH:COUNT)"))


@identity.group("evidence")
def evidence() -> None:
    """Level-2 evidence from chip ID cards."""


_command(evidence, "verify", evidence_verify,
         "Re-check an account's chip evidence (or every account's, with --all) against today's "
         "CSCA trust list and CRLs; a revoked document signer marks the evidence revoked and "
         "lowers the accounts it raised to level 2; exit 1 when any is not valid.",
         click.argument("account", required=False, default="", **ACCOUNT),
         click.option("--all", "all", is_flag=True, help="every account holding chip evidence"))


@identity.group("keys")
def keys() -> None:
    """The identity provider's signing keys."""


_command(keys, "rotate", keys_rotate, "Rotate the signing keys that are due.")
_command(keys, "list", keys_list, "List the signing keys and their states.")

COMMANDS = [identity]
