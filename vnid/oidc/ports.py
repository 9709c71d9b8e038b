"""The ports the provider needs: storage (one transaction per request) and the client registry.

The server implements them on SQLAlchemy (SQLite or PostgreSQL). Every method of
:class:`StoreTransaction` runs inside the transaction it was obtained from; operations that must
not race (taking a code, rotating a refresh token, first use of a ``jti``) are atomic in the store.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Protocol

from vnid.accounts import Account, ProofingRecord
from vnid.authn.device import DeviceKey
from vnid.authn.throttle import ThrottleState
from vnid.jose.keys import SigningKeyRecord
from vnid.oauth2.clients import Client
from vnid.oidc.records import (
    Approval,
    AuthorizationCode,
    AuthorizationRequest,
    Interaction,
    ProviderSession,
    TokenRecord,
)

__all__ = [
    "ClientRegistry",
    "IdentityEvent",
    "ProviderStore",
    "SessionClient",
    "StoreTransaction",
]


@dataclass(frozen=True, slots=True)
class IdentityEvent:
    """An audit record of something that matters (never secrets, tokens or personal data)."""

    action: str  # e.g. "login.password", "code.reuse", "device.register"
    outcome: str = "OK"  # "OK" or a reason such as "INVALID_CREDENTIALS"
    account_id: str = ""
    client_id: str = ""
    details: Mapping[str, str | int | bool | None] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ChipChallenge:
    """A nonce the chip must sign (active authentication), for one account and its device."""

    challenge_id: str
    account_id: str
    device_id: str
    nonce: bytes
    expires_at: dt.datetime
    used_at: dt.datetime | None = None


@dataclass(frozen=True, slots=True)
class ChipEvidenceRecord:
    """Level-2 proofing evidence from the chip ID card, kept so that it can be re-checked."""

    evidence_id: str
    account_id: str
    verified_at: dt.datetime
    genuineness: str  # vnid.icao9303.Genuineness value
    strength: str  # "strong" | "weak"
    sod: bytes  # the EF.SOD as read (re-verification checks it again)
    ds_fingerprint: str  # SHA-256 of the document signer's certificate, hex
    csca_subject: str
    data_group_hashes: Mapping[str, str]  # data-group number -> hash (hex), what was presented
    claims: Mapping[str, str]  # the personal data read from DG13
    document_expires: dt.date | None
    face_match: str  # the app's attested face-match statement, as sent; never a server check
    device_id: str
    level_raised: bool
    status: str = "valid"  # "valid" | "revoked" (its document signer was revoked)
    status_reason: str = ""


@dataclass(frozen=True, slots=True)
class SessionClient:
    client_id: str
    sub: str


class ClientRegistry(Protocol):
    def get(self, client_id: str) -> Client | None:
        ...


class StoreTransaction(Protocol):
    # ------------------------------------------------------------ audit and replay
    def record(self, event: IdentityEvent) -> None: ...

    def first_use(self, kind: str, value: str, expires_at: dt.datetime) -> bool: ...

    # ------------------------------------------------------------ accounts
    def account(self, account_id: str) -> Account | None: ...

    def account_by_identifier(self, identifier: str) -> Account | None: ...

    def save_account(self, account: Account) -> None: ...

    def list_accounts(self, *, after: str, limit: int, kind: str = "", level: int = 0,
                      province_code: str = "") -> list[Account]: ...

    def add_proofing(self, account_id: str, record: ProofingRecord) -> None: ...

    def proofing(self, account_id: str) -> ProofingRecord | None:
        """The latest proofing record (``account()`` leaves ``Account.proofing`` empty)."""
        ...

    def password_hash(self, account_id: str) -> str | None: ...

    def set_password_hash(self, account_id: str, encoded: str, now: dt.datetime) -> None: ...

    def totp(self, account_id: str) -> tuple[str, int | None] | None: ...

    def set_totp(self, account_id: str, secret: str, now: dt.datetime) -> None: ...

    def set_totp_step(self, account_id: str, step: int) -> None: ...

    def active_device(self, account_id: str) -> DeviceKey | None: ...

    def device(self, device_id: str) -> DeviceKey | None: ...

    def devices(self, account_id: str) -> list[DeviceKey]: ...

    def add_device(self, device: DeviceKey) -> list[str]:
        """Store ``device`` and revoke every other active device of its account; returns the
        ids of the devices revoked."""
        ...

    def revoke_device(self, device_id: str, now: dt.datetime) -> bool: ...

    def throttle(self, key: str) -> ThrottleState: ...

    def set_throttle(self, key: str, state: ThrottleState) -> None: ...

    # ------------------------------------------------------------ authorization
    def put_pushed(self, handle_hash: str, request: AuthorizationRequest,
                   expires_at: dt.datetime) -> None: ...

    def take_pushed(self, handle_hash: str, now: dt.datetime) -> AuthorizationRequest | None: ...

    def put_interaction(self, interaction: Interaction) -> None: ...

    def interaction(self, interaction_id: str) -> Interaction | None: ...

    def delete_interaction(self, interaction_id: str) -> None: ...

    def put_session(self, session: ProviderSession) -> None: ...

    def session(self, key_hash: str) -> ProviderSession | None: ...

    def session_by_sid(self, sid: str) -> ProviderSession | None: ...

    def live_sessions(self, account_id: str) -> list[ProviderSession]:
        """The account's sessions that have not been ended (expiry is the caller's check)."""
        ...

    def touch_session(self, key_hash: str, now: dt.datetime) -> None: ...

    def end_session(self, sid: str, now: dt.datetime) -> bool: ...

    def add_session_client(self, sid: str, client_id: str, sub: str, now: dt.datetime) -> None: ...

    def session_clients(self, sid: str) -> list[SessionClient]: ...

    def account_for_subject(self, client_id: str, sub: str) -> str | None:
        """The account a client knows as ``sub`` (from the sessions that served it)."""
        ...

    def put_code(self, code: AuthorizationCode) -> None: ...

    def take_code(self, code_hash: str, now: dt.datetime) -> tuple[AuthorizationCode | None, bool]:
        """The code, marked used; ``(code, True)`` if it had been used before (a replay)."""
        ...

    # ------------------------------------------------------------ tokens
    def put_token(self, token: TokenRecord) -> None: ...

    def token(self, token_hash: str) -> TokenRecord | None: ...

    def use_refresh(self, token_hash: str, now: dt.datetime) -> bool:
        """Mark a refresh token rotated; False if it already was (reuse)."""
        ...

    def revoke_token(self, token_hash: str, now: dt.datetime) -> None: ...

    def revoke_grant(self, grant_id: str, now: dt.datetime) -> int: ...

    def revoke_session_tokens(self, sid: str, now: dt.datetime, *, keep_offline: bool) -> int: ...

    def revoke_client_tokens(self, client_id: str, account_id: str, now: dt.datetime) -> int: ...

    # ------------------------------------------------------------ consent
    def consent(self, account_id: str, client_id: str) -> frozenset[str]: ...

    def put_consent(self, account_id: str, client_id: str, scopes: frozenset[str],
                    now: dt.datetime) -> None: ...

    def withdraw_consent(self, account_id: str, client_id: str, now: dt.datetime) -> bool: ...

    def consents(self, account_id: str) -> list[tuple[str, frozenset[str], dt.datetime]]: ...

    # ------------------------------------------------------------ approvals and logout
    def put_approval(self, approval: Approval) -> None: ...

    def approval(self, approval_id: str) -> Approval | None: ...

    def pending_approvals(self, account_id: str, now: dt.datetime) -> Sequence[Approval]: ...

    def enqueue_logout(self, client_id: str, uri: str, logout_token: str,
                       now: dt.datetime) -> None: ...

    # ------------------------------------------------------------ chip proofing
    def put_chip_challenge(self, challenge: ChipChallenge) -> None: ...

    def chip_challenge(self, challenge_id: str) -> ChipChallenge | None: ...

    def use_chip_challenge(self, challenge_id: str, now: dt.datetime) -> bool:
        """Mark the challenge used; False when it was already used (the one winner of a race
        gets True)."""
        ...

    def add_chip_evidence(self, record: ChipEvidenceRecord) -> None: ...

    def chip_evidence(self, account_id: str) -> list[ChipEvidenceRecord]:
        """The account's chip evidence, newest first."""
        ...

    def set_chip_evidence_status(self, evidence_id: str, status: str, reason: str) -> None: ...

    def chip_evidence_accounts(self) -> list[str]:
        """The ids of the accounts that hold chip evidence."""
        ...

    # ------------------------------------------------------------ provider keys
    def signing_keys(self) -> list[SigningKeyRecord]: ...

    def save_signing_key(self, record: SigningKeyRecord) -> None: ...

    def delete_signing_key(self, kid: str) -> None: ...


class ProviderStore(Protocol):
    def transaction(self, request_id: str = "", actor: str = "") \
            -> AbstractContextManager[StoreTransaction]:
        """A write transaction; audit events recorded in it commit with it."""
        ...

    def reader(self) -> AbstractContextManager[StoreTransaction]:
        """A read-only transaction (it never blocks writers); writing in it is an error."""
        ...
