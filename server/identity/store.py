"""The identity provider's storage port (:class:`vnid.oidc.ports.StoreTransaction`) on SQLAlchemy,
for SQLite and PostgreSQL.

One :class:`SqlStore.transaction` is one database write transaction. Audit events recorded in it
commit with it; if it fails, the events that report a failure (wrong password, replayed proof,
lockout, ...) are still written, in a transaction of their own, because an attack that ends in an
error must leave a trace. Operations that must not race are single conditional statements
(``UPDATE ... WHERE used_at IS NULL``, ``INSERT ... ON CONFLICT DO NOTHING``).

Statements use SQLAlchemy Core, not the ORM: the token and authorization endpoints are hot paths.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar, cast

from sqlalchemy import Table, and_, bindparam, delete, insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from server.audit import AuditEvent, append_events
from server.storage.db import Database
from server.storage.identity import (
    AccountRow,
    ArtifactRow,
    ChipChallengeRow,
    ChipEvidenceRow,
    ConsentRow,
    CredentialRow,
    DeviceRow,
    LogoutDeliveryRow,
    ProofingRow,
    SessionClientRow,
    SessionRow,
    SigningKeyRow,
    ThrottleRow,
    TokenRow,
)
from server.storage.locking import locked
from server.storage.rows import upsert
from vnid.accounts import (
    Account,
    AccountKind,
    AccountStatus,
    EvidenceType,
    ProofingMethod,
    ProofingRecord,
)
from vnid.assurance import Amr, AssuranceLevel
from vnid.authn.device import DeviceKey
from vnid.authn.throttle import ThrottleState
from vnid.jose.keys import KeyState, SigningKeyRecord
from vnid.oidc.ports import ChipChallenge, ChipEvidenceRecord, IdentityEvent, SessionClient
from vnid.oidc.records import (
    Approval,
    ApprovalStatus,
    AuthorizationCode,
    AuthorizationRequest,
    Interaction,
    ProviderSession,
    TokenKind,
    TokenRecord,
    from_data,
    handle_hash,
    to_data,
)
from vnid.personal_id import Sex

__all__ = ["SqlStore", "SqlTransaction", "TotpSealer", "WouldBlock"]

R = TypeVar("R")
_BUSY = (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
# How long a non-blocking attempt may wait for a write lock held by a transaction that is
# already running (another thread here, or another worker process on the same SQLite file)
# before it gives up and runs again on a thread. Write transactions of the store take a fraction
# of a millisecond, so waiting for one is far cheaper than repeating the step's signature checks
# on a thread (with two worker processes, giving up at once sent half of all steps to a thread
# and doubled the CPU per login); a longer holder (a stalled process, a big batch of another
# module) still sends the step to a thread instead of holding up the event loop.
ATTEMPT_WAIT = 0.005


def _begin_immediate(raw: sqlite3.Connection, wait: float | None) -> None:
    """``BEGIN IMMEDIATE``. With ``wait`` (seconds; the connection's busy timeout set to 0), the
    lock is tried again at short intervals (SQLite's own busy handler first sleeps a whole
    millisecond) until ``wait`` has passed, then :class:`WouldBlock`."""
    deadline = time.monotonic() + wait if wait is not None else 0.0
    pause = 0.0001
    while True:
        try:
            raw.execute("BEGIN IMMEDIATE")
            return
        except sqlite3.OperationalError as exc:
            if wait is None or exc.sqlite_errorcode not in _BUSY:
                raise
            if time.monotonic() + pause > deadline:
                raise WouldBlock() from None
        time.sleep(pause)
        pause = min(pause * 2, 0.001)

A = cast(Table, ArtifactRow.__table__)
T = cast(Table, TokenRow.__table__)
S = cast(Table, SessionRow.__table__)
ACC = cast(Table, AccountRow.__table__)

# Statements used often enough to build once (building one costs more than SQLite running it).
_ACCOUNT_BY_IDENTIFIER = select(ACC).where(ACC.c.identifier == bindparam("b_id"))
_ARTIFACT = select(A.c.data, A.c.used_at, A.c.expires_at).where(
    A.c.kind == bindparam("b_kind"), A.c.handle == bindparam("b_handle"))
_CONSENT = select(ConsentRow.scopes).where(
    ConsentRow.account_id == bindparam("b_account"), ConsentRow.client_id == bindparam("b_client"),
    ConsentRow.withdrawn_at.is_(None))


class WouldBlock(Exception):
    """A non-blocking attempt (:meth:`SqlStore.attempt`) would have had to wait for the database's
    write lock. Raised before the attempt wrote anything: the work can start again elsewhere."""


class _Attempt:
    __slots__ = ("abandoned", "committed")

    def __init__(self) -> None:
        self.committed = False  # a write transaction of the attempt has committed
        self.abandoned = False  # one found the lock held before that: nothing more may run


class TotpSealer:
    """Seals TOTP secrets at rest (AES-256-GCM with a key from the provider's secrets)."""

    def __init__(self, key: bytes) -> None:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        self._aead = AESGCM(key)

    def seal(self, secret: str, account_id: str) -> str:
        import base64
        import os

        nonce = os.urandom(12)
        sealed = self._aead.encrypt(nonce, secret.encode(), account_id.encode())
        return "v1." + base64.urlsafe_b64encode(nonce + sealed).decode()

    def open(self, sealed: str, account_id: str) -> str:
        import base64

        raw = base64.urlsafe_b64decode(sealed[3:])
        return self._aead.decrypt(raw[:12], raw[12:], account_id.encode()).decode()


def _methods(text: str) -> tuple[Amr, ...]:
    return tuple(Amr(m) for m in text.split()) if text else ()


def _scopes(text: str) -> frozenset[str]:
    return frozenset(text.split())


def _sqlite_value(value: Any) -> Any:
    """A parameter as SQLAlchemy stores it on SQLite (UTCDateTime: naive UTC text with
    microseconds, so that text comparison orders instants; booleans as integers)."""
    if isinstance(value, dt.datetime):
        v = value.astimezone(dt.UTC)
        return (f"{v.year:04d}-{v.month:02d}-{v.day:02d} "
                f"{v.hour:02d}:{v.minute:02d}:{v.second:02d}.{v.microsecond:06d}")
    if isinstance(value, bool):
        return int(value)
    return value


def _instant(value: Any) -> dt.datetime | None:
    """A stored instant as an aware UTC datetime (SQLite gives text, PostgreSQL datetimes)."""
    if value is None:
        return None
    if isinstance(value, str):
        return dt.datetime.fromisoformat(value).replace(tzinfo=dt.UTC)
    assert isinstance(value, dt.datetime)
    return value.astimezone(dt.UTC)


def _day(value: Any) -> dt.date | None:
    """A stored date (SQLite gives ISO text, PostgreSQL dates)."""
    if value is None or isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(value)


def _at(value: Any) -> dt.datetime:
    """A stored instant that cannot be NULL."""
    instant = _instant(value)
    assert instant is not None
    return instant


class _Direct:
    """The hottest statements, run on the DB-API connection of the transaction (SQLAlchemy's
    per-statement work costs several times what SQLite needs to run them). Each statement is
    written once with ``?`` placeholders; values are converted the way the SQLAlchemy types of
    :mod:`server.storage.identity` store them, so rows written either way are alike."""

    _PG: dict[str, str] = {}

    def __init__(self, connection: Connection, dialect: str) -> None:
        self.sqlite = dialect == "sqlite"
        self.raw: Any = connection.connection.driver_connection

    def rows(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        if self.sqlite:
            cursor = self.raw.execute(sql, [_sqlite_value(p) for p in params])
        else:
            pg = self._PG.get(sql)
            if pg is None:
                pg = self._PG[sql] = sql.replace("?", "%s")
            cursor = self.raw.cursor()
            cursor.execute(pg, list(params))
        return list(cursor.fetchall()) if cursor.description else []


_SQL_REPLAY = ("INSERT INTO identity_replay (kind, value_hash, expires_at) VALUES (?, ?, ?) "
               "ON CONFLICT DO NOTHING RETURNING kind")
_SQL_ARTIFACT_INSERT = ("INSERT INTO identity_artifacts (kind, handle, client_id, account_id, "
                        "status, data, expires_at, used_at) VALUES (?, ?, ?, ?, '', ?, ?, NULL)")
_SQL_TAKE_PUSHED = ("UPDATE identity_artifacts SET used_at = ? WHERE kind = 'par' AND handle = ? "
                    "AND used_at IS NULL AND expires_at > ? RETURNING data")
_SQL_TAKE_CODE = ("UPDATE identity_artifacts SET used_at = ? WHERE kind = 'code' AND handle = ? "
                  "AND used_at IS NULL RETURNING data")
_SESSION_COLUMNS = ("key_hash, sid, account_id, created_at, last_seen_at, auth_time, level, "
                    "methods, ended_at")
_SQL_SESSION_BY_KEY = f"SELECT {_SESSION_COLUMNS} FROM identity_sessions WHERE key_hash = ?"
_SQL_SESSION_BY_SID = f"SELECT {_SESSION_COLUMNS} FROM identity_sessions WHERE sid = ?"
_SQL_TOUCH = "UPDATE identity_sessions SET last_seen_at = ? WHERE key_hash = ?"
_SQL_SESSION_CLIENT = ("INSERT INTO identity_session_clients (sid, client_id, sub, first_at) "
                       "VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING")
_TOKEN_COLUMNS = ("token_hash, kind, client_id, account_id, sid, grant_id, scope, claims_scope, "
                  "offline, jkt, auth_time, level, methods, issued_at, expires_at, revoked_at, "
                  "used_at")
_SQL_TOKEN_INSERT = (f"INSERT INTO identity_tokens ({_TOKEN_COLUMNS}) VALUES "
                     "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
_SQL_TOKEN = f"SELECT {_TOKEN_COLUMNS} FROM identity_tokens WHERE token_hash = ?"
_ACCOUNT_COLUMNS = ("account_id, kind, identifier, full_name, level, created_at, date_of_birth, "
                    "sex, nationality, status, locked_reason, card_valid_until, province_code")
_SQL_ACCOUNT = f"SELECT {_ACCOUNT_COLUMNS} FROM identity_accounts WHERE account_id = ?"


class SqlTransaction:
    """Implements :class:`vnid.oidc.ports.StoreTransaction` on one open session."""

    def __init__(self, connection: Connection | Session, dialect: str,
                 sealer: TotpSealer | None = None) -> None:
        self.s = connection
        self.c = connection if isinstance(connection, Connection) else connection.connection()
        self.d = _Direct(self.c, dialect)
        self._dialect = dialect
        self._sealer = sealer
        self.events: list[IdentityEvent] = []
        self.replays: list[dict[str, Any]] = []

    # ---------------------------------------------------------------- audit and replay
    def record(self, event: IdentityEvent) -> None:
        self.events.append(event)

    def first_use(self, kind: str, value: str, expires_at: dt.datetime) -> bool:
        row = {"kind": kind, "value_hash": handle_hash(value), "expires_at": expires_at}
        self.replays.append(row)
        return len(self.d.rows(_SQL_REPLAY, (kind, row["value_hash"], expires_at))) == 1

    # ---------------------------------------------------------------- accounts
    def proofing(self, account_id: str) -> ProofingRecord | None:
        row = self.s.execute(
            select(ProofingRow.__table__).where(ProofingRow.account_id == account_id)
            .order_by(ProofingRow.id.desc()).limit(1)).one_or_none()
        if row is None:
            return None
        return ProofingRecord(
            evidence_type=EvidenceType(row.evidence_type), method=ProofingMethod(row.method),
            place=row.place, officer=row.officer, proofed_at=row.proofed_at,
            evidence_valid_until=row.evidence_valid_until)

    @staticmethod
    def _account(row: Any) -> Account:
        return Account(
            account_id=row.account_id, kind=AccountKind(row.kind), identifier=row.identifier,
            full_name=row.full_name, level=AssuranceLevel(row.level), created_at=row.created_at,
            date_of_birth=row.date_of_birth, sex=Sex(row.sex) if row.sex else None,
            nationality=row.nationality, status=AccountStatus(row.status),
            locked_reason=row.locked_reason, card_valid_until=row.card_valid_until,
            province_code=row.province_code)

    def account(self, account_id: str) -> Account | None:
        rows = self.d.rows(_SQL_ACCOUNT, (account_id,))
        if not rows:
            return None
        (account_id, kind, identifier, full_name, level, created_at, born, sex, nationality,
         status, locked_reason, card_valid_until, province_code) = rows[0]
        return Account(
            account_id=account_id, kind=AccountKind(kind), identifier=identifier,
            full_name=full_name, level=AssuranceLevel(level), created_at=_at(created_at),
            date_of_birth=_day(born), sex=Sex(sex) if sex else None, nationality=nationality,
            status=AccountStatus(status), locked_reason=locked_reason,
            card_valid_until=_day(card_valid_until), province_code=province_code)

    def account_by_identifier(self, identifier: str) -> Account | None:
        row = self.c.execute(_ACCOUNT_BY_IDENTIFIER, {"b_id": identifier}).one_or_none()
        return self._account(row) if row is not None else None

    def list_accounts(self, *, after: str, limit: int, kind: str = "", level: int = 0,
                      province_code: str = "") -> list[Account]:
        query = select(AccountRow.__table__).where(AccountRow.account_id > after)
        if kind:
            query = query.where(AccountRow.kind == kind)
        if level:
            query = query.where(AccountRow.level == level)
        if province_code:
            query = query.where(AccountRow.province_code == province_code)
        rows = self.s.execute(query.order_by(AccountRow.account_id).limit(limit)).all()
        return [self._account(r) for r in rows]

    def save_account(self, account: Account) -> None:
        values = {
            "kind": account.kind.value, "identifier": account.identifier,
            "full_name": account.full_name, "date_of_birth": account.date_of_birth,
            "sex": account.sex.value if account.sex else None,
            "nationality": account.nationality, "level": int(account.level),
            "status": account.status.value, "locked_reason": account.locked_reason,
            "card_valid_until": account.card_valid_until,
            "province_code": account.province_code, "updated_at": dt.datetime.now(dt.UTC),
        }
        done = self.s.execute(update(AccountRow).where(
            AccountRow.account_id == account.account_id).values(**values))
        if not done.rowcount:  # type: ignore[attr-defined]
            self.s.execute(insert(AccountRow).values(account_id=account.account_id,
                                                     created_at=account.created_at, **values))

    def add_proofing(self, account_id: str, record: ProofingRecord) -> None:
        self.s.execute(insert(ProofingRow).values(
            account_id=account_id, evidence_type=record.evidence_type.value,
            method=record.method.value, place=record.place[:200], officer=record.officer[:100],
            proofed_at=record.proofed_at, evidence_valid_until=record.evidence_valid_until))

    def _credential(self, account_id: str, kind: str) -> Any:
        return self.s.execute(select(CredentialRow.__table__).where(
            CredentialRow.account_id == account_id, CredentialRow.kind == kind)).one_or_none()

    def _put_credential(self, account_id: str, kind: str, secret: str, now: dt.datetime) -> None:
        done = self.s.execute(update(CredentialRow).where(
            CredentialRow.account_id == account_id, CredentialRow.kind == kind).values(
            secret=secret, last_step=None, updated_at=now))
        if not done.rowcount:  # type: ignore[attr-defined]
            self.s.execute(insert(CredentialRow).values(account_id=account_id, kind=kind,
                                                        secret=secret, updated_at=now))

    def password_hash(self, account_id: str) -> str | None:
        row = self._credential(account_id, "password")
        return row.secret if row is not None else None

    def set_password_hash(self, account_id: str, encoded: str, now: dt.datetime) -> None:
        self._put_credential(account_id, "password", encoded, now)

    def totp(self, account_id: str) -> tuple[str, int | None] | None:
        row = self._credential(account_id, "totp")
        if row is None:
            return None
        assert self._sealer is not None, "this transaction cannot open TOTP secrets"
        return self._sealer.open(row.secret, account_id), row.last_step

    def set_totp(self, account_id: str, secret: str, now: dt.datetime) -> None:
        assert self._sealer is not None, "this transaction cannot seal TOTP secrets"
        self._put_credential(account_id, "totp", self._sealer.seal(secret, account_id), now)

    def set_totp_step(self, account_id: str, step: int) -> None:
        self.s.execute(update(CredentialRow).where(
            CredentialRow.account_id == account_id, CredentialRow.kind == "totp").values(
            last_step=step))

    @staticmethod
    def _device(row: Any) -> DeviceKey:
        return DeviceKey(device_id=row.device_id, account_id=row.account_id,
                         public_jwk=json.loads(row.public_jwk), jkt=row.jkt, label=row.label,
                         registered_at=row.registered_at, revoked_at=row.revoked_at)

    def active_device(self, account_id: str) -> DeviceKey | None:
        row = self.s.execute(select(DeviceRow.__table__).where(
            DeviceRow.account_id == account_id, DeviceRow.revoked_at.is_(None))
            .order_by(DeviceRow.registered_at.desc()).limit(1)).one_or_none()
        return self._device(row) if row is not None else None

    def device(self, device_id: str) -> DeviceKey | None:
        row = self.s.execute(select(DeviceRow.__table__).where(
            DeviceRow.device_id == device_id)).one_or_none()
        return self._device(row) if row is not None else None

    def devices(self, account_id: str) -> list[DeviceKey]:
        rows = self.s.execute(select(DeviceRow.__table__).where(
            DeviceRow.account_id == account_id).order_by(DeviceRow.registered_at)).all()
        return [self._device(r) for r in rows]

    def add_device(self, device: DeviceKey) -> list[str]:
        active = self.s.execute(locked(select(DeviceRow.device_id).where(
            DeviceRow.account_id == device.account_id, DeviceRow.revoked_at.is_(None)))
            ).scalars().all()
        if active:
            self.s.execute(update(DeviceRow).where(DeviceRow.device_id.in_(active)).values(
                revoked_at=device.registered_at))
        self.s.execute(insert(DeviceRow).values(
            device_id=device.device_id, account_id=device.account_id,
            public_jwk=json.dumps(dict(device.public_jwk)), jkt=device.jkt, label=device.label,
            registered_at=device.registered_at, revoked_at=None))
        return list(active)

    # ---------------------------------------------------------------- chip proofing
    def put_chip_challenge(self, challenge: ChipChallenge) -> None:
        self.s.execute(insert(ChipChallengeRow).values(
            challenge_id=challenge.challenge_id, account_id=challenge.account_id,
            device_id=challenge.device_id, nonce=challenge.nonce.hex(),
            expires_at=challenge.expires_at, used_at=None))

    def chip_challenge(self, challenge_id: str) -> ChipChallenge | None:
        row = self.s.execute(select(ChipChallengeRow.__table__).where(
            ChipChallengeRow.challenge_id == challenge_id)).one_or_none()
        if row is None:
            return None
        return ChipChallenge(challenge_id=row.challenge_id, account_id=row.account_id,
                             device_id=row.device_id, nonce=bytes.fromhex(row.nonce),
                             expires_at=row.expires_at, used_at=row.used_at)

    def use_chip_challenge(self, challenge_id: str, now: dt.datetime) -> bool:
        # A conditional update: of two concurrent submissions, one changes the row.
        done = self.s.execute(update(ChipChallengeRow).where(
            ChipChallengeRow.challenge_id == challenge_id,
            ChipChallengeRow.used_at.is_(None)).values(used_at=now))
        return bool(done.rowcount)  # type: ignore[attr-defined]

    def add_chip_evidence(self, record: ChipEvidenceRecord) -> None:
        self.s.execute(insert(ChipEvidenceRow).values(
            evidence_id=record.evidence_id, account_id=record.account_id,
            verified_at=record.verified_at, genuineness=record.genuineness,
            strength=record.strength, sod=record.sod, ds_fingerprint=record.ds_fingerprint,
            csca_subject=record.csca_subject[:400],
            data_group_hashes=json.dumps(dict(record.data_group_hashes)),
            claims=json.dumps(dict(record.claims), ensure_ascii=False),
            document_expires=record.document_expires, face_match=record.face_match[:500],
            device_id=record.device_id, level_raised=record.level_raised, status=record.status,
            status_reason=record.status_reason[:40]))

    def chip_evidence(self, account_id: str) -> list[ChipEvidenceRecord]:
        rows = self.s.execute(select(ChipEvidenceRow.__table__).where(
            ChipEvidenceRow.account_id == account_id)
            .order_by(ChipEvidenceRow.verified_at.desc())).all()
        return [ChipEvidenceRecord(
            evidence_id=r.evidence_id, account_id=r.account_id, verified_at=r.verified_at,
            genuineness=r.genuineness, strength=r.strength, sod=bytes(r.sod),
            ds_fingerprint=r.ds_fingerprint, csca_subject=r.csca_subject,
            data_group_hashes=json.loads(r.data_group_hashes), claims=json.loads(r.claims),
            document_expires=r.document_expires, face_match=r.face_match, device_id=r.device_id,
            level_raised=bool(r.level_raised), status=r.status, status_reason=r.status_reason)
            for r in rows]

    def set_chip_evidence_status(self, evidence_id: str, status: str, reason: str) -> None:
        self.s.execute(update(ChipEvidenceRow).where(
            ChipEvidenceRow.evidence_id == evidence_id).values(status=status,
                                                               status_reason=reason[:40]))

    def chip_evidence_accounts(self) -> list[str]:
        return list(self.s.execute(select(ChipEvidenceRow.account_id).distinct()
                                   .order_by(ChipEvidenceRow.account_id)).scalars())

    def revoke_device(self, device_id: str, now: dt.datetime) -> bool:
        done = self.s.execute(update(DeviceRow).where(
            DeviceRow.device_id == device_id, DeviceRow.revoked_at.is_(None)).values(
            revoked_at=now))
        return bool(done.rowcount)  # type: ignore[attr-defined]

    def throttle(self, key: str) -> ThrottleState:
        row = self.s.execute(select(ThrottleRow.__table__).where(
            ThrottleRow.key == key[:120])).one_or_none()
        if row is None:
            return ThrottleState()
        return ThrottleState(row.failures, row.last_failure_at, row.blocked_until)

    def set_throttle(self, key: str, state: ThrottleState) -> None:
        key = key[:120]
        if state.failures == 0:
            self.s.execute(delete(ThrottleRow).where(ThrottleRow.key == key))
            return
        values = {"failures": state.failures, "last_failure_at": state.last_failure_at,
                  "blocked_until": state.blocked_until}
        upsert(self.s, ThrottleRow, {"key": key}, values)

    # ---------------------------------------------------------------- artifacts
    def _put_artifact(self, kind: str, handle: str, data: dict[str, Any],
                      expires_at: dt.datetime, *, client_id: str = "", account_id: str = "",
                      status: str = "") -> None:
        values = {"client_id": client_id, "account_id": account_id, "status": status,
                  "data": json.dumps(data, separators=(",", ":")), "expires_at": expires_at}
        done = self.s.execute(update(A).where(A.c.kind == kind, A.c.handle == handle)
                              .values(**values))
        if not done.rowcount:  # type: ignore[attr-defined]
            self.s.execute(insert(A).values(kind=kind, handle=handle, used_at=None, **values))

    def _artifact(self, kind: str, handle: str) -> Any:
        return self.c.execute(_ARTIFACT, {"b_kind": kind, "b_handle": handle}).one_or_none()

    def put_pushed(self, handle_hash: str, request: AuthorizationRequest,
                   expires_at: dt.datetime) -> None:
        self.d.rows(_SQL_ARTIFACT_INSERT, (
            "par", handle_hash, request.client_id, "",
            json.dumps(to_data(request), separators=(",", ":")), expires_at))

    def take_pushed(self, handle_hash: str, now: dt.datetime) -> AuthorizationRequest | None:
        rows = self.d.rows(_SQL_TAKE_PUSHED, (now, handle_hash, now))
        return from_data(AuthorizationRequest, json.loads(rows[0][0])) if rows else None

    def put_interaction(self, interaction: Interaction) -> None:
        self._put_artifact("interaction", interaction.interaction_id, to_data(interaction),
                           interaction.expires_at, client_id=interaction.request.client_id,
                           account_id=interaction.account_id)

    def interaction(self, interaction_id: str) -> Interaction | None:
        row = self._artifact("interaction", interaction_id)
        return from_data(Interaction, json.loads(row.data)) if row is not None else None

    def delete_interaction(self, interaction_id: str) -> None:
        self.s.execute(delete(A).where(A.c.kind == "interaction", A.c.handle == interaction_id))

    def put_code(self, code: AuthorizationCode) -> None:
        self.d.rows(_SQL_ARTIFACT_INSERT, (
            "code", code.code_hash, code.client_id, code.account_id,
            json.dumps(to_data(code), separators=(",", ":")), code.expires_at))

    def take_code(self, code_hash: str, now: dt.datetime) -> tuple[AuthorizationCode | None, bool]:
        rows = self.d.rows(_SQL_TAKE_CODE, (now, code_hash))
        if rows:
            return from_data(AuthorizationCode, json.loads(rows[0][0])), False
        used = self._artifact("code", code_hash)
        if used is None:
            return None, False
        return from_data(AuthorizationCode, json.loads(used.data)), True

    def put_approval(self, approval: Approval) -> None:
        self._put_artifact("approval", approval.approval_id, to_data(approval),
                           approval.expires_at, client_id=approval.client_id,
                           account_id=approval.account_id, status=approval.status.value)

    def approval(self, approval_id: str) -> Approval | None:
        row = self._artifact("approval", approval_id)
        return from_data(Approval, json.loads(row.data)) if row is not None else None

    def pending_approvals(self, account_id: str, now: dt.datetime) -> Sequence[Approval]:
        rows = self.s.execute(select(A.c.data).where(
            A.c.account_id == account_id, A.c.kind == "approval",
            A.c.status == ApprovalStatus.PENDING.value, A.c.expires_at > now)).all()
        approvals = [from_data(Approval, json.loads(r.data)) for r in rows]
        return [a for a in approvals if a.kind.value == "ciba"]

    # ---------------------------------------------------------------- sessions
    @staticmethod
    def _session(row: Any) -> ProviderSession:
        return ProviderSession(
            key_hash=row.key_hash, sid=row.sid, account_id=row.account_id,
            created_at=row.created_at, last_seen_at=row.last_seen_at, auth_time=row.auth_time,
            level=AssuranceLevel(row.level), methods=_methods(row.methods),
            ended_at=row.ended_at)

    @staticmethod
    def _session_tuple(row: tuple[Any, ...]) -> ProviderSession:
        key_hash, sid, account_id, created, seen, auth_time, level, methods, ended = row
        return ProviderSession(
            key_hash=key_hash, sid=sid, account_id=account_id, created_at=_at(created),
            last_seen_at=_at(seen), auth_time=_at(auth_time),
            level=AssuranceLevel(level), methods=_methods(methods), ended_at=_instant(ended))

    def put_session(self, session: ProviderSession) -> None:
        values = {"key_hash": session.key_hash, "account_id": session.account_id,
                  "last_seen_at": session.last_seen_at, "auth_time": session.auth_time,
                  "level": int(session.level),
                  "methods": " ".join(m.value for m in session.methods),
                  "ended_at": session.ended_at}
        done = self.s.execute(update(S).where(S.c.sid == session.sid).values(**values))
        if not done.rowcount:  # type: ignore[attr-defined]
            self.s.execute(insert(S).values(sid=session.sid, created_at=session.created_at,
                                            **values))

    def session(self, key_hash: str) -> ProviderSession | None:
        rows = self.d.rows(_SQL_SESSION_BY_KEY, (key_hash,))
        return self._session_tuple(rows[0]) if rows else None

    def session_by_sid(self, sid: str) -> ProviderSession | None:
        rows = self.d.rows(_SQL_SESSION_BY_SID, (sid,))
        return self._session_tuple(rows[0]) if rows else None

    def live_sessions(self, account_id: str) -> list[ProviderSession]:
        rows = self.s.execute(select(S).where(S.c.account_id == account_id,
                                              S.c.ended_at.is_(None))).all()
        return [self._session(r) for r in rows]

    def touch_session(self, key_hash: str, now: dt.datetime) -> None:
        self.d.rows(_SQL_TOUCH, (now, key_hash))

    def end_session(self, sid: str, now: dt.datetime) -> bool:
        done = self.s.execute(update(S).where(S.c.sid == sid, S.c.ended_at.is_(None))
                              .values(ended_at=now))
        return bool(done.rowcount)  # type: ignore[attr-defined]

    def add_session_client(self, sid: str, client_id: str, sub: str, now: dt.datetime) -> None:
        self.d.rows(_SQL_SESSION_CLIENT, (sid, client_id, sub, now))

    def session_clients(self, sid: str) -> list[SessionClient]:
        rows = self.s.execute(select(SessionClientRow.client_id, SessionClientRow.sub).where(
            SessionClientRow.sid == sid).order_by(SessionClientRow.first_at)).all()
        return [SessionClient(r.client_id, r.sub) for r in rows]

    def account_for_subject(self, client_id: str, sub: str) -> str | None:
        row = self.s.execute(select(S.c.account_id).select_from(
            SessionClientRow.__table__.join(S, S.c.sid == SessionClientRow.sid)).where(
            SessionClientRow.client_id == client_id, SessionClientRow.sub == sub).limit(1)
        ).one_or_none()
        return row.account_id if row is not None else None

    # ---------------------------------------------------------------- tokens
    def put_token(self, token: TokenRecord) -> None:
        self.d.rows(_SQL_TOKEN_INSERT, (
            token.token_hash, token.kind.value, token.client_id, token.account_id, token.sid,
            token.grant_id, " ".join(sorted(token.scope)), " ".join(sorted(token.claims_scope)),
            "offline_access" in token.scope, token.jkt, token.auth_time, int(token.level),
            " ".join(m.value for m in token.methods), token.issued_at, token.expires_at,
            token.revoked_at, token.used_at))

    def token(self, token_hash: str) -> TokenRecord | None:
        rows = self.d.rows(_SQL_TOKEN, (token_hash,))
        if not rows:
            return None
        (token_hash, kind, client_id, account_id, sid, grant_id, scope, claims_scope, _offline,
         jkt, auth_time, level, methods, issued_at, expires_at, revoked_at, used_at) = rows[0]
        return TokenRecord(
            token_hash=token_hash, kind=TokenKind(kind), client_id=client_id, grant_id=grant_id,
            scope=_scopes(scope), issued_at=_at(issued_at), expires_at=_at(expires_at),
            account_id=account_id,
            sid=sid, claims_scope=_scopes(claims_scope), jkt=jkt, auth_time=_instant(auth_time),
            level=AssuranceLevel(level), methods=_methods(methods),
            revoked_at=_instant(revoked_at), used_at=_instant(used_at))

    def use_refresh(self, token_hash: str, now: dt.datetime) -> bool:
        done = self.s.execute(update(T).where(T.c.token_hash == token_hash,
                                              T.c.used_at.is_(None)).values(used_at=now))
        return bool(done.rowcount)  # type: ignore[attr-defined]

    def _revoke(self, condition: Any, now: dt.datetime) -> int:
        done = self.s.execute(update(T).where(condition, T.c.revoked_at.is_(None))
                              .values(revoked_at=now))
        return int(done.rowcount or 0)  # type: ignore[attr-defined]

    def revoke_token(self, token_hash: str, now: dt.datetime) -> None:
        self._revoke(T.c.token_hash == token_hash, now)

    def revoke_grant(self, grant_id: str, now: dt.datetime) -> int:
        return self._revoke(T.c.grant_id == grant_id, now)

    def revoke_session_tokens(self, sid: str, now: dt.datetime, *, keep_offline: bool) -> int:
        condition = T.c.sid == sid
        if keep_offline:
            condition = and_(condition, T.c.offline.is_(False))
        return self._revoke(condition, now)

    def revoke_client_tokens(self, client_id: str, account_id: str, now: dt.datetime) -> int:
        condition = T.c.account_id == account_id
        if client_id:
            condition = and_(condition, T.c.client_id == client_id)
        return self._revoke(condition, now)

    # ---------------------------------------------------------------- consent
    def consent(self, account_id: str, client_id: str) -> frozenset[str]:
        row = self.c.execute(_CONSENT, {"b_account": account_id,
                                        "b_client": client_id}).one_or_none()
        return _scopes(row.scopes) if row is not None else frozenset()

    def put_consent(self, account_id: str, client_id: str, scopes: frozenset[str],
                    now: dt.datetime) -> None:
        values = {"scopes": " ".join(sorted(scopes)), "granted_at": now, "withdrawn_at": None}
        upsert(self.s, ConsentRow, {"account_id": account_id, "client_id": client_id}, values)

    def withdraw_consent(self, account_id: str, client_id: str, now: dt.datetime) -> bool:
        done = self.s.execute(update(ConsentRow).where(
            ConsentRow.account_id == account_id, ConsentRow.client_id == client_id,
            ConsentRow.withdrawn_at.is_(None)).values(withdrawn_at=now))
        return bool(done.rowcount)  # type: ignore[attr-defined]

    def consents(self, account_id: str) -> list[tuple[str, frozenset[str], dt.datetime]]:
        rows = self.s.execute(select(ConsentRow.__table__).where(
            ConsentRow.account_id == account_id, ConsentRow.withdrawn_at.is_(None))
            .order_by(ConsentRow.client_id)).all()
        return [(r.client_id, _scopes(r.scopes), r.granted_at) for r in rows]

    # ---------------------------------------------------------------- logout and keys
    def enqueue_logout(self, client_id: str, uri: str, logout_token: str,
                       now: dt.datetime) -> None:
        self.s.execute(insert(LogoutDeliveryRow).values(
            client_id=client_id, uri=uri, logout_token=logout_token, created_at=now, attempts=0,
            next_attempt_at=now, delivered_at=None, last_error=""))

    def signing_keys(self) -> list[SigningKeyRecord]:
        rows = self.s.execute(select(SigningKeyRow.__table__)).all()
        return [SigningKeyRecord(kid=r.kid, alg=r.alg, state=KeyState(r.state),
                                 private_pkcs8=r.private_pkcs8,
                                 public_jwk=json.loads(r.public_jwk), created_at=r.created_at,
                                 activated_at=r.activated_at, retired_at=r.retired_at)
                for r in rows]

    def save_signing_key(self, record: SigningKeyRecord) -> None:
        values = {"alg": record.alg, "state": record.state.value,
                  "private_pkcs8": record.private_pkcs8,
                  "public_jwk": json.dumps(dict(record.public_jwk)),
                  "created_at": record.created_at, "activated_at": record.activated_at,
                  "retired_at": record.retired_at}
        done = self.s.execute(update(SigningKeyRow).where(SigningKeyRow.kid == record.kid)
                              .values(**values))
        if not done.rowcount:  # type: ignore[attr-defined]
            self.s.execute(insert(SigningKeyRow).values(kid=record.kid, **values))

    def delete_signing_key(self, kid: str) -> None:
        self.s.execute(delete(SigningKeyRow).where(SigningKeyRow.kid == kid))


class SqlStore:
    """Implements :class:`vnid.oidc.ports.ProviderStore`."""

    def __init__(self, db: Database, sealer: TotpSealer,
                 clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC), *,
                 attempt_wait: float = ATTEMPT_WAIT) -> None:
        self.db = db
        self.attempt_wait = attempt_wait  # see ATTEMPT_WAIT
        self._sealer = sealer
        self._clock = clock
        # Core connections, not ORM sessions: nothing here uses the identity map, and a
        # session costs more than the statements of a token request. Same write semantics as
        # Database.write() (BEGIN IMMEDIATE on SQLite).
        self._writer = db.engine.execution_options(vnegov_write=True)
        # SQLite has one writer; when worker threads queue on a lock here, the next one starts
        # the moment the previous commits, instead of sleeping in SQLite's busy handler.
        self._lock: threading.Lock | contextlib.nullcontext[None] = \
            threading.Lock() if db.is_sqlite else contextlib.nullcontext()
        # The write transaction open on this thread, if any, and the non-blocking attempt.
        self._open = threading.local()
        self._busy_ms: int | None = None  # the connections' busy timeout (restored after 0)
        self._writer_connection: Connection | None = None

    def _audit(self, events: Sequence[IdentityEvent], request_id: str,
               actor: str) -> list[AuditEvent]:
        now = self._clock()
        out = []
        for e in events:
            details: dict[str, str | int | bool | None] = dict(e.details)
            if e.account_id:
                details["account_id"] = e.account_id
            if e.client_id:
                details["client_id"] = e.client_id
            out.append(AuditEvent(at=now, request_id=request_id or "-",
                                  caller=actor or (e.client_id and f"client/{e.client_id}")
                                  or "identity", kind="identity", action=e.action,
                                  outcome=e.outcome if e.outcome == "OK" else "FAILED",
                                  reason="" if e.outcome == "OK" else e.outcome,
                                  details=details))
        return out

    @contextmanager
    def reader(self) -> Iterator[SqlTransaction]:
        with self.db.engine.connect() as connection:
            try:
                yield SqlTransaction(connection, self.db.dialect, self._sealer)
            finally:
                connection.rollback()

    def attempt(self, fn: Callable[..., R], *args: Any) -> R:
        """``fn(*args)`` on this thread, waiting for the write lock only briefly (SQLite only).

        Until one of them commits, the attempt's write transactions take the store's lock and
        SQLite's write lock only if each comes free within :attr:`attempt_wait` (the lock held by
        a running transaction of another thread or worker process; ``BEGIN IMMEDIATE`` retried at
        short intervals instead of SQLite's busy handler). If either stays held,
        :class:`WouldBlock` is raised before anything was written (a transaction
        that failed was rolled back, and the one that would record its failures and spend its
        one-time values gives up too), and so does every later transaction of the abandoned
        attempt, so that the caller can run all of ``fn`` again where waiting harms nobody. After
        a commit, later transactions wait as usual (starting again would repeat the commit)."""
        if not self.db.is_sqlite:
            raise RuntimeError("non-blocking attempts need SQLite's single writer")
        if getattr(self._open, "attempt", None) is not None or \
                getattr(self._open, "tx", None) is not None:
            raise RuntimeError("an attempt cannot start inside another or inside a transaction")
        state = _Attempt()
        self._open.attempt = state
        try:
            result = fn(*args)
        finally:
            self._open.attempt = None
        if state.abandoned:  # WouldBlock was caught on the way: the result is not to be trusted
            raise WouldBlock()
        return result

    def _acquire(self, nonblocking: bool) -> bool:
        if isinstance(self._lock, contextlib.nullcontext):
            return False
        if self._lock.acquire(timeout=self.attempt_wait if nonblocking else -1):
            return True
        raise WouldBlock()

    def _sqlite_connection(self) -> Connection:
        """The connection of every write transaction of the store on SQLite (one writer at a
        time: the store's lock). SQLAlchemy sees one transaction on it that never ends; the
        database's transactions are begun and ended on its DB-API connection, which costs a
        fraction of SQLAlchemy's per-transaction machinery (pool checkout, begin hook, commit)."""
        connection = self._writer_connection
        if connection is None or connection.closed or connection.invalidated or \
                not connection.in_transaction():
            if connection is not None:
                with contextlib.suppress(Exception):
                    connection.close()
            connection = self.db.engine.connect()
            connection.begin()  # the Database's begin hook issues a (lock-free) BEGIN
            raw = connection.connection.driver_connection
            assert raw is not None
            if raw.in_transaction:
                raw.execute("ROLLBACK")
            self._writer_connection = connection
        return connection

    @contextmanager
    def _begin(self, nonblocking: bool) -> Iterator[Connection]:
        """A write transaction: BEGIN IMMEDIATE, committed at the end, rolled back on error.
        ``nonblocking`` (SQLite): :class:`WouldBlock` instead of waiting longer than
        :attr:`attempt_wait` for the write lock."""
        if not self.db.is_sqlite:
            with self._writer.begin() as connection:
                yield connection
            return
        connection = self._sqlite_connection()
        raw = connection.connection.driver_connection
        assert raw is not None
        if raw.in_transaction:  # left open by a failure of a previous commit or rollback
            raw.execute("ROLLBACK")
        if nonblocking:
            if self._busy_ms is None:
                self._busy_ms = int(raw.execute("PRAGMA busy_timeout").fetchone()[0])
            raw.execute("PRAGMA busy_timeout=0")
        try:
            _begin_immediate(raw, self.attempt_wait if nonblocking else None)
        finally:
            if nonblocking:
                raw.execute(f"PRAGMA busy_timeout={self._busy_ms}")
        try:
            yield connection
        except BaseException:
            if raw.in_transaction:
                raw.execute("ROLLBACK")
            raise
        try:
            raw.execute("COMMIT")
        except BaseException:
            if raw.in_transaction:
                raw.execute("ROLLBACK")
            raise

    def close(self) -> None:
        """Give back the write connection (SQLite)."""
        with self._lock:
            if self._writer_connection is not None:
                with contextlib.suppress(Exception):
                    self._writer_connection.close()
                self._writer_connection = None

    @contextmanager
    def transaction(self, request_id: str = "", actor: str = "") -> Iterator[SqlTransaction]:
        """A write transaction. Opened while another is open on this thread, it joins that one:
        the work commits (or not) with the outer transaction, so a caller can make several
        operations, and its own bookkeeping, one atomic unit."""
        outer: SqlTransaction | None = getattr(self._open, "tx", None)
        if outer is not None:
            yield outer
            return
        attempt: _Attempt | None = getattr(self._open, "attempt", None)
        nonblocking = attempt is not None and not attempt.committed
        tx: SqlTransaction | None = None
        try:
            if attempt is not None and attempt.abandoned:
                raise WouldBlock()
            locked = self._acquire(nonblocking)
            try:
                with self._begin(nonblocking) as connection:
                    tx = SqlTransaction(connection, self.db.dialect, self._sealer)
                    self._open.tx = tx
                    try:
                        yield tx
                    finally:
                        self._open.tx = None
                    if tx.events:
                        append_events(connection, self._audit(tx.events, request_id, actor))
                if attempt is not None:
                    attempt.committed = True
            finally:
                if locked:
                    self._lock.release()  # type: ignore[union-attr]
        except WouldBlock:
            if attempt is not None and not attempt.committed:
                attempt.abandoned = True
            raise
        except BaseException:
            # A request that fails still used up its one-time values (client assertion and DPoP
            # proof jti): a captured value must not work the second time because the first
            # request failed for another reason. And its failures stay on the record.
            failures = [e for e in (tx.events if tx is not None else []) if e.outcome != "OK"]
            replays = tx.replays if tx is not None else []
            if failures or replays:
                nonblocking = attempt is not None and not attempt.committed
                try:
                    locked = self._acquire(nonblocking)
                except WouldBlock:
                    assert attempt is not None
                    attempt.abandoned = True
                    raise
                try:
                    with self._begin(nonblocking) as connection:
                        after = SqlTransaction(connection, self.db.dialect)
                        for row in replays:
                            after.d.rows(_SQL_REPLAY, (row["kind"], row["value_hash"],
                                                       row["expires_at"]))
                        if failures:
                            append_events(connection, self._audit(failures, request_id, actor))
                except WouldBlock:
                    assert attempt is not None
                    attempt.abandoned = True
                    raise
                finally:
                    if locked:
                        self._lock.release()  # type: ignore[union-attr]
            raise
