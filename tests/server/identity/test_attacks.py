"""Each attack in its own test, showing it fail at our provider (and, for forged ID tokens, at the
relying-party library)."""

from __future__ import annotations

import base64
import datetime as dt
import json
import secrets
from collections.abc import Iterator

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from tests.server.identity.harness import Browser, Citizen, IdentityServer, callback_params, pkce
from tests.server.identity.raw import RawClient, logged_in_browser
from vnid.rp import TokenInvalid
from vnid.rp.dpop import DpopKey


@pytest.fixture
def hcm(idp: IdentityServer) -> Iterator[RawClient]:
    client = RawClient(idp, "dvc-hcm")
    yield client
    client.close()


@pytest.fixture(scope="module")
def logged_in(idp: IdentityServer, citizen: Citizen) -> Iterator[Browser]:
    """One level-2 provider session for the module (codes come silently from it)."""
    client = RawClient(idp, "dvc-hcm")
    browser, _ = logged_in_browser(idp, client, citizen, acr_values="LoA2")
    client.close()
    yield browser
    browser.close()


@pytest.fixture
def session(hcm: RawClient, logged_in: Browser) -> tuple[Browser, dict[str, str]]:
    """The module's browser session and a fresh code pushed by ``hcm``."""
    return logged_in, hcm.code(logged_in, acr_values="LoA2")


def error_of(r: httpx.Response) -> str:
    return str(r.json().get("error"))


# ------------------------------------------------------------------------- PKCE


def test_pkce_plain_is_refused(hcm: RawClient) -> None:
    r = hcm.par(code_challenge_method="plain", code_challenge="a" * 43)
    assert r.status_code == 400 and error_of(r) == "invalid_request"
    assert "S256" in r.json()["error_description"]


def test_pkce_missing_is_refused(hcm: RawClient) -> None:
    r = hcm.par(code_challenge=None, code_challenge_method=None)  # type: ignore[arg-type]
    assert r.status_code == 400 and error_of(r) == "invalid_request"


def test_pkce_missing_is_refused_on_the_classic_authorization_endpoint(idp: IdentityServer
                                                                       ) -> None:
    """A client that may send plain authorization requests still gets no code without PKCE, so no
    code can ever be redeemed with a verifier that was never committed to (downgrade)."""
    with httpx.Client() as http:
        r = http.get(idp.issuer + "/authorize", params={
            "client_id": "classic", "response_type": "code", "scope": "openid",
            "redirect_uri": "http://127.0.0.1:9/cb", "state": "s1"})
    params = callback_params(r)
    assert params["error"] == "invalid_request" and params["state"] == "s1"
    assert params["iss"] == idp.issuer and "code" not in params


def test_verifier_without_challenge_is_refused() -> None:
    from vnid.oauth2.errors import InvalidGrant
    from vnid.oauth2.rfc7636_pkce import verify_code_verifier

    verifier, _ = pkce()
    with pytest.raises(InvalidGrant):
        verify_code_verifier(verifier, None)


def test_verifier_for_a_code_without_challenge_is_refused_at_the_token_endpoint(
        idp: IdentityServer, hcm: RawClient, logged_in: Browser) -> None:
    """The provider never issues a code without a challenge (see above). One planted in its store,
    as an older release or another writer might have left it, is still refused when a verifier
    arrives; the same code with its challenge, planted alike, is redeemed."""
    from vnid.oidc.records import AuthorizationCode, handle_hash, new_handle

    now = dt.datetime.now(dt.UTC)
    verifier, challenge = pkce()
    cookie = logged_in.http.cookies.get("vnid_session")
    assert cookie

    def plant(code_challenge: str) -> str:
        code = new_handle()
        with idp.provider.core.store.transaction() as tx:
            live = tx.session(handle_hash(cookie))
            assert live is not None
            tx.put_code(AuthorizationCode(
                code_hash=handle_hash(code), client_id="dvc-hcm", account_id=live.account_id,
                sid=live.sid, redirect_uri=hcm.c.redirect_uri, scope=frozenset({"openid"}),
                claims_scope=frozenset(), nonce="", code_challenge=code_challenge, dpop_jkt="",
                auth_time=live.auth_time, level=live.level, methods=live.methods, issued_at=now,
                expires_at=now + dt.timedelta(seconds=30), grant_id=new_handle(18)))
        return code

    r = hcm.redeem(plant(""), verifier=verifier)
    assert r.status_code == 400 and error_of(r) == "invalid_grant"
    assert hcm.redeem(plant(challenge), verifier=verifier).status_code == 200


