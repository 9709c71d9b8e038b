"""A relying party for provincial systems: FAPI 2.0 login against the provider.

One login::

    rp = RelyingParty(settings, transport, signing_key)
    url, pending = rp.start_login(now=now)              # PAR + PKCE + DPoP key; keep `pending`
    # ... the browser goes to `url`, logs in, comes back to the redirect URI ...
    tokens = rp.finish_login(callback_params, pending, now=now)   # state, iss, code, ID token
    profile = rp.userinfo(tokens, now=now)
    tokens = rp.refresh(tokens, now=now)
    logout_url = rp.logout_url(tokens, state="...")

Every request to the provider is authenticated with ``private_key_jwt`` (a fresh assertion with a
unique ``jti``, two minutes at most, ``aud`` = the issuer) and carries a DPoP proof; the provider's
DPoP nonce is remembered and the request retried once when it asks for a fresh one.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import jwt
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from vnid.assurance import AcrNames, AssuranceLevel
from vnid.errors import InvalidInput
from vnid.rp.dpop import DpopKey
from vnid.rp.errors import LoginFailed, ProviderError
from vnid.rp.id_token import IdTokenValidator, ValidatedIdToken
from vnid.rp.jwks import JwksCache
from vnid.rp.transport import HttpResponse, HttpTransport

__all__ = ["PendingLogin", "RelyingParty", "RpSettings", "TokenSet"]

JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


@dataclass(frozen=True, slots=True)
class RpSettings:
    """A relying party's registration: issuer, client id, redirect URI, signing key id and
    algorithm, scope."""
    issuer: str
    client_id: str
    redirect_uri: str
    signing_kid: str
    signing_alg: str = "ES256"
    scope: str = "openid"
    acr_values: str = "LoA1"
    min_level: AssuranceLevel = AssuranceLevel.LOA1
    post_logout_redirect_uri: str = ""

    @classmethod
    def from_config(cls, data: Mapping[str, Any]) -> RpSettings:
        known = {f for f in cls.__dataclass_fields__}
        unknown = set(data) - known
        if unknown:
            raise InvalidInput(f"unknown relying-party setting {sorted(unknown)[0]!r}",
                               reason="INVALID_SETTING")
        values = dict(data)
        if "min_level" in values:
            level = AcrNames().parse(str(values["min_level"]))
            if level is None:
                raise InvalidInput("min_level must be LoA1 or LoA2", reason="INVALID_SETTING")
            values["min_level"] = level
        return cls(**values)


@dataclass(slots=True)
class PendingLogin:
    """What the relying party keeps (server-side, bound to the browser) between the redirect to
    the provider and the callback."""

    state: str
    nonce: str
    code_verifier: str
    dpop: DpopKey
    min_level: AssuranceLevel
    max_age: int | None = None


@dataclass(slots=True)
class TokenSet:
    """The tokens of a login: the DPoP-bound access token, the ID token and its claims, and the
    refresh token."""
    access_token: str
    token_type: str
    expires_at: dt.datetime
    id_token: str
    id_claims: Mapping[str, Any]
    dpop: DpopKey
    refresh_token: str = ""
    scope: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class RelyingParty:
    """A FAPI 2.0 relying party: pushed authorisation requests with PKCE, private_key_jwt, DPoP-bound tokens,
    ID token validation, userinfo and logout."""
    def __init__(self, settings: RpSettings, transport: HttpTransport,
                 signing_key: PrivateKeyTypes, *, metadata: Mapping[str, Any] | None = None,
                 acr: AcrNames | None = None) -> None:
        self.settings = settings
        self.transport = transport
        self._key = signing_key
        self._metadata: Mapping[str, Any] | None = metadata
        self._acr = acr or AcrNames()
        self._validator: IdTokenValidator | None = None

    # ------------------------------------------------------------------ discovery
    @property
    def metadata(self) -> Mapping[str, Any]:
        if self._metadata is None:
            url = self.settings.issuer + "/.well-known/openid-configuration"
            response = self.transport.request("GET", url, headers={"accept": "application/json"})
            if response.status != 200:
                raise ProviderError("discovery_failed", status=response.status)
            data = response.json()
            if data.get("issuer") != self.settings.issuer:
                raise ProviderError("issuer_mismatch", "the discovery document names another "
                                    "issuer")
            self._metadata = data
        return self._metadata

    @property
    def validator(self) -> IdTokenValidator:
        if self._validator is None:
            jwks = JwksCache(self.transport, self.metadata["jwks_uri"])
            self._validator = IdTokenValidator(issuer=self.settings.issuer,
                                               client_id=self.settings.client_id, jwks=jwks,
                                               acr=self._acr)
        return self._validator

    # ------------------------------------------------------------------ requests
    def client_assertion(self, now: dt.datetime) -> str:
        claims = {"iss": self.settings.client_id, "sub": self.settings.client_id,
                  "aud": self.settings.issuer, "iat": int(now.timestamp()),
                  "exp": int(now.timestamp()) + 60, "jti": secrets.token_urlsafe(24)}
        return jwt.encode(claims, self._key, algorithm=self.settings.signing_alg,  # type: ignore[arg-type]
                          headers={"kid": self.settings.signing_kid})

    def _post(self, endpoint: str, form: dict[str, str], *, now: dt.datetime, dpop: DpopKey,
              access_token: str | None = None) -> HttpResponse:
        url = self.metadata[endpoint]
        origin = url.split("/", 3)[:3]
        origin_key = "/".join(origin)
        for attempt in range(2):
            headers = {"accept": "application/json",
                       "dpop": dpop.proof("POST", url, now=now, access_token=access_token,
                                          nonce=dpop.nonces.get(origin_key))}
            body = dict(form)
            if access_token is None:
                body.update(client_id=self.settings.client_id,
                            client_assertion_type=JWT_BEARER,
                            client_assertion=self.client_assertion(now))
            else:
                headers["authorization"] = f"DPoP {access_token}"
            response = self.transport.request("POST", url, headers=headers, form=body)
            nonce = response.headers.get("dpop-nonce")
            if nonce:
                dpop.nonces[origin_key] = nonce
            if attempt == 0 and nonce and response.status in (400, 401) and \
                    b"use_dpop_nonce" in (response.body + response.headers.get(
                        "www-authenticate", "").encode()):
                continue
            return response
        return response

    @staticmethod
    def _raise(response: HttpResponse) -> None:
        try:
            data = response.json()
        except ValueError:
            data = {}
        raise ProviderError(str(data.get("error", "http_error")),
                            str(data.get("error_description", "")), response.status)

    # ------------------------------------------------------------------ login
    def start_login(self, *, now: dt.datetime, scope: str | None = None,
                    acr_values: str | None = None, min_level: AssuranceLevel | None = None,
                    prompt: str = "", max_age: int | None = None,
                    login_hint: str = "") -> tuple[str, PendingLogin]:
        """Push the authorization request; returns the URL to send the browser to and what to
        keep until the callback."""
        verifier = secrets.token_urlsafe(48)
        challenge = _b64(hashlib.sha256(verifier.encode()).digest())
        pending = PendingLogin(state=secrets.token_urlsafe(24), nonce=secrets.token_urlsafe(24),
                               code_verifier=verifier, dpop=DpopKey(),
                               min_level=min_level or self.settings.min_level, max_age=max_age)
        form = {"response_type": "code", "redirect_uri": self.settings.redirect_uri,
                "scope": scope or self.settings.scope, "state": pending.state,
                "nonce": pending.nonce, "code_challenge": challenge,
                "code_challenge_method": "S256",
                "acr_values": acr_values or self.settings.acr_values,
                "dpop_jkt": pending.dpop.jkt}
        if prompt:
            form["prompt"] = prompt
        if max_age is not None:
            form["max_age"] = str(max_age)
        if login_hint:
            form["login_hint"] = login_hint
        response = self._post("pushed_authorization_request_endpoint", form, now=now,
                              dpop=pending.dpop)
        if response.status != 201:
            self._raise(response)
        request_uri = response.json()["request_uri"]
        url = self.metadata["authorization_endpoint"] + "?" + urlencode(
            {"client_id": self.settings.client_id, "request_uri": request_uri})
        return url, pending

    def finish_login(self, params: Mapping[str, str], pending: PendingLogin, *,
                     now: dt.datetime) -> TokenSet:
        """Handle the redirect back: check ``state`` and ``iss`` (RFC 9207), redeem the code,
        validate the ID token (nonce, minimum level, max_age)."""
        if not hmac.compare_digest(params.get("state", ""), pending.state):
            raise LoginFailed("the state does not match this login")
        if params.get("iss") != self.settings.issuer:
            raise LoginFailed("the response does not come from the expected issuer")
        if "error" in params:
            raise ProviderError(params["error"], params.get("error_description", ""))
        code = params.get("code", "")
        if not code:
            raise LoginFailed("the response carries no code")
        response = self._post("token_endpoint", {
            "grant_type": "authorization_code", "code": code,
            "redirect_uri": self.settings.redirect_uri,
            "code_verifier": pending.code_verifier}, now=now, dpop=pending.dpop)
        if response.status != 200:
            self._raise(response)
        return self._tokens(response.json(), pending.dpop, now, nonce=pending.nonce,
                            min_level=pending.min_level, max_age=pending.max_age)

    def _tokens(self, body: Mapping[str, Any], dpop: DpopKey, now: dt.datetime, *,
                nonce: str | None, min_level: AssuranceLevel, max_age: int | None,
                previous: TokenSet | None = None) -> TokenSet:
        if body.get("token_type", "").lower() != "dpop":
            raise LoginFailed("the provider did not bind the access token to the DPoP key")
        id_token = body.get("id_token") or (previous.id_token if previous else "")
        if body.get("id_token"):
            validated: ValidatedIdToken = self.validator.validate(
                id_token, now=now, nonce=nonce, min_level=min_level, max_age=max_age)
            claims = validated.claims
            if previous is not None and claims["sub"] != previous.id_claims["sub"]:
                raise LoginFailed("the refreshed ID token names another subject")
        elif previous is not None:
            claims = previous.id_claims
        else:
            raise LoginFailed("the token response has no ID token")
        return TokenSet(
            access_token=body["access_token"], token_type="DPoP",
            expires_at=now + dt.timedelta(seconds=int(body.get("expires_in", 0))),
            id_token=id_token, id_claims=claims, dpop=dpop,
            refresh_token=body.get("refresh_token") or (previous.refresh_token if previous
                                                        else ""),
            scope=body.get("scope", ""))

    def refresh(self, tokens: TokenSet, *, now: dt.datetime) -> TokenSet:
        if not tokens.refresh_token:
            raise LoginFailed("there is no refresh token")
        response = self._post("token_endpoint", {"grant_type": "refresh_token",
                                                 "refresh_token": tokens.refresh_token},
                              now=now, dpop=tokens.dpop)
        if response.status != 200:
            self._raise(response)
        level = self._acr.parse(str(tokens.id_claims.get("acr", ""))) or AssuranceLevel.LOA1
        return self._tokens(response.json(), tokens.dpop, now, nonce=None, min_level=level,
                            max_age=None, previous=tokens)

    def userinfo(self, tokens: TokenSet, *, now: dt.datetime) -> dict[str, Any]:
        url = self.metadata["userinfo_endpoint"]
        origin_key = "/".join(url.split("/", 3)[:3])
        for attempt in range(2):
            proof = tokens.dpop.proof("GET", url, now=now, access_token=tokens.access_token,
                                      nonce=tokens.dpop.nonces.get(origin_key))
            response = self.transport.request("GET", url, headers={
                "authorization": f"DPoP {tokens.access_token}", "dpop": proof,
                "accept": "application/json"})
            nonce = response.headers.get("dpop-nonce")
            if nonce:
                tokens.dpop.nonces[origin_key] = nonce
            if response.status == 401 and nonce and attempt == 0 and \
                    "use_dpop_nonce" in response.headers.get("www-authenticate", ""):
                continue
            break
        if response.status != 200:
            self._raise(response)
        data: dict[str, Any] = response.json()
        if data.get("sub") != tokens.id_claims.get("sub"):
            raise LoginFailed("userinfo names another subject than the ID token")
        return data

    def revoke(self, tokens: TokenSet, *, now: dt.datetime) -> None:
        token = tokens.refresh_token or tokens.access_token
        response = self._post("revocation_endpoint", {"token": token}, now=now,
                              dpop=tokens.dpop)
        if response.status != 200:
            self._raise(response)

    def logout_url(self, tokens: TokenSet, *, state: str = "") -> str:
        """RP-initiated logout: where to send the browser."""
        params = {"id_token_hint": tokens.id_token, "client_id": self.settings.client_id}
        if self.settings.post_logout_redirect_uri:
            params["post_logout_redirect_uri"] = self.settings.post_logout_redirect_uri
        if state:
            params["state"] = state
        return str(self.metadata["end_session_endpoint"]) + "?" + urlencode(params)
