from __future__ import annotations

import datetime as dt

import pytest
from authlib.oauth2.rfc8414 import AuthorizationServerMetadata
from authlib.oidc.discovery import OpenIDProviderMetadata

from vnid.accounts import AccountKind, new_account
from vnid.errors import InvalidInput
from vnid.oauth2.clients import Client
from vnid.oauth2.rfc8414_metadata import provider_metadata
from vnid.oidc.claims import AccountTypeCodes, release_claims
from vnid.oidc.settings import ProviderSettings
from vnid.personal_id import Sex

KEY = {"kty": "EC", "crv": "P-256", "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
       "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}


def fapi(**extra: object) -> dict[str, object]:
    return {"client_id": "c1", "profile": "fapi2", "redirect_uris": ["https://rp.example.vn/cb"],
            "jwks": {"keys": [KEY]}, **extra}


def test_fapi_clients_get_par_and_dpop_and_private_key_jwt() -> None:
    client = Client.from_metadata(fapi())
    assert client.require_pushed_authorization_requests and client.dpop_bound_access_tokens
    with pytest.raises(InvalidInput):
        Client.from_metadata(fapi(token_endpoint_auth_method="client_secret_basic"))


@pytest.mark.parametrize("extra", [
    {"redirect_uri": "x"}, {"id_token_signed_response_alg": "RS256"},
    {"id_token_signed_response_alg": "none"}, {"id_token_signed_response_alg": "HS256"},
    {"redirect_uris": ["http://rp.example.vn/cb"]}, {"redirect_uris": ["https://rp/cb#f"]},
    {"jwks": {"keys": [{**KEY, "d": "secret"}]}}, {"jwks": {"keys": [{"kty": "oct", "k": "x"}]}},
    {"userinfo_encrypted_response_alg": "RSA1_5"},
])
def test_unsafe_or_unknown_metadata_is_refused(extra: dict[str, object]) -> None:
    with pytest.raises(InvalidInput):
        Client.from_metadata(fapi(**extra))


def test_metadata_round_trips() -> None:
    client = Client.from_metadata(fapi(claim_profile="national_portal", subject_type="public"))
    assert Client.from_metadata(client.as_metadata()) == client


def test_national_portal_claims() -> None:
    account = new_account(account_id="a", kind=AccountKind.CITIZEN, identifier="087084000999",
                          full_name="Lê Thị Mai", now=dt.datetime(2025, 7, 1, tzinfo=dt.UTC),
                          date_of_birth=dt.date(1984, 3, 9), sex=Sex.MALE)
    from vnid.oauth2.clients import ClaimProfileName

    portal = release_claims(account, ClaimProfileName.NATIONAL_PORTAL, frozenset({"openid"}),
                            AccountTypeCodes())
    assert portal == {"SoDinhDanh": "087084000999", "HoVaTen": "Lê Thị Mai",
                      "NgayThangNamSinh": "19840309", "LoaiTaiKhoan": "1"}
    standard = release_claims(account, ClaimProfileName.STANDARD, frozenset({"openid"}),
                              AccountTypeCodes())
    assert standard == {}  # nothing without consented scopes
    assert release_claims(account, ClaimProfileName.STANDARD, frozenset({"profile"}),
                          AccountTypeCodes())["birthdate"] == "1984-03-09"


def test_discovery_document_validates_with_authlib() -> None:
    """RFC 8414 validation passes as is. OpenID Connect Discovery additionally insists on RS256
    among the ID token algorithms, which FAPI 2.0 (§5.4) forbids: that is the one rule this
    provider breaks, on purpose, and the only one authlib reports."""
    settings = ProviderSettings(issuer="https://id.dichvucong.gov.vn/id")
    document = provider_metadata(settings)
    AuthorizationServerMetadata(document).validate()
    with pytest.raises(ValueError, match="RS256"):
        OpenIDProviderMetadata(document).validate()
    with_rs256 = {**document, "id_token_signing_alg_values_supported": ["RS256", "ES256"]}
    OpenIDProviderMetadata(with_rs256).validate()
    metadata = OpenIDProviderMetadata(document)
    assert metadata["code_challenge_methods_supported"] == ["S256"]
    assert metadata["authorization_response_iss_parameter_supported"] is True
    assert "none" not in metadata["id_token_signing_alg_values_supported"]
    assert "HS256" not in metadata["token_endpoint_auth_signing_alg_values_supported"]


def test_settings_refuse_weaker_limits() -> None:
    for bad in ({"code_lifetime": 61}, {"par_lifetime": 600}, {"session_max_age": 90000},
                {"unknown": 1}):
        with pytest.raises(InvalidInput):
            ProviderSettings.from_config(bad, default_issuer="https://id.example.vn/id")