def test_wrong_verifier_burns_the_code(hcm: RawClient, session: tuple[Browser, dict[str, str]]
                                       ) -> None:
    _, params = session
    other, _ = pkce()
    r = hcm.redeem(params["code"], verifier=other)
    assert r.status_code == 400 and error_of(r) == "invalid_grant"
    assert error_of(hcm.redeem(params["code"])) == "invalid_grant"  # gone, even with the right one


# ------------------------------------------------------------------------- redirect URIs


@pytest.mark.parametrize("mutate", [
    lambda u: u + "/", lambda u: u + "x", lambda u: u[:-1], lambda u: u.replace("127.0.0.1", "127.0.0.01"),
    lambda u: u.replace("http://", "HTTP://"), lambda u: u + "?next=/evil", lambda u: u + "#x",
    lambda u: u.replace("/cb", "/%63b"), lambda u: u.replace(":9/", ":09/"),
], ids=["slash", "suffix", "truncated", "host", "scheme-case", "query", "fragment", "encoded",
        "port"])
def test_redirect_uri_must_match_exactly(hcm: RawClient, mutate: object) -> None:
    changed = mutate(hcm.c.redirect_uri)  # type: ignore[operator]
    assert changed != hcm.c.redirect_uri
    r = hcm.par(redirect_uri=changed)
    assert r.status_code == 400 and error_of(r) == "invalid_request"


def test_redirect_uri_must_match_at_the_token_endpoint(
        hcm: RawClient, session: tuple[Browser, dict[str, str]]) -> None:
    browser, _ = session
    params = hcm.code(browser)
    r = hcm.redeem(params["code"], redirect_uri=hcm.c.redirect_uri + "/")
    assert error_of(r) == "invalid_grant"


def test_classic_authorization_with_a_foreign_redirect_is_not_redirected(idp: IdentityServer
                                                                         ) -> None:
    verifier, challenge = pkce()
    with httpx.Client() as http:
        r = http.get(idp.issuer + "/authorize", params={
            "client_id": "classic", "response_type": "code", "scope": "openid",
            "redirect_uri": "http://127.0.0.1:9/cb.evil", "code_challenge": challenge,
            "code_challenge_method": "S256"})
    assert r.status_code == 400 and "location" not in r.headers
    assert "invalid_request" in r.text


# ------------------------------------------------------------------------- codes


def test_code_reuse_fails_and_revokes_the_first_tokens(
        hcm: RawClient, session: tuple[Browser, dict[str, str]]) -> None:
    _, params = session
    first = hcm.redeem(params["code"])
    assert first.status_code == 200, first.text
    tokens = first.json()
    assert hcm.userinfo(tokens["access_token"]).status_code == 200
    again = hcm.redeem(params["code"])
    assert again.status_code == 400 and error_of(again) == "invalid_grant"
    # Everything issued from the code is dead now.
    assert hcm.userinfo(tokens["access_token"]).status_code == 401
    refresh = hcm.post("/token", {"grant_type": "refresh_token",
                                  "refresh_token": tokens["refresh_token"], **hcm.auth()})
    assert error_of(refresh) == "invalid_grant"
    info = hcm.post("/introspect", {"token": tokens["access_token"], **hcm.auth()}, dpop=None)
    assert info.json() == {"active": False}


def test_code_redeemed_by_another_client_is_refused(
        idp: IdentityServer, hcm: RawClient, session: tuple[Browser, dict[str, str]]) -> None:
    _, params = session
    thief = RawClient(idp, "dvc-hanoi")
    # Everything but the client is right, the DPoP key the code is bound to included: only the
    # client binding stands in the way.
    thief.dpop, thief.nonce = hcm.dpop, hcm.nonce
    try:
        r = thief.redeem(params["code"], verifier=hcm.verifier, redirect_uri=hcm.c.redirect_uri)
    finally:
        thief.close()
    assert r.status_code == 400 and error_of(r) == "invalid_grant"
    assert error_of(hcm.redeem(params["code"])) == "invalid_grant"  # and the code is burnt


