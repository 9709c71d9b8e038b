"""The UserInfo endpoint (OpenID Connect Core §5.3) as a DPoP-aware resource (RFC 9449 §7).

A DPoP-bound token must come with ``Authorization: DPoP`` and a proof made with its key over this
request, including the token's hash (``ath``); presenting it as a Bearer token, without a proof, or
with another key's proof fails. Claims are only those of the scopes the person consented to, under
the client's claim profile; the answer is JSON, or a signed and/or encrypted JWT when the client
registered for one.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from vnid.oauth2.errors import InsufficientScope, InvalidDpopProof, InvalidToken, OAuthError
from vnid.oauth2.http import Request, Response
from vnid.oauth2.rfc9449_dpop import DpopProof
from vnid.oidc.claims import ChipClaims, release_claims
from vnid.oidc.core import ProviderCore, epoch
from vnid.oidc.id_token import encrypt_for_client, sign_jwt
from vnid.oidc.ports import StoreTransaction
from vnid.oidc.records import TokenKind, TokenRecord, handle_hash

__all__ = ["bearer_token", "check_access", "userinfo"]


def bearer_token(request: Request) -> tuple[str, str]:
    """(scheme, token) from ``Authorization: Bearer|DPoP <token>``."""
    authorization = request.header("authorization") or ""
    scheme, _, token = authorization.partition(" ")
    scheme = scheme.lower()
    token = token.strip()
    if scheme not in ("bearer", "dpop") or not token or len(token) > 200:
        raise InvalidToken("an access token is required")
    return scheme, token


def check_access(tx: StoreTransaction, scheme: str, token: str, proof: DpopProof | None,
                 now: dt.datetime) -> TokenRecord:
    """The access token's record, after checking its sender constraint against ``proof`` (the
    request's DPoP proof, already verified for this request and token)."""
    record = tx.token(handle_hash(token))
    if record is None or record.kind is not TokenKind.ACCESS or not record.active(now):
        raise InvalidToken("the access token is invalid, revoked or expired")
    if record.jkt:
        if scheme != "dpop":
            raise InvalidToken("this token is DPoP-bound; present it with a DPoP proof")
        if proof is None or proof.jkt != record.jkt:
            raise InvalidDpopProof("the proof was made with another key than the token's")
    elif scheme == "dpop":
        raise InvalidToken("this token is not DPoP-bound")
    return record


def userinfo(core: ProviderCore, request: Request, now: dt.datetime) -> Response:
    nonce = core.nonce_header(now)
    scheme = "DPoP"
    try:
        presented, token = bearer_token(request)
        with core.checked(request, now) as checks:
            proof = checks.dpop(access_token=token, required=True) if presented == "dpop" \
                else None
            with core.transaction(request) as tx:
                checks.spend(tx)
                record = check_access(tx, presented, token, proof, now)
                scheme = "DPoP" if record.jkt else "Bearer"
                if not record.account_id or "openid" not in record.scope:
                    raise InsufficientScope("the token does not grant openid")
                account = tx.account(record.account_id)
                chip = chip_claims(tx, record.account_id) if account else None
                client = core.client(record.client_id)
                if account is None or client is None:
                    raise InvalidToken("the access token is invalid")
        claims: dict[str, Any] = {"sub": core.subject(client, account.account_id)}
        claims.update(release_claims(account, client.claim_profile, record.claims_scope,
                                     core.settings.account_type_codes, chip))
        if client.userinfo_signed_response_alg or client.userinfo_encrypted_response_alg:
            payload: str
            if client.userinfo_signed_response_alg:
                claims.update({"iss": core.issuer, "aud": client.client_id, "iat": epoch(now)})
                payload = sign_jwt(claims, core.keyring, client.userinfo_signed_response_alg)
                cty: str | None = "JWT"
            else:
                payload = json.dumps(claims, ensure_ascii=False)
                cty = None
            if client.userinfo_encrypted_response_alg:
                payload = encrypt_for_client(payload, client,
                                             client.userinfo_encrypted_response_alg,
                                             client.userinfo_encrypted_response_enc, cty=cty)
            return Response.jwt(payload, nonce)
        return Response.json(claims, 200, nonce)
    except OAuthError as exc:
        if exc.status == 400:
            exc.status = 401
        for name, value in nonce:
            if not any(k == name for k, _ in exc.headers):
                exc.headers.append((name, value))
        return Response.error(exc, www_authenticate=scheme)


def chip_claims(tx: StoreTransaction, account_id: str) -> ChipClaims | None:
    """The account's latest valid chip evidence, as claims (None without any)."""
    for record in tx.chip_evidence(account_id):
        if record.status == "valid":
            return ChipClaims(claims=record.claims, verified_at=record.verified_at,
                              document_expires=record.document_expires,
                              genuineness=record.genuineness)
    return None
