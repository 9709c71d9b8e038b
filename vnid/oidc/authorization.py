"""The authorization endpoint (RFC 6749 §4.1, OpenID Connect Core §3.1.2) with the FAPI 2.0 rules:
authorization code only, PKCE S256 only, exact redirect URI matching, pushed authorization requests
required for FAPI clients, and RFC 9207 ``iss`` in every response.

Errors found before the client and its redirect URI are trusted are shown on the provider's own
error page; later errors go back to the client (RFC 6749 §4.1.2.1).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping

from vnid.assurance import AssuranceLevel
from vnid.jose.verify import BadJws, verify_compact_jws
from vnid.oauth2.clients import Client
from vnid.oauth2.errors import (
    InvalidRequest,
    InvalidRequestUri,
    InvalidScope,
    OAuthError,
    RequestNotSupported,
    UnauthorizedClient,
    UnsupportedResponseType,
)
from vnid.oauth2.http import add_query
from vnid.oauth2.rfc7636_pkce import check_code_challenge
from vnid.oidc.core import Outcome, ProviderCore
from vnid.oidc.ports import StoreTransaction
from vnid.oidc.records import AuthorizationRequest, handle_hash

__all__ = [
    "REQUEST_URI_PREFIX",
    "RedirectableError",
    "error_redirect",
    "parse_authorization_request",
    "resolve_request",
]

REQUEST_URI_PREFIX = "urn:ietf:params:oauth:request_uri:"
_PROMPTS = frozenset({"none", "login", "consent"})
_JKT = re.compile(r"^[A-Za-z0-9_-]{43}$")
_SUPPORTED_SCOPES = frozenset({"openid", "profile", "national_id", "address", "offline_access"})


class RedirectableError(Exception):
    """An error to send back to a trusted redirect URI."""

    def __init__(self, error: OAuthError, redirect_uri: str, state: str) -> None:
        super().__init__(error.error)
        self.error = error
        self.redirect_uri = redirect_uri
        self.state = state


def error_redirect(core: ProviderCore, exc: RedirectableError) -> Outcome:
    params = {"error": exc.error.error, "iss": core.issuer}
    if exc.error.description:
        params["error_description"] = exc.error.description
    if exc.state:
        params["state"] = exc.state
    return Outcome(redirect=add_query(exc.redirect_uri, params))


def trusted_redirect(client: Client, params: Mapping[str, str]) -> str:
    """The redirect URI, if it is registered for the client character for character."""
    redirect_uri = params.get("redirect_uri", "")
    if not redirect_uri:
        raise InvalidRequest("redirect_uri is required")
    if redirect_uri not in client.redirect_uris:
        raise InvalidRequest("redirect_uri is not registered for this client")
    return redirect_uri


def _id_token_hint_sub(core: ProviderCore, hint: str, client_id: str) -> str:
    try:
        _, claims = verify_compact_jws(hint, core.keyring.public_keys(), ("ES256", "PS256", "EdDSA"))
    except BadJws:
        raise InvalidRequest("id_token_hint was not issued by this provider") from None
    aud = claims.get("aud")
    audiences = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
    if claims.get("iss") != core.issuer or client_id not in audiences:
        raise InvalidRequest("id_token_hint was not issued to this client")
    return str(claims.get("sub", ""))


def parse_authorization_request(core: ProviderCore, client: Client, params: Mapping[str, str], *,
                                pushed: bool, proof_jkt: str = "") -> AuthorizationRequest:
    """Validate every parameter. The redirect URI must already be trusted: errors raised here are
    :class:`RedirectableError`."""
    redirect_uri = trusted_redirect(client, params)
    state = params.get("state", "")
    try:
        return _parse(core, client, params, redirect_uri, state, pushed, proof_jkt)
    except OAuthError as exc:
        raise RedirectableError(exc, redirect_uri, state[:512]) from None


def _parse(core: ProviderCore, client: Client, params: Mapping[str, str], redirect_uri: str,
           state: str, pushed: bool, proof_jkt: str) -> AuthorizationRequest:
    if "authorization_code" not in client.grant_types:
        raise UnauthorizedClient("this client may not use the authorization code flow")
    if "request" in params:
        raise RequestNotSupported("request objects are not supported; use PAR")
    if "request_uri" in params:
        raise InvalidRequest("request_uri cannot be pushed")
    if params.get("response_type") != "code":
        raise UnsupportedResponseType("only response_type=code is supported")
    if params.get("response_mode", "query") != "query":
        raise InvalidRequest("only response_mode=query is supported")
    if len(state) > 512:
        raise InvalidRequest("state is too long")
    scopes = frozenset(params.get("scope", "").split())
    if "openid" not in scopes:
        raise InvalidScope("scope must include openid")
    if not scopes <= (client.scopes | {"openid"}) or not scopes <= _SUPPORTED_SCOPES:
        raise InvalidScope("a requested scope is unknown or not allowed for this client")
    challenge = check_code_challenge(params.get("code_challenge"),
                                     params.get("code_challenge_method"))
    nonce = params.get("nonce", "")
    if len(nonce) > 255:
        raise InvalidRequest("nonce is too long")
    prompt = frozenset(params.get("prompt", "").split())
    if not prompt <= _PROMPTS or ("none" in prompt and len(prompt) > 1):
        raise InvalidRequest("prompt must be none, login or consent (none alone)")
    max_age: int | None = None
    if "max_age" in params:
        try:
            max_age = int(params["max_age"])
        except ValueError:
            raise InvalidRequest("max_age must be a number of seconds") from None
        if max_age < 0:
            raise InvalidRequest("max_age must not be negative")
    acr_values = params.get("acr_values", "") or " ".join(client.default_acr_values)
    acr_values = acr_values or core.settings.default_acr
    if len(acr_values) > 200:
        raise InvalidRequest("acr_values is too long")
    min_level = core.settings.acr.minimum(acr_values) or AssuranceLevel.LOA1
    dpop_jkt = params.get("dpop_jkt", "")
    if dpop_jkt and not _JKT.fullmatch(dpop_jkt):
        raise InvalidRequest("dpop_jkt is not a JWK SHA-256 thumbprint")
    if proof_jkt:
        if dpop_jkt and dpop_jkt != proof_jkt:
            raise InvalidRequest("dpop_jkt does not match the DPoP proof")  # RFC 9449 §10.1
        dpop_jkt = proof_jkt
    hint_sub = ""
    if params.get("id_token_hint"):
        hint_sub = _id_token_hint_sub(core, params["id_token_hint"], client.client_id)
    login_hint = params.get("login_hint", "")
    if len(login_hint) > 64:
        raise InvalidRequest("login_hint is too long")
    return AuthorizationRequest(
        client_id=client.client_id, redirect_uri=redirect_uri, scope=scopes, state=state,
        nonce=nonce, code_challenge=challenge, prompt=prompt, max_age=max_age,
        acr_values=acr_values, min_level=min_level, login_hint=login_hint,
        ui_locales=params.get("ui_locales", "")[:50], dpop_jkt=dpop_jkt,
        id_token_hint_sub=hint_sub, pushed=pushed,
    )


def resolve_request(core: ProviderCore, tx: StoreTransaction, params: Mapping[str, str],
                    now: dt.datetime) -> tuple[Client, AuthorizationRequest]:
    """The authorization request a browser brings: pushed (``request_uri``) or in the query.

    Raises :class:`OAuthError` for errors to show on the provider's page and
    :class:`RedirectableError` for errors to send to the client.
    """
    client_id = params.get("client_id", "")
    client = core.client(client_id)
    if client is None:
        raise InvalidRequest("unknown client_id")
    request_uri = params.get("request_uri")
    if request_uri is not None:
        if not request_uri.startswith(REQUEST_URI_PREFIX):
            raise InvalidRequestUri("request_uri was not issued by this provider")
        pushed = tx.take_pushed(handle_hash(request_uri[len(REQUEST_URI_PREFIX):]), now)
        if pushed is None or pushed.client_id != client.client_id:
            # Unknown, expired, used before, or pushed by another client: one answer for all.
            raise InvalidRequestUri("request_uri is unknown, expired or already used")
        return client, pushed
    if client.require_pushed_authorization_requests:
        raise InvalidRequest("this client must push its authorization requests (PAR)")
    return client, parse_authorization_request(core, client, params, pushed=False)