def test_code_bound_to_a_dpop_key_needs_that_key(
        hcm: RawClient, session: tuple[Browser, dict[str, str]]) -> None:
    browser, _ = session
    params = hcm.code(browser, dpop_jkt=hcm.dpop.jkt)
    stolen_proof = hcm.proof("POST", hcm.idp.issuer + "/token", key=DpopKey())
    r = hcm.redeem(params["code"], dpop=stolen_proof)
    assert r.status_code == 400 and error_of(r) == "invalid_grant"


# ------------------------------------------------------------------------- client assertions


def test_replayed_client_assertion_is_refused(hcm: RawClient) -> None:
    assertion = hcm.auth(jti="replayed-" + secrets.token_hex(8))
    form = {"grant_type": "client_credentials", **assertion}
    first = hcm.post("/par", {"response_type": "code", **form}, dpop=None)
    assert error_of(first) != "invalid_client"  # the assertion itself was good
    second = hcm.post("/par", {"response_type": "code", **form}, dpop=None)
    assert second.status_code == 401 and error_of(second) == "invalid_client"


def test_long_lived_client_assertion_is_refused(hcm: RawClient) -> None:
    r = hcm.post("/par", {"response_type": "code", **hcm.auth(lifetime=300)}, dpop=None)
    assert r.status_code == 401 and error_of(r) == "invalid_client"


def test_client_assertion_for_another_audience_is_refused(hcm: RawClient) -> None:
    r = hcm.post("/par", {"response_type": "code",
                          **hcm.auth(aud="https://other.example/id")}, dpop=None)
    assert error_of(r) == "invalid_client"


AUDIENCE_ENDPOINTS = {
    "/par": {"response_type": "code"},
    "/token": {"grant_type": "authorization_code", "code": "x", "code_verifier": "x" * 43},
    "/introspect": {"token": "x"},
    "/revoke": {"token": "x"},
    "/bc-authorize": {"scope": "openid", "login_hint": "x"},
}


@pytest.mark.parametrize("path", sorted(AUDIENCE_ENDPOINTS))
@pytest.mark.parametrize("shape", ["issuer-in-array", "issuer-and-another", "another-in-array",
                                   "endpoint-url", "issuer-with-slash", "number"])
def test_client_assertion_aud_other_than_the_issuer_string_is_refused_everywhere(
        idp: IdentityServer, path: str, shape: str) -> None:
    """FAPI 2.0 §5.3.2.1: ``aud`` is the issuer, as a single string, at every endpoint that
    authenticates clients. The same request with ``aud`` = the issuer gets past authentication."""
    client = RawClient(idp, "ciba-signer" if path == "/bc-authorize" else "dvc-hcm")
    try:
        aud = {"issuer-in-array": [idp.issuer],
               "issuer-and-another": [idp.issuer, "https://other.example/id"],
               "another-in-array": ["https://other.example/id"],
               "endpoint-url": idp.issuer + path,
               "issuer-with-slash": idp.issuer + "/",
               "number": 1}[shape]
        form = AUDIENCE_ENDPOINTS[path]
        refused = client.post(path, {**form, **client.auth(aud=aud)}, dpop=None)
        assert refused.status_code == 401 and error_of(refused) == "invalid_client", refused.text
        accepted = client.post(path, {**form, **client.auth()}, dpop=None)
        assert accepted.status_code != 401, accepted.text
    finally:
        client.close()


