"""Account administration for officials' tools: registration, proofing to level 2, card renewal,
locking, credentials (password, TOTP, device enrolment) and consents.

Every change is audited in the transaction that makes it. Locking an account, and withdrawing a
consent, also revoke the tokens that depend on it: a locked account stops working everywhere at once.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from collections.abc import Sequence

from vnid.accounts import (
    Account,
    AccountKind,
    ProofingRecord,
    lock,
    new_account,
    raise_to_level2,
    renew_card,
    unlock,
)
from vnid.authn.device import DeviceKey
from vnid.authn.throttle import ThrottleState
from vnid.authn.totp import new_totp_secret, provisioning_uri
from vnid.errors import Conflict, NotFound
from vnid.oidc.core import ProviderCore
from vnid.oidc.ports import IdentityEvent, StoreTransaction
from vnid.oidc.sessions import end_session
from vnid.personal_id import Sex

__all__ = ["AccountAdmin"]


class AccountAdmin:
    def __init__(self, core: ProviderCore) -> None:
        self.core = core

    def _get(self, tx: StoreTransaction, account_id: str) -> Account:
        account = tx.account(account_id)
        if account is None:
            raise NotFound("no such account", reason="ACCOUNT_NOT_FOUND")
        return account

    @staticmethod
    def _with_proofing(tx: StoreTransaction, account: Account) -> Account:
        if account.level < 2:
            return account
        return dataclasses.replace(account, proofing=tx.proofing(account.account_id))

    def get(self, account_id: str) -> Account:
        with self.core.store.reader() as tx:
            return self._with_proofing(tx, self._get(tx, account_id))

    def find(self, identifier: str) -> Account | None:
        with self.core.store.reader() as tx:
            return tx.account_by_identifier(identifier)

    def list_accounts(self, *, after: str, limit: int, kind: str = "", level: int = 0,
             province_code: str = "") -> list[Account]:
        with self.core.store.reader() as tx:
            return [self._with_proofing(tx, a) for a in tx.list_accounts(
                after=after, limit=limit, kind=kind, level=level, province_code=province_code)]

    def create(self, *, kind: AccountKind, identifier: str, full_name: str, now: dt.datetime,
               date_of_birth: dt.date | None = None, sex: Sex | None = None,
               nationality: str = "VN", province_code: str = "", guardian_request: bool = False,
               residence_card: bool = False, password: str | None = None,
               actor: str = "") -> Account:
        account = new_account(
            account_id=str(uuid.uuid4()), kind=kind, identifier=identifier.strip(),
            full_name=full_name, now=now, date_of_birth=date_of_birth, sex=sex,
            nationality=nationality, guardian_request=guardian_request,
            residence_card=residence_card, province_code=province_code,
            rules=self.core.settings.personal_id)
        encoded = self._password_hash(account, password) if password is not None else None
        with self.core.store.transaction(actor=actor) as tx:
            if tx.account_by_identifier(account.identifier) is not None:
                raise Conflict("an account with this identifier exists",
                               reason="ACCOUNT_EXISTS")
            tx.save_account(account)
            if encoded is not None:
                tx.set_password_hash(account.account_id, encoded, now)
            tx.record(IdentityEvent(action="account.create", account_id=account.account_id,
                                    details={"kind": account.kind.value,
                                             "province_code": province_code}))
        return account

    def _password_hash(self, account: Account, password: str) -> str:
        personal = [account.identifier, account.full_name]
        if account.date_of_birth is not None:
            personal += [account.date_of_birth.strftime("%d%m%Y"),
                         account.date_of_birth.strftime("%Y%m%d")]
        self.core.settings.password.check(password, personal_data=personal,
                                          breached=self.core.breached)
        return self.core.hasher.hash(password)

    def set_password(self, account_id: str, password: str, now: dt.datetime,
                     actor: str = "") -> None:
        account = self.get(account_id)
        encoded = self._password_hash(account, password)
        with self.core.store.transaction(actor=actor) as tx:
            tx.set_password_hash(account_id, encoded, now)
            tx.record(IdentityEvent(action="account.password", account_id=account_id))

    def enrol_totp(self, account_id: str, now: dt.datetime, actor: str = "") -> tuple[str, str]:
        """A new TOTP secret for the account; returns it and its ``otpauth://`` URI."""
        secret = new_totp_secret()
        with self.core.store.transaction(actor=actor) as tx:
            account = self._get(tx, account_id)
            tx.set_totp(account_id, secret, now)
            tx.record(IdentityEvent(action="account.totp_enrol", account_id=account_id))
        return secret, provisioning_uri(secret, account.identifier, self.core.settings.totp)

    def record_proofing(self, account_id: str, record: ProofingRecord, now: dt.datetime, *,
                        guardian_request: bool = False, actor: str = "") -> Account:
        with self.core.store.transaction(actor=actor) as tx:
            account = raise_to_level2(self._get(tx, account_id), record, now=now,
                                      guardian_request=guardian_request)
            tx.save_account(account)
            tx.add_proofing(account_id, record)
            tx.record(IdentityEvent(action="account.proofing", account_id=account_id,
                                    details={"method": record.method.value,
                                             "evidence": record.evidence_type.value,
                                             "place": record.place, "officer": record.officer}))
        return dataclasses.replace(account, proofing=record)

    def renew_card(self, account_id: str, valid_until: dt.date | None, now: dt.datetime,
                   actor: str = "") -> Account:
        with self.core.store.transaction(actor=actor) as tx:
            account = renew_card(self._get(tx, account_id), valid_until)
            tx.save_account(account)
            tx.record(IdentityEvent(action="account.card_renewed", account_id=account_id,
                                    details={"valid_until": valid_until.isoformat()
                                             if valid_until else "for life"}))
        return account

    def lock(self, account_id: str, reason: str, now: dt.datetime, actor: str = "") -> Account:
        with self.core.store.transaction(actor=actor) as tx:
            account = lock(self._get(tx, account_id), reason)
            tx.save_account(account)
            for session in tx.live_sessions(account_id):  # logs out of every system too
                end_session(self.core, tx, session, now, reason="account_locked")
            revoked = tx.revoke_client_tokens("", account_id, now)
            tx.record(IdentityEvent(action="account.lock", account_id=account_id,
                                    details={"reason": account.locked_reason,
                                             "tokens_revoked": revoked}))
        return account

    def unlock(self, account_id: str, now: dt.datetime, actor: str = "") -> Account:
        with self.core.store.transaction(actor=actor) as tx:
            account = unlock(self._get(tx, account_id))
            tx.save_account(account)
            tx.set_throttle(f"account:{account_id}", ThrottleState())
            tx.record(IdentityEvent(action="account.unlock", account_id=account_id))
        return account

    def devices(self, account_id: str) -> list[DeviceKey]:
        with self.core.store.reader() as tx:
            self._get(tx, account_id)
            return tx.devices(account_id)

    def revoke_device(self, account_id: str, device_id: str, now: dt.datetime,
                      actor: str = "") -> DeviceKey:
        with self.core.store.transaction(actor=actor) as tx:
            device = tx.device(device_id)
            if device is None or device.account_id != account_id:
                raise NotFound("no such device", reason="DEVICE_NOT_FOUND")
            if device.active:
                tx.revoke_device(device_id, now)
                device = dataclasses.replace(device, revoked_at=now)
                tx.record(IdentityEvent(action="device.revoke", account_id=account_id,
                                        details={"device_id": device_id}))
        return device

    def consents(self, account_id: str) -> Sequence[tuple[str, frozenset[str], dt.datetime]]:
        with self.core.store.reader() as tx:
            self._get(tx, account_id)
            return tx.consents(account_id)

    def withdraw_consent(self, account_id: str, client_id: str, now: dt.datetime,
                         actor: str = "") -> bool:
        with self.core.store.transaction(actor=actor) as tx:
            self._get(tx, account_id)
            withdrawn = tx.withdraw_consent(account_id, client_id, now)
            revoked = tx.revoke_client_tokens(client_id, account_id, now) if withdrawn else 0
            if withdrawn:
                tx.record(IdentityEvent(action="consent.withdraw", account_id=account_id,
                                        client_id=client_id,
                                        details={"tokens_revoked": revoked}))
        return withdrawn

