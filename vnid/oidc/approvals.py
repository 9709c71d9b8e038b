"""The citizen app's side: enrolling the device key, and approving (or refusing) what the provider
asks — a QR login shown on a login page, a step-up, or a client-initiated request (CIBA), such as a
remote signature.

Protocol (JSON over HTTPS, every statement an ES256 compact JWS made with the device key, its
``kid`` the device id; see :mod:`vnid.authn.device`):

1. Enrolment. An official (or an earlier device) creates a one-time *enrolment code* for the account.
   The app generates its key pair and sends ``{enrolment_code, jwk, label, proof}`` where ``proof``
   (``typ: vnid-enrolment+jwt``, signed by the new key) holds ``aud`` (the issuer), ``enrolment_code``
   and ``iat``. The answer is the ``device_id``. Any earlier device of the account is revoked.
2. QR login. The login page shows a QR code ``vnid://approve?iss=<issuer>&id=<approval id>`` and a
   two-digit number. The app reads the request (``GET .../approvals/{id}``: who asks, what for,
   the challenge), asks the person to unlock the key (PIN, face or fingerprint) and to pick the
   number the page shows, and sends a statement (``typ: vnid-approval+jwt``) with ``aud``,
   ``approval``, ``challenge``, ``decision`` (``approve``/``deny``), ``code`` (the number), ``uv``
   (how the key was unlocked), ``iat`` and ``jti``. A wrong number refuses the approval.
3. Step-up and CIBA. The same statement, for an approval already tied to the account; CIBA requests
   are listed for the device at ``GET .../approvals`` with a signed request (``typ:
   vnid-device+jwt``: ``aud``, ``htm``, ``htu``, ``iat``, ``jti``) in ``Authorization: Device``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import secrets
from collections.abc import Mapping
from typing import Any

from vnid.accounts import ensure_can_log_in
from vnid.assurance import Amr, AssuranceLevel
from vnid.authn.device import (
    APPROVAL_TYPE,
    DEVICE_REQUEST_TYPE,
    ENROLMENT_TYPE,
    DeviceKey,
    InvalidCredentials,
    import_device_key,
    peek_kid,
    verify_device_statement,
)
from vnid.errors import AuthenticationFailed, FailedPrecondition, NotFound
from vnid.oauth2.rfc9449_dpop import normalize_htu
from vnid.oidc.core import ProviderCore
from vnid.oidc.ports import IdentityEvent, StoreTransaction
from vnid.oidc.records import Approval, ApprovalKind, ApprovalStatus, handle_hash, new_handle

__all__ = ["DeviceApi", "new_approval"]

ENROLMENT_LIFETIME = dt.timedelta(hours=24)


def new_approval(kind: ApprovalKind, *, client_id: str, account_id: str, now: dt.datetime,
                 lifetime: dt.timedelta, min_level: AssuranceLevel = AssuranceLevel.LOA1,
                 binding_message: str = "", scope: frozenset[str] = frozenset(),
                 interval: int = 5, approval_id: str = "") -> Approval:
    return Approval(approval_id=approval_id or new_handle(18), kind=kind,
                    challenge=new_handle(24), client_id=client_id, created_at=now,
                    expires_at=now + lifetime, account_id=account_id,
                    binding_message=binding_message, scope=scope, min_level=min_level,
                    interval=interval)


class DeviceApi:
    def __init__(self, core: ProviderCore) -> None:
        self.core = core

    # ------------------------------------------------------------------ enrolment
    def create_enrolment(self, account_id: str, now: dt.datetime, *, actor: str = "") -> str:
        """A one-time enrolment code for the account's next device (valid 24 hours)."""
        code = "-".join(f"{secrets.randbelow(10**4):04d}" for _ in range(4))
        with self.core.store.transaction(actor=actor) as tx:
            if tx.account(account_id) is None:
                raise NotFound("no such account", reason="ACCOUNT_NOT_FOUND")
            tx.put_approval(new_approval(ApprovalKind.ENROLMENT, client_id="", now=now,
                                         account_id=account_id, lifetime=ENROLMENT_LIFETIME,
                                         approval_id=handle_hash(code)))
            tx.record(IdentityEvent(action="device.enrolment_code", account_id=account_id))
        return code

    def enrol(self, body: Mapping[str, Any], now: dt.datetime) -> dict[str, str]:
        code = str(body.get("enrolment_code", ""))
        proof = str(body.get("proof", ""))
        label = str(body.get("label", "")).strip()[:100] or "VNeID"
        jwk, jkt = import_device_key(body.get("jwk") or {})
        verified = verify_device_statement(proof, jwk, typ=ENROLMENT_TYPE,
                                           audience=self.core.issuer, now=now,
                                           required=("enrolment_code",))
        if not code or not secrets.compare_digest(str(verified.claims["enrolment_code"]), code):
            raise InvalidCredentials("the enrolment proof does not match the code")
        with self.core.store.transaction() as tx:
            enrolment = tx.approval(handle_hash(code))
            if enrolment is None or enrolment.kind is not ApprovalKind.ENROLMENT or \
                    enrolment.status is not ApprovalStatus.PENDING or enrolment.expires_at <= now:
                tx.record(IdentityEvent(action="device.enrol", outcome="INVALID_ENROLMENT_CODE"))
                failed = True
            else:
                failed = False
                device = DeviceKey(device_id=new_handle(12), account_id=enrolment.account_id,
                                   public_jwk=jwk, jkt=jkt, label=label, registered_at=now)
                revoked = tx.add_device(device)
                tx.put_approval(dataclasses.replace(enrolment, status=ApprovalStatus.CONSUMED,
                                                    decided_at=now))
                tx.record(IdentityEvent(action="device.register", account_id=device.account_id,
                                        details={"device_id": device.device_id, "jkt": jkt,
                                                 "revoked": ",".join(revoked)}))
        if failed:
            raise InvalidCredentials("the enrolment code is unknown, used or expired")
        return {"device_id": device.device_id, "account_id_hint": device.account_id[:6]}

    # ------------------------------------------------------------------ approvals
    def describe(self, approval_id: str, now: dt.datetime) -> dict[str, Any]:
        with self.core.store.reader() as tx:
            approval = tx.approval(approval_id)
        if approval is None or approval.kind is ApprovalKind.ENROLMENT or \
                approval.status is not ApprovalStatus.PENDING or approval.expires_at <= now:
            raise NotFound("no pending approval with this id", reason="APPROVAL_NOT_FOUND")
        client = self.core.client(approval.client_id)
        out: dict[str, Any] = {
            "approval": approval.approval_id, "kind": approval.kind.value,
            "challenge": approval.challenge,
            "client_name": client.client_name if client else approval.client_id,
            "expires_at": approval.expires_at.isoformat(),
            "level": approval.min_level.acr,
            "needs_code": approval.kind in (ApprovalKind.QR_LOGIN, ApprovalKind.STEP_UP),
        }
        if approval.kind is ApprovalKind.CIBA:
            out["binding_message"] = approval.binding_message
            out["scope"] = " ".join(sorted(approval.scope))
        return out

    def decide(self, approval_id: str, statement: str, now: dt.datetime) -> str:
        """Record the app's decision; returns ``approved`` or ``denied``."""
        device_id = peek_kid(statement)
        outcome = ""
        with self.core.store.transaction() as tx:
            device = tx.device(device_id)
            approval = tx.approval(approval_id)
            if device is None or not device.active or approval is None \
                    or approval.kind is ApprovalKind.ENROLMENT:
                tx.record(IdentityEvent(action="approval.decide", outcome="UNKNOWN_DEVICE"))
                outcome = "unknown"
            else:
                outcome = self._decide(tx, device, approval, statement, now)
        if outcome in ("unknown", "invalid"):
            raise InvalidCredentials("the approval could not be verified")
        if outcome == "closed":
            raise FailedPrecondition("this request is no longer pending",
                                     reason="APPROVAL_CLOSED")
        return outcome

    def _decide(self, tx: StoreTransaction, device: DeviceKey, approval: Approval,
                statement: str, now: dt.datetime) -> str:
        try:
            verified = verify_device_statement(
                statement, device.public_jwk, typ=APPROVAL_TYPE, audience=self.core.issuer,
                now=now, required=("approval", "challenge", "decision", "jti"))
        except AuthenticationFailed:
            tx.record(IdentityEvent(action="approval.decide", outcome="BAD_SIGNATURE",
                                    account_id=device.account_id,
                                    details={"device_id": device.device_id}))
            return "invalid"
        claims = verified.claims
        if claims["approval"] != approval.approval_id or \
                not secrets.compare_digest(str(claims["challenge"]), approval.challenge):
            return "invalid"
        if not tx.first_use("device_statement", f"{device.device_id}\x00{claims['jti']}",
                            now + dt.timedelta(minutes=2)):
            tx.record(IdentityEvent(action="approval.decide", outcome="REPLAYED",
                                    account_id=device.account_id))
            return "invalid"
        if approval.status is not ApprovalStatus.PENDING or approval.expires_at <= now:
            return "closed"
        if approval.account_id and approval.account_id != device.account_id:
            tx.record(IdentityEvent(action="approval.decide", outcome="WRONG_ACCOUNT",
                                    account_id=device.account_id))
            return "invalid"
        account = tx.account(device.account_id)
        approve = claims["decision"] == "approve"
        reason = ""
        if approve and approval.kind in (ApprovalKind.QR_LOGIN, ApprovalKind.STEP_UP) and \
                not secrets.compare_digest(str(claims.get("code", "")), approval.binding_message):
            approve, reason = False, "WRONG_CODE"
        if approve and account is not None:
            try:
                ensure_can_log_in(account, now)
            except FailedPrecondition as exc:
                approve, reason = False, exc.reason
        methods: tuple[Amr, ...] = (Amr.SWK, *verified.user_verification)
        tx.put_approval(dataclasses.replace(
            approval, status=ApprovalStatus.APPROVED if approve else ApprovalStatus.DENIED,
            account_id=device.account_id, device_id=device.device_id,
            methods=tuple(sorted(set(methods))), decided_at=now))
        tx.record(IdentityEvent(action=f"approval.{approval.kind.value}",
                                outcome="OK" if approve else (reason or "DENIED"),
                                account_id=device.account_id, client_id=approval.client_id,
                                details={"device_id": device.device_id,
                                         "approval": approval.approval_id}))
        return "approved" if approve else "denied"

    def pending(self, authorization: str, method: str, url: str,
                now: dt.datetime) -> list[dict[str, Any]]:
        """Client-initiated requests waiting for this device (``Authorization: Device <jws>``)."""
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "device" or not token:
            raise InvalidCredentials("a signed device request is required")
        device_id = peek_kid(token)
        with self.core.store.transaction() as tx:
            device = tx.device(device_id)
            if device is None or not device.active:
                raise InvalidCredentials("unknown device")
            verified = verify_device_statement(token, device.public_jwk, typ=DEVICE_REQUEST_TYPE,
                                               audience=self.core.issuer, now=now,
                                               required=("htm", "htu", "jti"))
            claims = verified.claims
            if claims["htm"] != method or normalize_htu(claims["htu"]) != normalize_htu(url):
                raise InvalidCredentials("the signed request names another request")
            if not tx.first_use("device_statement", f"{device.device_id}\x00{claims['jti']}",
                                now + dt.timedelta(minutes=2)):
                raise InvalidCredentials("the signed request was replayed")
            waiting = tx.pending_approvals(device.account_id, now)
        out = []
        for approval in waiting:
            client = self.core.client(approval.client_id)
            out.append({"approval": approval.approval_id, "kind": approval.kind.value,
                        "challenge": approval.challenge,
                        "client_name": client.client_name if client else approval.client_id,
                        "binding_message": approval.binding_message,
                        "expires_at": approval.expires_at.isoformat()})
        return out

