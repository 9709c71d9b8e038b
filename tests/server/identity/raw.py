"""A hand-driven FAPI client for attack tests: every parameter, assertion and proof can be bent."""

from __future__ import annotations

import datetime as dt
import secrets
import time
from typing import Any
from urllib.parse import urlencode

import httpx
import jwt

from tests.server.identity.harness import Browser, IdentityServer, callback_params, pkce
from vnid.rp.dpop import DpopKey

JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


class RawClient:
    def __init__(self, idp: IdentityServer, client_id: str) -> None:
        self.idp = idp
        self.c = idp.registered[client_id]
        self.http = httpx.Client(timeout=10, follow_redirects=False)
        self.dpop = DpopKey()
        self.nonce: str | None = None
        self.offset = dt.timedelta(0)  # how far the client's clock is ahead (with the server's)

    def close(self) -> None:
        self.http.close()

    def assertion(self, *, jti: str | None = None, alg: str = "ES256", lifetime: int = 60,
                  aud: object = None, key: Any = None, iss: str | None = None) -> str:
        now = int(time.time() + self.offset.total_seconds())
        claims = {"iss": iss or self.c.client_id, "sub": iss or self.c.client_id,
                  "aud": self.idp.issuer if aud is None else aud, "iat": now, "exp": now + lifetime,
                  "jti": jti or secrets.token_urlsafe(16)}
        return jwt.encode(claims, self.c.key if key is None else key, algorithm=alg,
                          headers={"kid": self.c.kid})

    def auth(self, **kw: Any) -> dict[str, str]:
        return {"client_id": self.c.client_id, "client_assertion_type": JWT_BEARER,
                "client_assertion": self.assertion(**kw)}

    def proof(self, method: str, url: str, *, access_token: str | None = None,
              key: DpopKey | None = None) -> str:
        return (key or self.dpop).proof(method, url, now=dt.datetime.now(dt.UTC) + self.offset,
                                        access_token=access_token, nonce=self.nonce)

    def post(self, path: str, form: dict[str, str], *, dpop: str | None | bool = True,
             retry_nonce: bool = True, headers: dict[str, str] | None = None) -> httpx.Response:
        url = self.idp.issuer + path
        for _ in range(2):
            hdrs = dict(headers or {})
            if dpop is True:
                hdrs["dpop"] = self.proof("POST", url)
            elif isinstance(dpop, str):
                hdrs["dpop"] = dpop
            r = self.http.post(url, data=form, headers=hdrs)
            if r.headers.get("dpop-nonce"):
                self.nonce = r.headers["dpop-nonce"]
            if retry_nonce and r.status_code == 400 and dpop is True and \
                    r.json().get("error") == "use_dpop_nonce":
                if "client_assertion" in form:  # the first one is used up, as any jti is
                    form = {**form, "client_assertion": self.assertion()}
                continue
            return r
        return r

    def par(self, **params: str) -> httpx.Response:
        verifier, challenge = pkce()
        form = {"response_type": "code", "redirect_uri": self.c.redirect_uri,
                "scope": "openid national_id", "code_challenge": challenge,
                "code_challenge_method": "S256", "state": secrets.token_urlsafe(8),
                "nonce": secrets.token_urlsafe(8)}
        form.update(params)
        form = {k: v for k, v in form.items() if v is not None}
        self.verifier = verifier
        self.pushed = form
        return self.post("/par", {**form, **self.auth()})

    def authorize_url(self, request_uri: str) -> str:
        return self.idp.issuer + "/authorize?" + urlencode(
            {"client_id": self.c.client_id, "request_uri": request_uri})

    def code(self, browser: Browser, **params: str) -> dict[str, str]:
        """A code for the browser's session (the browser must be logged in)."""
        r = self.par(**params)
        assert r.status_code == 201, r.text
        return callback_params(browser.http.get(self.authorize_url(r.json()["request_uri"])))

    def redeem(self, code: str, *, verifier: str | None = None, redirect_uri: str | None = None,
               dpop: str | None | bool = True, **auth: Any) -> httpx.Response:
        return self.post("/token", {
            "grant_type": "authorization_code", "code": code,
            "redirect_uri": redirect_uri or self.c.redirect_uri,
            "code_verifier": verifier or self.verifier, **self.auth(**auth)}, dpop=dpop)

    def userinfo(self, access_token: str, *, scheme: str = "DPoP", dpop: str | None | bool = True,
                 key: DpopKey | None = None) -> httpx.Response:
        url = self.idp.issuer + "/userinfo"
        for _ in range(2):
            headers = {"authorization": f"{scheme} {access_token}"}
            if dpop is True:
                headers["dpop"] = self.proof("GET", url, access_token=access_token, key=key)
            elif isinstance(dpop, str):
                headers["dpop"] = dpop
            r = self.http.get(url, headers=headers)
            if r.headers.get("dpop-nonce"):
                self.nonce = r.headers["dpop-nonce"]
            if r.status_code == 401 and dpop is True and \
                    "use_dpop_nonce" in r.headers.get("www-authenticate", ""):
                continue
            return r
        return r


def logged_in_browser(idp: IdentityServer, client: RawClient, citizen: Any,
                      **params: str) -> tuple[Browser, dict[str, str]]:
    """A browser with a provider session (and consent for ``client``), and the first code."""
    browser = Browser(idp.issuer)
    r = client.par(**params)
    assert r.status_code == 201, r.text
    browser.go(client.authorize_url(r.json()["request_uri"]))
    return browser, callback_params(browser.login(citizen))


