"""OpenID Connect Client-Initiated Backchannel Authentication (CIBA) Core 1.0, poll mode.

A client (a provincial system, or the signing service asking a citizen to approve a remote
signature) names the person with ``login_hint`` (their personal ID number or tax code) and says what
the approval is for in ``binding_message``. The request appears in the person's app, which approves
or refuses it with the device key (:mod:`vnid.oidc.approvals`). Meanwhile the client polls the token
endpoint with ``grant_type=urn:openid:params:grant-type:ciba`` and ``auth_req_id``; it gets
``authorization_pending``, ``slow_down`` (if it polls faster than ``interval``), ``access_denied``,
``expired_token``, or the tokens. An approval with the key unlocked by PIN or biometrics is a
two-factor (level 2) authentication.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

from vnid.accounts import ensure_can_log_in
from vnid.assurance import AssuranceLevel, login_level
from vnid.errors import FailedPrecondition
from vnid.oauth2.clients import CIBA_GRANT, Client
from vnid.oauth2.errors import (
    AccessDenied,
    AuthorizationPending,
    ExpiredToken,
    InvalidDpopProof,
    InvalidGrant,
    InvalidRequest,
    InvalidScope,
    OAuthError,
    SlowDown,
    UnauthorizedClient,
    UnknownUserId,
    UnmetAuthenticationRequirements,
)
from vnid.oauth2.http import Request, Response
from vnid.oauth2.rfc9449_dpop import DpopProof
from vnid.oidc.approvals import new_approval
from vnid.oidc.core import ProviderCore
from vnid.oidc.ports import IdentityEvent, StoreTransaction
from vnid.oidc.records import ApprovalKind, ApprovalStatus, handle_hash, new_handle

__all__ = ["Ciba"]


class Ciba:
    def __init__(self, core: ProviderCore) -> None:
        self.core = core

    def authenticate(self, request: Request, now: dt.datetime) -> Response:
        """The backchannel authentication endpoint (CIBA §7)."""
        core = self.core
        try:
            if request.method != "POST":
                raise InvalidRequest("use POST")
            with core.transaction(request) as tx:
                client = core.authenticate_client(tx, request, now)
                if CIBA_GRANT not in client.grant_types:
                    raise UnauthorizedClient("this client may not use CIBA")
                params = request.params
                scopes = frozenset(params.get("scope", "").split())
                if "openid" not in scopes or not scopes <= (client.scopes | {"openid"}):
                    raise InvalidScope("scope must include openid and only allowed scopes")
                hint = "".join(ch for ch in params.get("login_hint", "").upper()
                               if ch not in " -.")
                if not hint or "login_hint_token" in params or "id_token_hint" in params:
                    raise InvalidRequest("name the person with login_hint only")
                message = params.get("binding_message", "")
                if not message or len(message) > 120:
                    raise InvalidRequest("binding_message is required (at most 120 characters)")
                acr = params.get("acr_values", "") or core.settings.default_acr
                level = core.settings.acr.minimum(acr) or AssuranceLevel.LOA1
                account = tx.account_by_identifier(hint)
                if account is None or tx.active_device(account.account_id) is None:
                    raise UnknownUserId("the person cannot be reached in the app")
                if account.level < level:
                    raise UnmetAuthenticationRequirements("the account is below that level")
                handle = new_handle()
                approval = new_approval(ApprovalKind.CIBA, client_id=client.client_id,
                                        account_id=account.account_id, now=now,
                                        lifetime=core.settings.ciba_lifetime, min_level=level,
                                        binding_message=message, scope=scopes,
                                        interval=core.settings.ciba_interval,
                                        approval_id=handle_hash(handle))
                tx.put_approval(approval)
                tx.record(IdentityEvent(action="ciba.request", account_id=account.account_id,
                                        client_id=client.client_id))
            return Response.json({
                "auth_req_id": handle,
                "expires_in": int(core.settings.ciba_lifetime.total_seconds()),
                "interval": core.settings.ciba_interval,
            })
        except OAuthError as exc:
            return Response.error(exc)

    def redeem(self, tx: StoreTransaction, client: Client, request: Request,
               now: dt.datetime, proof: DpopProof | None) -> dict[str, Any]:
        """The token endpoint's CIBA grant (CIBA §10-11)."""
        from vnid.oidc.tokens import CommitThenFail, issue_tokens

        handle = request.params.get("auth_req_id", "")
        approval = tx.approval(handle_hash(handle)) if handle and len(handle) < 100 else None
        if approval is None or approval.kind is not ApprovalKind.CIBA or \
                approval.client_id != client.client_id:
            raise InvalidGrant("auth_req_id is unknown")
        if approval.status is ApprovalStatus.CONSUMED:
            raise InvalidGrant("auth_req_id was already redeemed")
        if approval.status is ApprovalStatus.DENIED:
            raise AccessDenied("the person refused")
        if approval.status is ApprovalStatus.PENDING:
            if approval.expires_at <= now:
                raise ExpiredToken("the request expired")
            too_fast = approval.last_polled_at is not None and \
                now - approval.last_polled_at < dt.timedelta(seconds=approval.interval)
            tx.put_approval(dataclasses.replace(
                approval, last_polled_at=now,
                interval=approval.interval + 5 if too_fast else approval.interval))
            raise CommitThenFail(SlowDown("poll less often") if too_fast
                                 else AuthorizationPending("waiting for the person"))
        account = tx.account(approval.account_id)
        try:
            if account is None:
                raise FailedPrecondition("gone")
            ensure_can_log_in(account, now)
        except FailedPrecondition:
            raise AccessDenied("the account can no longer be used") from None
        level = login_level(approval.methods, account.level)
        if level < approval.min_level:
            tx.put_approval(dataclasses.replace(approval, status=ApprovalStatus.CONSUMED))
            raise CommitThenFail(AccessDenied("the approval did not reach the requested level"))
        tx.put_approval(dataclasses.replace(approval, status=ApprovalStatus.CONSUMED))
        if proof is None and client.dpop_bound_access_tokens:
            raise InvalidDpopProof("a DPoP proof is required")
        consented = tx.consent(account.account_id, client.client_id) if client.require_consent \
            else approval.scope
        return issue_tokens(self.core, tx, client, account_id=account.account_id, sid="",
                            grant_id=new_handle(18), scope=approval.scope,
                            claims_scope=approval.scope & consented, proof=proof,
                            auth_time=approval.decided_at or now, level=level,
                            methods=approval.methods, nonce="", now=now, refresh=False,
                            id_token=True)
