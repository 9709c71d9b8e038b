"""Level-2 proofing from the chip ID card, read by the citizen app.

The flow: the app asks for a challenge (bound to the account and its registered device key); it
reads the chip over NFC, has the chip sign the challenge (active authentication) and sends the
data groups, the SOD and the chip's answer in a statement signed with the device key. The server
verifies the statement, uses the challenge once, verifies the chip (:mod:`vnid.icao9303`), checks
that the chip, the MRZ and the account agree, records the evidence and, where the policy allows,
raises the account to level 2. Every step is audited; a failed check changes nothing but the
challenge (used) and the audit log.

Policies (``ChipPolicy``): ``chip_and_device`` raises the account when the chip proved genuine by
active authentication and the submission was signed by the account's registered device key (a
possession factor kept in the phone's secure hardware, unlocked by the user); ``chip_and_in_person``
never raises by itself: the chip's evidence fills the verified profile of an account whose level
comes from an in-person record. Weak evidence (no active authentication) never raises.

A face-match result the app reports is stored as the app's statement, under ``face_match``, and is
never presented as a check the server made.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from vnid.accounts import (
    Account,
    AccountKind,
    EvidenceType,
    ProofingMethod,
    ProofingRecord,
    raise_to_level2,
)
from vnid.assurance import AssuranceLevel
from vnid.authn.device import peek_kid, verify_device_statement
from vnid.errors import FailedPrecondition, InvalidInput, NotFound, VnidError
from vnid.icao9303 import ChipError, CscaTrustList, check_consistency, verify_chip
from vnid.icao9303.sod import verify_sod
from vnid.oidc.ports import ChipChallenge, ChipEvidenceRecord, IdentityEvent, ProviderStore
from vnid.personal_id import Sex

__all__ = ["ChipPolicy", "ChipProofing", "Reverification", "STATEMENT_TYPE"]

STATEMENT_TYPE = "chip-proofing+jwt"
_MAX_GROUP = 256 * 1024
_GROUPS = {1, 2, 11, 12, 13, 14, 15}


class ChipPolicy(StrEnum):
    """When chip evidence raises an account to level 2 (see the module's notes)."""

    CHIP_AND_DEVICE = "chip_and_device"
    CHIP_AND_IN_PERSON = "chip_and_in_person"


@dataclass(frozen=True, slots=True)
class Reverification:
    """The outcome of re-checking one piece of stored evidence."""

    evidence_id: str
    account_id: str
    ok: bool
    reason: str  # "" when ok, else the ChipError reason
    level_lowered: bool


def _b64(value: Any, what: str) -> bytes:
    if not isinstance(value, str) or len(value) > 4 * _MAX_GROUP // 3 + 4:
        raise InvalidInput(f"{what} must be base64url text", reason="CHIP_MALFORMED")
    try:
        return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except ValueError:
        raise InvalidInput(f"{what} is not base64url", reason="CHIP_MALFORMED") from None


def _unverified_claims(token: str) -> Mapping[str, Any]:
    parts = token.split(".")
    if len(parts) != 3:
        raise InvalidInput("the submission is not a compact JWS", reason="CHIP_MALFORMED")
    try:
        claims = json.loads(_b64(parts[1], "the payload"))
    except (ValueError, RecursionError):  # RecursionError: JSON nested too deeply
        raise InvalidInput("the submission's payload is not JSON", reason="CHIP_MALFORMED") \
            from None
    if not isinstance(claims, dict):
        raise InvalidInput("the submission's payload is not an object", reason="CHIP_MALFORMED")
    return claims


class ChipProofing:
    """Chip challenges, submissions, stored evidence and its re-verification."""

    def __init__(self, store: ProviderStore, trust: CscaTrustList, *, audience: str,
                 policy: ChipPolicy = ChipPolicy.CHIP_AND_DEVICE,
                 challenge_ttl: dt.timedelta = dt.timedelta(minutes=5)) -> None:
        self.store, self.trust, self.audience = store, trust, audience
        self.policy, self.challenge_ttl = policy, challenge_ttl

    # ---------------------------------------------------------------- challenge
    def create_challenge(self, account_id: str, now: dt.datetime, *,
                         actor: str = "") -> ChipChallenge:
        with self.store.transaction(actor=actor) as tx:
            account = tx.account(account_id)
            if account is None:
                raise NotFound("no such account")
            if account.kind is not AccountKind.CITIZEN:
                raise FailedPrecondition("chip proofing is for citizens' accounts",
                                         reason="NOT_ELIGIBLE")
            device = tx.active_device(account_id)
            if device is None:
                raise FailedPrecondition("the account has no registered device key",
                                         reason="NO_DEVICE")
            challenge = ChipChallenge(
                challenge_id=secrets.token_urlsafe(16), account_id=account_id,
                device_id=device.device_id, nonce=secrets.token_bytes(8),
                expires_at=now + self.challenge_ttl)
            tx.put_chip_challenge(challenge)
            tx.record(IdentityEvent(action="chip.challenge", account_id=account_id,
                                    details={"device": device.device_id}))
        return challenge

    # ---------------------------------------------------------------- submission
    def submit(self, statement: str, now: dt.datetime, *,
               actor: str = "") -> tuple[Account, ChipEvidenceRecord]:
        """Verify a signed chip submission; see the module's notes. Raises a :class:`VnidError`
        whose reason names the failed check; the account is then unchanged."""
        claims = _unverified_claims(statement)
        challenge_id = claims.get("challenge")
        if not isinstance(challenge_id, str) or not 8 <= len(challenge_id) <= 64:
            raise InvalidInput("the submission names no challenge", reason="CHIP_MALFORMED")
        with self.store.reader() as tx:
            challenge = tx.chip_challenge(challenge_id)
            device = tx.device(challenge.device_id) if challenge else None
            account = tx.account(challenge.account_id) if challenge else None
        if challenge is None or device is None or account is None:
            raise FailedPrecondition("unknown challenge", reason="CHIP_CHALLENGE_UNKNOWN")
        # The statement must be signed by the device the challenge was issued to, and that
        # device must still be the account's active one.
        try:
            if peek_kid(statement) != device.device_id or not device.active:
                raise VnidError("device", reason="DEVICE_SIGNATURE_INVALID")
            verified = verify_device_statement(statement, device.public_jwk, typ=STATEMENT_TYPE,
                                               audience=self.audience, now=now,
                                               required=("challenge", "sod"))
        except (VnidError, RecursionError):  # RecursionError: a header nested too deeply
            self._audit_failure(challenge, "DEVICE_SIGNATURE_INVALID", actor)
            raise InvalidInput("the submission is not signed by the account's device key",
                               reason="DEVICE_SIGNATURE_INVALID") from None
        if challenge.expires_at < now:
            self._audit_failure(challenge, "CHIP_CHALLENGE_EXPIRED", actor)
            raise FailedPrecondition("the challenge has expired; ask for a new one",
                                     reason="CHIP_CHALLENGE_EXPIRED")
        with self.store.transaction(actor=actor) as tx:
            first = tx.use_chip_challenge(challenge_id, now)
            if not first:
                tx.record(IdentityEvent(action="chip.submit", outcome="CHIP_CHALLENGE_USED",
                                        account_id=challenge.account_id))
        if not first:
            raise FailedPrecondition("the challenge was already used", reason="CHIP_CHALLENGE_USED")
        try:
            payload = verified.claims
            groups_raw = payload.get("data_groups")
            if not isinstance(groups_raw, dict) or len(groups_raw) > len(_GROUPS):
                raise InvalidInput("data_groups must map data-group numbers to base64url",
                                   reason="CHIP_MALFORMED")
            groups: dict[int, bytes] = {}
            for key, value in groups_raw.items():
                if not str(key).isdigit() or int(key) not in _GROUPS:
                    raise InvalidInput(f"data group {key!r} is not accepted",
                                       reason="CHIP_MALFORMED")
                groups[int(key)] = _b64(value, f"DG{key}")
            sod = _b64(payload["sod"], "sod")
            answer = _b64(payload["aa_signature"], "aa_signature") \
                if payload.get("aa_signature") else None
            evidence = verify_chip(sod=sod, data_groups=groups, trust=self.trust, at=now,
                                   challenge=challenge.nonce, aa_signature=answer,
                                   chip_authentication_reported=bool(
                                       payload.get("chip_authentication") is True))
            check_consistency(evidence, personal_id=account.identifier,
                              full_name=account.full_name, date_of_birth=account.date_of_birth)
        except VnidError as exc:
            self._audit_failure(challenge, exc.reason, actor)
            raise
        face = payload.get("face_match")
        face_text = json.dumps(face, ensure_ascii=False, sort_keys=True)[:500] \
            if isinstance(face, dict) else ""
        raise_level = (self.policy is ChipPolicy.CHIP_AND_DEVICE
                       and evidence.strength == "strong"
                       and account.level < AssuranceLevel.LOA2)
        record = ChipEvidenceRecord(
            evidence_id=secrets.token_hex(16), account_id=account.account_id, verified_at=now,
            genuineness=evidence.genuineness.value, strength=evidence.strength, sod=sod,
            ds_fingerprint=evidence.ds_fingerprint, csca_subject=evidence.csca_subject,
            data_group_hashes={str(k): v for k, v in evidence.data_group_hashes.items()},
            claims=evidence.personal_data.claims(),
            document_expires=evidence.personal_data.date_of_expiry, face_match=face_text,
            device_id=challenge.device_id, level_raised=raise_level)
        try:
            with self.store.transaction(actor=actor) as tx:
                current = tx.account(account.account_id)
                if current is None:
                    raise NotFound("no such account")
                if (current.identifier, current.full_name, current.date_of_birth) != (
                        account.identifier, account.full_name, account.date_of_birth):
                    # The account changed while the chip was being checked: check it again against
                    # what the account says now, inside the transaction that records the evidence.
                    check_consistency(evidence, personal_id=current.identifier,
                                      full_name=current.full_name,
                                      date_of_birth=current.date_of_birth)
                # "Declare once": the verified profile takes the chip's data (the name as the card
                # spells it, with its diacritics; the date of birth and sex), which agreed with the
                # account above.
                data = evidence.personal_data
                sex = {"M": Sex.MALE, "F": Sex.FEMALE}.get(evidence.mrz.sex, current.sex)
                current = dataclasses.replace(
                    current, full_name=data.full_name or current.full_name,
                    date_of_birth=data.date_of_birth or current.date_of_birth, sex=sex)
                tx.save_account(current)
                if raise_level and current.level < AssuranceLevel.LOA2:
                    proofing = ProofingRecord(
                        evidence_type=EvidenceType.CHIP_ID_CARD, method=ProofingMethod.REMOTE_CHIP_NFC,
                        place="citizen app (chip read over NFC)",
                        officer=f"device:{challenge.device_id}", proofed_at=now,
                        evidence_valid_until=evidence.personal_data.date_of_expiry)
                    current = raise_to_level2(current, proofing, now=now)
                    tx.save_account(current)
                    tx.add_proofing(current.account_id, proofing)
                tx.add_chip_evidence(record)
                tx.record(IdentityEvent(action="chip.proofing", account_id=account.account_id,
                                        details={"evidence": record.evidence_id,
                                                 "genuineness": record.genuineness,
                                                 "strength": record.strength,
                                                 "ds": record.ds_fingerprint[:16],
                                                 "level_raised": raise_level,
                                                 "face_match_reported_by_app": bool(face_text)}))
        except VnidError as exc:
            self._audit_failure(challenge, exc.reason, actor)
            raise
        return current, record

    def _audit_failure(self, challenge: ChipChallenge, reason: str, actor: str) -> None:
        with self.store.transaction(actor=actor) as tx:
            tx.record(IdentityEvent(action="chip.submit", outcome=reason,
                                    account_id=challenge.account_id))

    # ---------------------------------------------------------------- evidence
    def reverify_all(self, now: dt.datetime, *, trust: CscaTrustList | None = None,
                     actor: str = "") -> list[Reverification]:
        """:meth:`reverify` for every account holding chip evidence (after a CSCA or document
        signer was revoked): the outcomes, including the accounts whose level was lowered."""
        with self.store.reader() as tx:
            accounts = tx.chip_evidence_accounts()
        out: list[Reverification] = []
        for account_id in accounts:
            out.extend(self.reverify(account_id, now, trust=trust, actor=actor))
        return out

    def evidence(self, account_id: str) -> list[ChipEvidenceRecord]:
        with self.store.reader() as tx:
            if tx.account(account_id) is None:
                raise NotFound("no such account")
            return tx.chip_evidence(account_id)

    def reverify(self, account_id: str, now: dt.datetime, *,
                 trust: CscaTrustList | None = None, actor: str = "") -> list[Reverification]:
        """Re-check an account's stored evidence against today's trust list and CRLs (the SOD's
        signature, its document signer's chain and revocation, the recorded hashes), with the
        certificates' validity as of when the chip was read. Evidence
        whose document signer was revoked is marked so, and an account raised by it goes back to
        level 1; every outcome is audited."""
        trust = trust or self.trust
        out: list[Reverification] = []
        for record in self.evidence(account_id):
            reason = ""
            try:
                # Validity as of when the chip was read (a certificate that has expired since
                # must not hide a revocation); the trust list and CRLs are today's.
                verified = verify_sod(record.sod, trust, {}, at=record.verified_at, required=())
                listed = {str(k): v.hex() for k, v in verified.lds.hashes.items()}
                if any(listed.get(k) != v for k, v in record.data_group_hashes.items()):
                    raise ChipError("the recorded hashes are not the SOD's",
                                    reason="CHIP_DATA_GROUP_ALTERED")
            except ChipError as exc:
                reason = exc.reason
            lowered = False
            revoked = reason in ("CHIP_DS_REVOKED", "CHIP_DS_UNTRUSTED")
            with self.store.transaction(actor=actor) as tx:
                if revoked and record.status == "valid":
                    tx.set_chip_evidence_status(record.evidence_id, "revoked", reason)
                    account = tx.account(account_id)
                    proofing = tx.proofing(account_id)
                    if (account is not None and record.level_raised
                            and account.level >= AssuranceLevel.LOA2 and proofing is not None
                            and proofing.method is ProofingMethod.REMOTE_CHIP_NFC):
                        tx.save_account(dataclasses.replace(
                            account, level=AssuranceLevel.LOA1, proofing=None,
                            card_valid_until=None))
                        lowered = True
                tx.record(IdentityEvent(action="chip.reverify", outcome=reason or "OK",
                                        account_id=account_id,
                                        details={"evidence": record.evidence_id,
                                                 "level_lowered": lowered}))
            out.append(Reverification(record.evidence_id, account_id, not reason, reason,
                                      lowered))
        return out

