""":class:`signing.sign.remote.IdentityApprovals` on this server's identity provider: approvals of
remote signatures in the citizen app.

An approval is a CIBA request (poll mode) of the provider, made in process by the signing service
rather than through ``/id/bc-authorize``: the service, which keeps the exact hashes, also words the
binding message, so no caller can have the app show one thing while the SAD covers another. The
app lists, shows and answers it like any CIBA request; its handle is the ``auth_req_id`` the
caller gets back. The request is addressed to the credential's linked account, needs level 2, and
is marked consumed when it becomes a SAD (the token endpoint then refuses it too).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable
from typing import Any

from server.documents.stores import AuditScope
from signing.errors import FailedPrecondition
from signing.sign.remote import ApprovalState
from vnid.accounts import ensure_can_log_in
from vnid.assurance import AssuranceLevel, login_level
from vnid.errors import FailedPrecondition as AccountUnusable
from vnid.oidc.approvals import new_approval
from vnid.oidc.ports import IdentityEvent
from vnid.oidc.records import ApprovalKind, ApprovalStatus, handle_hash, new_handle

__all__ = ["SIGNING_CLIENT_ID", "ProviderApprovals"]

# The client id the approvals carry (the app shows the client's name when a client of this id
# is registered, else the id). No client can redeem them at the token endpoint without the handle.
SIGNING_CLIENT_ID = "vnegov-documents"


class ProviderApprovals:
    def __init__(self, provider: Callable[[], Any], scope: AuditScope) -> None:
        self._provider = provider  # the OpenIDProvider, looked up when needed
        self._scope = scope

    def _core(self) -> Any:
        provider = self._provider()
        if provider is None:
            raise FailedPrecondition("the identity provider does not run on this server",
                                     reason="APPROVAL_UNAVAILABLE")
        return provider.core

    def start(self, account_id: str, binding_message: str, *,
              at: dt.datetime) -> tuple[str, dt.datetime, int]:
        core = self._core()
        refusal = ""
        handle = new_handle()
        with core.store.transaction(request_id=self._scope.request_id,
                                    actor=self._scope.caller) as tx:
            account = tx.account(account_id)
            if account is None:
                refusal = "APPROVER_UNKNOWN"
            else:
                try:
                    ensure_can_log_in(account, at)
                except AccountUnusable as exc:
                    refusal = f"APPROVER_{exc.reason}"
            if not refusal and account is not None and account.level < AssuranceLevel.LOA2:
                refusal = "APPROVER_BELOW_LEVEL_2"
            if not refusal and tx.active_device(account_id) is None:
                refusal = "APPROVER_HAS_NO_DEVICE"
            if not refusal:
                settings = core.settings
                tx.put_approval(new_approval(
                    ApprovalKind.CIBA, client_id=SIGNING_CLIENT_ID, account_id=account_id,
                    now=at, lifetime=settings.ciba_lifetime, min_level=AssuranceLevel.LOA2,
                    binding_message=binding_message, scope=frozenset({"openid"}),
                    interval=settings.ciba_interval, approval_id=handle_hash(handle)))
            tx.record(IdentityEvent(action="ciba.request", outcome=refusal or "OK",
                                    account_id=account_id, client_id=SIGNING_CLIENT_ID,
                                    details={"purpose": "remote_signing"}))
        if refusal == "APPROVER_BELOW_LEVEL_2":
            raise FailedPrecondition("the official's electronic identity is not level 2",
                                     reason=refusal)
        if refusal == "APPROVER_HAS_NO_DEVICE":
            raise FailedPrecondition("the official has no device registered in the app",
                                     reason=refusal)
        if refusal:
            raise FailedPrecondition("the official's electronic identity cannot approve now",
                                     reason=refusal)
        return (handle, at + core.settings.ciba_lifetime, int(core.settings.ciba_interval))

    def state(self, handle: str, *, at: dt.datetime) -> ApprovalState | None:
        core = self._core()
        with core.store.reader() as tx:
            approval = tx.approval(handle_hash(handle))
            if approval is None or approval.kind is not ApprovalKind.CIBA or \
                    approval.client_id != SIGNING_CLIENT_ID:
                return None
            account = tx.account(approval.account_id)
            device = tx.device(approval.device_id) if approval.device_id else None
        level = 0
        if account is not None:
            try:
                ensure_can_log_in(account, at)
                level = int(login_level(approval.methods, account.level))
            except AccountUnusable:
                level = 0
        return ApprovalState(
            status=approval.status.value, account_id=approval.account_id,
            binding_message=approval.binding_message, expires_at=approval.expires_at,
            decided_at=approval.decided_at, level=level,
            device_active=device is not None and device.active
            and device.account_id == approval.account_id)

    def consume(self, handle: str) -> None:
        core = self._core()
        with core.store.transaction(request_id=self._scope.request_id,
                                    actor=self._scope.caller) as tx:
            approval = tx.approval(handle_hash(handle))
            if approval is None:
                return
            tx.put_approval(dataclasses.replace(approval, status=ApprovalStatus.CONSUMED))
            tx.record(IdentityEvent(action="ciba.signature", account_id=approval.account_id,
                                    client_id=SIGNING_CLIENT_ID))