def _unsigned(claims: dict[str, object], header: dict[str, object]) -> str:
    def part(obj: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()
    return f"{part(header)}.{part(claims)}."


def test_client_assertion_with_alg_none_is_refused(hcm: RawClient) -> None:
    now = int(dt.datetime.now(dt.UTC).timestamp())
    token = _unsigned({"iss": "dvc-hcm", "sub": "dvc-hcm", "aud": hcm.idp.issuer, "iat": now,
                       "exp": now + 60, "jti": secrets.token_hex(8)},
                      {"alg": "none", "kid": hcm.c.kid})
    r = hcm.post("/par", {"response_type": "code", "client_id": "dvc-hcm",
                          "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:"
                          "jwt-bearer", "client_assertion": token}, dpop=None)
    assert r.status_code == 401 and error_of(r) == "invalid_client"


def test_client_assertion_hs256_with_the_public_key_is_refused(hcm: RawClient) -> None:
    """The classic algorithm-confusion attack: HMAC "signed" with the client's public key."""
    public_pem = hcm.c.key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    now = int(dt.datetime.now(dt.UTC).timestamp())
    claims = {"iss": "dvc-hcm", "sub": "dvc-hcm", "aud": hcm.idp.issuer, "iat": now,
              "exp": now + 60, "jti": secrets.token_hex(8)}
    forged = _hmac_jwt(claims, public_pem, kid=hcm.c.kid)
    r = hcm.post("/par", {"response_type": "code", "client_id": "dvc-hcm",
                          "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:"
                          "jwt-bearer", "client_assertion": forged}, dpop=None)
    assert r.status_code == 401 and error_of(r) == "invalid_client"


def _hmac_jwt(claims: dict[str, object], secret: bytes, *, kid: str) -> str:
    import hashlib
    import hmac

    def part(obj: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()
    signing_input = f"{part({'alg': 'HS256', 'typ': 'JWT', 'kid': kid})}.{part(claims)}"
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


# ------------------------------------------------------------------------- DPoP


def test_replayed_dpop_proof_is_refused(hcm: RawClient,
                                        session: tuple[Browser, dict[str, str]]) -> None:
    _, params = session
    tokens = hcm.redeem(params["code"]).json()
    url = hcm.idp.issuer + "/userinfo"
    proof = hcm.proof("GET", url, access_token=tokens["access_token"])
    ok = hcm.userinfo(tokens["access_token"], dpop=proof)
    assert ok.status_code == 200, ok.text
    replay = hcm.userinfo(tokens["access_token"], dpop=proof)
    assert replay.status_code == 401
    assert 'error="invalid_dpop_proof"' in replay.headers["www-authenticate"]


def test_token_without_its_dpop_proof_is_refused(hcm: RawClient,
                                                 session: tuple[Browser, dict[str, str]]) -> None:
    _, params = session
    tokens = hcm.redeem(params["code"]).json()
    assert tokens["token_type"] == "DPoP"
    access = tokens["access_token"]
    no_proof = hcm.userinfo(access, dpop=None)
    assert no_proof.status_code == 401
    as_bearer = hcm.userinfo(access, scheme="Bearer", dpop=None)
    assert as_bearer.status_code == 401
    other_key = hcm.userinfo(access, key=DpopKey())
    assert other_key.status_code == 401 and "invalid_dpop_proof" in other_key.text
    assert hcm.userinfo(access).status_code == 200


def test_fapi_token_request_without_dpop_is_refused(
        hcm: RawClient, session: tuple[Browser, dict[str, str]]) -> None:
    browser, _ = session
    params = hcm.code(browser)
    r = hcm.redeem(params["code"], dpop=None)
    assert r.status_code == 400 and error_of(r) == "invalid_dpop_proof"


def test_dpop_proof_with_alg_none_is_refused(hcm: RawClient,
                                             session: tuple[Browser, dict[str, str]]) -> None:
    _, params = session
    tokens = hcm.redeem(params["code"]).json()
    now = int(dt.datetime.now(dt.UTC).timestamp())
    proof = _unsigned({"htm": "GET", "htu": hcm.idp.issuer + "/userinfo", "iat": now,
                       "jti": secrets.token_hex(8), "nonce": hcm.nonce},
                      {"alg": "none", "typ": "dpop+jwt", "jwk": hcm.dpop.public_jwk})
    r = hcm.userinfo(tokens["access_token"], dpop=proof)
    assert r.status_code == 401 and "invalid_dpop_proof" in r.headers["www-authenticate"]


# ------------------------------------------------------------------------- forged ID tokens


def test_rp_refuses_id_token_with_alg_none(idp: IdentityServer) -> None:
    rp = idp.rp("dvc-hcm")
    now = dt.datetime.now(dt.UTC)
    kid = json.loads(httpx.get(idp.issuer + "/jwks").text)["keys"][0]["kid"]
    forged = _unsigned({"iss": idp.issuer, "aud": "dvc-hcm", "sub": "x",
                        "iat": int(now.timestamp()), "exp": int(now.timestamp()) + 60,
                        "acr": "LoA2", "auth_time": int(now.timestamp())},
                       {"alg": "none", "kid": kid})
    with pytest.raises(TokenInvalid):
        rp.validator.validate(forged, now=now, nonce=None)


def test_rp_refuses_id_token_hs256_with_the_providers_public_key(idp: IdentityServer) -> None:
    rp = idp.rp("dvc-hcm")
    now = dt.datetime.now(dt.UTC)
    jwk = next(k for k in httpx.get(idp.issuer + "/jwks").json()["keys"] if k["alg"] == "ES256")
    public_pem = jwt.PyJWK(jwk).key.public_bytes(  # type: ignore[union-attr]
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    forged = _hmac_jwt({"iss": idp.issuer, "aud": "dvc-hcm", "sub": "x",
                        "iat": int(now.timestamp()), "exp": int(now.timestamp()) + 60,
                        "acr": "LoA2", "auth_time": int(now.timestamp())}, public_pem,
                       kid=jwk["kid"])
    with pytest.raises(TokenInvalid):
        rp.validator.validate(forged, now=now, nonce=None)


# ------------------------------------------------------------------------- assurance


def test_loa2_request_is_never_met_by_a_level1_login(idp: IdentityServer, hcm: RawClient) -> None:
    """A level-1 account (no in-person proofing) logs in with its password; the LoA2 request ends
    in unmet_authentication_requirements, never in a code."""
    weak = idp.citizen("079090000777", name="Lê Văn Cường", born=dt.date(1990, 1, 1),
                       level2=False, totp=False)
    browser = Browser(idp.issuer)
    try:
        r = hcm.par(acr_values="LoA2")
        browser.go(hcm.authorize_url(r.json()["request_uri"]))
        response = browser.post("/login", {"identifier": weak.identifier,
                                           "password": weak.password})
        params = callback_params(response)
    finally:
        browser.close()
    assert params["error"] == "unmet_authentication_requirements" and "code" not in params


def test_password_alone_does_not_reach_loa2(idp: IdentityServer, hcm: RawClient,
                                            citizen: Citizen) -> None:
    """A level-2 account with only its password gets the second-factor page, not a code; a session
    made with the password only is stepped up, not reused, when LoA2 is asked."""
    browser = Browser(idp.issuer)
    try:
        r = hcm.par(acr_values="LoA1")
        browser.go(hcm.authorize_url(r.json()["request_uri"]))
        params = callback_params(browser.login(citizen))  # LoA1: password is enough
        tokens = hcm.redeem(params["code"]).json()
        claims = jwt.decode(tokens["id_token"], options={"verify_signature": False})
        assert claims["acr"] == "LoA1" and claims["amr"] == ["pwd"]
        r = hcm.par(acr_values="LoA2")
        page = browser.go(hcm.authorize_url(r.json()["request_uri"]))
        assert page.status_code == 200 and 'name="otp"' in browser.page  # step-up, no code
        silent = hcm.par(acr_values="LoA2", prompt="none")
        params = callback_params(browser.http.get(hcm.authorize_url(
            silent.json()["request_uri"])))
        assert params["error"] == "interaction_required"
    finally:
        browser.close()


def test_rp_library_refuses_a_loa1_id_token_when_it_needs_loa2(
        idp: IdentityServer, citizen: Citizen) -> None:
    from vnid.assurance import AssuranceLevel

    rp = idp.rp("dvc-hcm", acr_values="LoA1")
    now = dt.datetime.now(dt.UTC)
    url, pending = rp.start_login(now=now)
    browser = Browser(idp.issuer)
    try:
        browser.go(url)
        params = callback_params(browser.login(citizen, otp=False))
    finally:
        browser.close()
    pending.min_level = AssuranceLevel.LOA2
    with pytest.raises(TokenInvalid):
        rp.finish_login(params, pending, now=now)
