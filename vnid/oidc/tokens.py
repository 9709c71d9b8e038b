"""The token endpoint (RFC 6749 §3.2, OpenID Connect Core §3.1.3) and the tokens it issues.

Grants: ``authorization_code`` (with PKCE and DPoP binding), ``refresh_token`` (rotation with reuse
detection), ``client_credentials`` (services calling the gRPC API) and CIBA
(``urn:openid:params:grant-type:ciba``, :mod:`vnid.oidc.ciba`).

Attacks and what happens:

* a code used twice — the second use fails and every token issued from the first is revoked
  (RFC 6749 §4.1.2, RFC 9700 §4.5);
* a code presented by another client, with another redirect URI, without the PKCE verifier, or
  without the proof of the DPoP key it was bound to — ``invalid_grant``;
* a rotated refresh token used again — the whole grant is revoked (RFC 9700 §4.14.2).

Access and refresh tokens are opaque random strings; the provider keeps only their hashes.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

from vnid.accounts import ensure_can_log_in
from vnid.assurance import Amr, AssuranceLevel, amr_claim
from vnid.errors import FailedPrecondition
from vnid.oauth2.clients import CIBA_GRANT, Client
from vnid.oauth2.errors import (
    InvalidDpopProof,
    InvalidGrant,
    InvalidRequest,
    InvalidScope,
    OAuthError,
    UnauthorizedClient,
    UnsupportedGrantType,
)
from vnid.oauth2.http import Request, Response
from vnid.oauth2.rfc7636_pkce import verify_code_verifier
from vnid.oauth2.rfc9449_dpop import DpopProof
from vnid.oidc.core import ProviderCore, epoch, json_safe, scope_text
from vnid.oidc.id_token import signed_for_client
from vnid.oidc.ports import IdentityEvent, StoreTransaction
from vnid.oidc.records import TokenKind, TokenRecord, handle_hash, new_handle

__all__ = [
    "ACCESS_PREFIX",
    "CommitThenFail",
    "REFRESH_PREFIX",
    "TokenEndpoint",
    "issue_tokens",
]

ACCESS_PREFIX = "vnat_"
REFRESH_PREFIX = "vnrt_"


class CommitThenFail(Exception):
    """Fail the request, but only after committing what was done (revocations, audit)."""

    def __init__(self, error: OAuthError) -> None:
        super().__init__(error.error)
        self.error = error


def issue_tokens(core: ProviderCore, tx: StoreTransaction, client: Client, *, account_id: str,
                 sid: str, grant_id: str, scope: frozenset[str], claims_scope: frozenset[str],
                 proof: DpopProof | None, auth_time: dt.datetime | None,
                 level: AssuranceLevel, methods: tuple[Amr, ...], nonce: str, now: dt.datetime,
                 refresh: bool,
                 id_token: bool) -> dict[str, Any]:
    settings = core.settings
    access = ACCESS_PREFIX + new_handle()
    lifetime = settings.access_token_lifetime if account_id else \
        settings.client_credentials_lifetime
    jkt = proof.jkt if proof is not None else ""
    base = TokenRecord(token_hash=handle_hash(access), kind=TokenKind.ACCESS,
                       client_id=client.client_id, grant_id=grant_id, scope=scope, issued_at=now,
                       expires_at=now + lifetime, account_id=account_id, sid=sid,
                       claims_scope=claims_scope, jkt=jkt, auth_time=auth_time, level=level,
                       methods=methods)
    tx.put_token(base)
    body: dict[str, Any] = {"access_token": access, "token_type": "DPoP" if jkt else "Bearer",
                            "expires_in": int(lifetime.total_seconds()),
                            "scope": scope_text(scope)}
    if refresh:
        token = REFRESH_PREFIX + new_handle()
        offline = "offline_access" in scope
        rt_life = settings.offline_refresh_token_lifetime if offline else \
            settings.refresh_token_lifetime
        tx.put_token(dataclasses.replace(base, token_hash=handle_hash(token),
                                         kind=TokenKind.REFRESH, expires_at=now + rt_life,
                                         jkt=""))
        body["refresh_token"] = token
    if id_token:
        assert auth_time is not None
        claims = json_safe({
            "iss": core.issuer, "sub": core.subject(client, account_id), "aud": client.client_id,
            "azp": client.client_id, "iat": epoch(now),
            "exp": epoch(now + settings.id_token_lifetime), "auth_time": epoch(auth_time),
            "nonce": nonce, "acr": settings.acr.name(level), "amr": amr_claim(methods),
            "sid": sid,
        })
        body["id_token"] = signed_for_client(
            claims, client, core.keyring, sign_alg=client.id_token_signed_response_alg,
            enc_alg=client.id_token_encrypted_response_alg,
            enc=client.id_token_encrypted_response_enc)
    return body


class TokenEndpoint:
    def __init__(self, core: ProviderCore) -> None:
        self.core = core
        from vnid.oidc.ciba import Ciba

        self._ciba = Ciba(core)

    def handle(self, request: Request, now: dt.datetime) -> Response:
        core = self.core
        headers = core.nonce_header(now)
        failure: OAuthError | None = None
        try:
            if request.method != "POST":
                raise InvalidRequest("use POST")
            with core.checked(request, now) as checks:
                client = checks.client()
                grant_type = request.params.get("grant_type", "")
                if grant_type not in client.grant_types:
                    if grant_type in ("authorization_code", "refresh_token",
                                      "client_credentials", CIBA_GRANT):
                        raise UnauthorizedClient("this client may not use this grant type")
                    raise UnsupportedGrantType("unsupported grant_type")
                proof = checks.dpop()
                with core.transaction(request) as tx:
                    checks.spend(tx)
                    try:
                        if grant_type == "authorization_code":
                            body = self._code(tx, client, request, now, proof)
                        elif grant_type == "refresh_token":
                            body = self._refresh(tx, client, request, now, proof)
                        elif grant_type == "client_credentials":
                            body = self._client_credentials(tx, client, request, now, proof)
                        else:
                            body = self._ciba.redeem(tx, client, request, now, proof)
                    except CommitThenFail as exc:
                        failure = exc.error
            if failure is not None:
                raise failure
            return Response.json(body, 200, headers)
        except OAuthError as exc:
            for name, value in headers:
                if not any(k == name for k, _ in exc.headers):
                    exc.headers.append((name, value))
            return Response.error(exc)

    @staticmethod
    def _proof(client: Client, proof: DpopProof | None, bound_jkt: str = "") -> DpopProof | None:
        if proof is None and (client.dpop_bound_access_tokens or bound_jkt):
            raise InvalidDpopProof("a DPoP proof is required")
        if bound_jkt and (proof is None or proof.jkt != bound_jkt):
            raise InvalidGrant("the DPoP key differs from the one the code is bound to")
        return proof

    def _code(self, tx: StoreTransaction, client: Client, request: Request,
              now: dt.datetime, proof: DpopProof | None) -> dict[str, Any]:
        params = request.params
        code = params.get("code", "")
        if not code or len(code) > 200:
            raise InvalidRequest("code is required")
        record, reused = tx.take_code(handle_hash(code), now)
        if record is None:
            raise InvalidGrant("the code is unknown")
        if reused:
            revoked = tx.revoke_grant(record.grant_id, now)
            tx.record(IdentityEvent(action="code.reuse", outcome="TOKENS_REVOKED",
                                    account_id=record.account_id, client_id=client.client_id,
                                    details={"grant_id": record.grant_id, "revoked": revoked}))
            raise CommitThenFail(InvalidGrant("the code was already used"))
        if record.client_id != client.client_id:
            tx.record(IdentityEvent(action="code.wrong_client", outcome="INVALID_GRANT",
                                    client_id=client.client_id,
                                    details={"issued_to": record.client_id}))
            raise CommitThenFail(InvalidGrant("the code was issued to another client"))
        if record.expires_at <= now:
            raise CommitThenFail(InvalidGrant("the code has expired"))
        if params.get("redirect_uri") != record.redirect_uri:
            raise CommitThenFail(InvalidGrant("redirect_uri differs from the authorization "
                                              "request"))
        try:
            verify_code_verifier(params.get("code_verifier"), record.code_challenge)
        except OAuthError as exc:
            raise CommitThenFail(exc) from None
        proof = self._proof(client, proof, record.dpop_jkt)
        account = tx.account(record.account_id)
        session = tx.session_by_sid(record.sid)
        if account is None or session is None or session.ended_at is not None:
            raise CommitThenFail(InvalidGrant("the login behind the code has ended"))
        return issue_tokens(
            self.core, tx, client, account_id=record.account_id, sid=record.sid,
            grant_id=record.grant_id, scope=record.scope, claims_scope=record.claims_scope,
            proof=proof, auth_time=record.auth_time, level=record.level, methods=record.methods,
            nonce=record.nonce, now=now, refresh="refresh_token" in client.grant_types,
            id_token=True)

    def _refresh(self, tx: StoreTransaction, client: Client, request: Request,
                 now: dt.datetime, proof: DpopProof | None) -> dict[str, Any]:
        value = request.params.get("refresh_token", "")
        if not value:
            raise InvalidRequest("refresh_token is required")
        record = tx.token(handle_hash(value))
        if record is None or record.kind is not TokenKind.REFRESH or \
                record.client_id != client.client_id:
            raise InvalidGrant("the refresh token is unknown")
        if not record.active(now):
            raise InvalidGrant("the refresh token was revoked or has expired")
        if client.refresh_token_rotation and not tx.use_refresh(record.token_hash, now):
            revoked = tx.revoke_grant(record.grant_id, now)
            tx.record(IdentityEvent(action="refresh.reuse", outcome="TOKENS_REVOKED",
                                    account_id=record.account_id, client_id=client.client_id,
                                    details={"grant_id": record.grant_id, "revoked": revoked}))
            raise CommitThenFail(InvalidGrant("the refresh token was already used"))
        scope = record.scope
        if "scope" in request.params:
            scope = frozenset(request.params["scope"].split())
            if not scope <= record.scope:
                raise InvalidScope("a refresh cannot widen the scope")
        proof = self._proof(client, proof, record.jkt)
        account = tx.account(record.account_id)
        try:
            if account is None:
                raise FailedPrecondition("gone")
            ensure_can_log_in(account, now)
        except FailedPrecondition:
            raise InvalidGrant("the account can no longer be used") from None
        body = issue_tokens(
            self.core, tx, client, account_id=record.account_id, sid=record.sid,
            grant_id=record.grant_id, scope=scope, claims_scope=record.claims_scope & scope,
            proof=proof, auth_time=record.auth_time, level=record.level, methods=record.methods,
            nonce="", now=now, refresh=client.refresh_token_rotation,
            id_token="openid" in scope and record.auth_time is not None)
        return body

    def _client_credentials(self, tx: StoreTransaction, client: Client, request: Request,
                            now: dt.datetime, proof: DpopProof | None) -> dict[str, Any]:
        requested = frozenset(request.params.get("scope", "").split()) or client.service_scopes
        if not requested <= client.service_scopes:
            raise InvalidScope("a requested scope is not granted to this client")
        proof = self._proof(client, proof)
        tx.record(IdentityEvent(action="token.client_credentials", client_id=client.client_id,
                                details={"scope": scope_text(requested)}))
        return issue_tokens(self.core, tx, client, account_id="", sid="", grant_id=new_handle(18),
                            scope=requested, claims_scope=frozenset(), proof=proof,
                            auth_time=None, level=AssuranceLevel.LOA1, methods=(), nonce="", now=now,
                            refresh=False, id_token=False)
