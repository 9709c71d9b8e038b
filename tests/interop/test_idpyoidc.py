"""idpyoidc (the IdentityPython OpenID Connect RP) logs in with the classic code flow: PKCE S256,
``client_secret_basic``, ES256 ID token checked against our JWKS, userinfo, and a refresh.

OpenID Connect Discovery 1.0 says ``RS256`` MUST be among ``id_token_signing_alg_values_supported``;
FAPI 2.0 (§5.4) allows only PS256, ES256 and EdDSA, and this provider follows FAPI. idpyoidc
enforces the Discovery rule when it fetches the document itself, so the test hands it the document
(as an RP configured with provider metadata does) instead of letting it refuse the provider.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator

import httpx
import pytest
from cryptojwt.key_jar import KeyJar
from idpyoidc.client.rp_handler import RPHandler

from tests.server.identity.harness import (
    CLASSIC_SECRET,
    Browser,
    IdentityServer,
    callback_params,
)
from tests.support.databases import PostgresTemplates, fresh_database
from tests.support.pki import TestPki
from vnid.personal_id import Sex

SERVICES = {
    "discovery": {"class": "idpyoidc.client.oidc.provider_info_discovery.ProviderInfoDiscovery"},
    "authorization": {"class": "idpyoidc.client.oidc.authorization.Authorization"},
    "access_token": {"class": "idpyoidc.client.oidc.access_token.AccessToken"},
    "refresh_access_token": {
        "class": "idpyoidc.client.oidc.refresh_access_token.RefreshAccessToken"},
    "userinfo": {"class": "idpyoidc.client.oidc.userinfo.UserInfo"},
}


@pytest.fixture(scope="module")
def idp(pki: TestPki, postgres_templates: PostgresTemplates,
        tmp_path_factory: pytest.TempPathFactory) -> Iterator[IdentityServer]:
    directory = tmp_path_factory.mktemp("idp-idpy")
    with fresh_database("sqlite", postgres_templates, directory) as db:
        with IdentityServer(pki, directory, db.url.render_as_string(False)) as server:
            yield server


def test_idpyoidc_classic_code_flow(idp: IdentityServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="idpyoidc")
    citizen = idp.citizen("001195012345", name="Trần Thị Bình", born=dt.date(1995, 2, 3),
                          sex=Sex.FEMALE, level2=False, totp=False)
    metadata = httpx.get(idp.issuer + "/.well-known/openid-configuration").json()
    configs = {"classic": {
        "issuer": idp.issuer, "provider_info": metadata, "client_id": "classic",
        "client_secret": CLASSIC_SECRET, "redirect_uris": ["http://127.0.0.1:9/cb"],
        "client_type": "oidc", "client_authn_methods": ["client_secret_basic"],
        "preference": {"response_types": ["code"], "scope": ["openid", "profile"],
                       "token_endpoint_auth_methods": ["client_secret_basic"],
                       "id_token_signing_alg_values_supported": ["ES256"]},
        "add_ons": {"pkce": {"function": "idpyoidc.client.oauth2.add_on.pkce.add_support",
                             "kwargs": {"code_challenge_length": 64,
                                        "code_challenge_method": "S256"}}},
        "services": SERVICES,
    }}
    rph = RPHandler(base_url="http://127.0.0.1:9", client_configs=configs, keyjar=KeyJar())
    url = rph.begin(issuer_id="classic")
    assert "code_challenge_method=S256" in url
    browser = Browser(idp.issuer)
    try:
        browser.go(url)
        params = callback_params(browser.login(citizen))
    finally:
        browser.close()
    result = rph.finalize(idp.issuer, params)
    assert "error" not in result, result
    id_token = result["id_token"]
    assert id_token["iss"] == idp.issuer and id_token["aud"] == ["classic"]
    assert id_token["acr"] == "LoA1" and id_token["amr"] == ["pwd"]
    assert id_token["sub"] == citizen.account_id  # this client has public subjects
    assert result["userinfo"]["sub"] == citizen.account_id
    state = result["state"]
    first_token = result["token"]
    refreshed = rph.refresh_access_token(state)
    assert refreshed["access_token"] != first_token
    info = rph.get_user_info(state, access_token=refreshed["access_token"])
    assert info["sub"] == citizen.account_id
