"""Authorization server metadata (RFC 8414) and OpenID Provider metadata (OpenID Connect
Discovery 1.0 §3), one document served at both well-known locations.

It states exactly what the provider does and nothing more: code flow only, PKCE S256 only, PAR,
DPoP, ``private_key_jwt`` (plus client secrets for classic clients), RFC 9207 ``iss``, the
asymmetric algorithms allowed, back-channel logout with sessions, RP-initiated logout, and CIBA in
poll mode.
"""

from __future__ import annotations

from typing import Any

from vnid.oauth2.clients import (
    CIBA_GRANT,
    CLIENT_ASSERTION_ALGS_OIDC,
    ID_TOKEN_SIGNING_ALGS,
    JWE_ALGS,
    JWE_ENCS,
)
from vnid.oauth2.rfc9449_dpop import DPOP_ALGS
from vnid.oidc.claims import PROFILES
from vnid.oidc.settings import ProviderSettings

__all__ = ["provider_metadata"]


def provider_metadata(settings: ProviderSettings) -> dict[str, Any]:
    claims = sorted({c for p in PROFILES.values() for c in p.claims} |
                    {"sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "acr", "amr",
                     "azp", "sid", "address", "verified_claims"})
    auth_methods = ["private_key_jwt", "client_secret_basic", "client_secret_post"]
    return {
        "issuer": settings.issuer,
        "authorization_endpoint": settings.authorization_endpoint,
        "pushed_authorization_request_endpoint": settings.par_endpoint,
        "require_pushed_authorization_requests": False,  # required per client (all FAPI clients)
        "token_endpoint": settings.token_endpoint,
        "userinfo_endpoint": settings.userinfo_endpoint,
        "jwks_uri": settings.jwks_uri,
        "introspection_endpoint": settings.introspection_endpoint,
        "revocation_endpoint": settings.revocation_endpoint,
        "end_session_endpoint": settings.end_session_endpoint,
        "backchannel_authentication_endpoint": settings.backchannel_authentication_endpoint,
        "scopes_supported": ["openid", "profile", "national_id", "address", "offline_access"],
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials",
                                  CIBA_GRANT],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": auth_methods,
        "token_endpoint_auth_signing_alg_values_supported": list(CLIENT_ASSERTION_ALGS_OIDC),
        "introspection_endpoint_auth_methods_supported": auth_methods,
        "introspection_endpoint_auth_signing_alg_values_supported":
            list(CLIENT_ASSERTION_ALGS_OIDC),
        "revocation_endpoint_auth_methods_supported": auth_methods,
        "revocation_endpoint_auth_signing_alg_values_supported": list(CLIENT_ASSERTION_ALGS_OIDC),
        "subject_types_supported": ["public", "pairwise"],
        "id_token_signing_alg_values_supported": list(ID_TOKEN_SIGNING_ALGS),
        "id_token_encryption_alg_values_supported": list(JWE_ALGS),
        "id_token_encryption_enc_values_supported": list(JWE_ENCS),
        "userinfo_signing_alg_values_supported": list(ID_TOKEN_SIGNING_ALGS),
        "userinfo_encryption_alg_values_supported": list(JWE_ALGS),
        "userinfo_encryption_enc_values_supported": list(JWE_ENCS),
        "dpop_signing_alg_values_supported": list(DPOP_ALGS),
        "authorization_response_iss_parameter_supported": True,
        "acr_values_supported": settings.acr.supported(),
        "claims_supported": claims,
        "claims_parameter_supported": False,
        # OpenID Connect for Identity Assurance 1.0: claims proven from the chip ID card.
        "verified_claims_supported": True,
        "trust_frameworks_supported": ["vn_decree_69_2024"],
        "evidence_supported": ["document"],
        "documents_supported": ["idcard"],
        "documents_check_methods_supported": ["vcrypt"],
        "claims_in_verified_claims_supported": [
            c for c in claims if c in ("name", "birthdate", "gender", "vn_personal_id", "address",
                                       "SoDinhDanh", "HoVaTen", "NgayThangNamSinh")],
        "request_parameter_supported": False,
        "request_uri_parameter_supported": False,
        "prompt_values_supported": ["none", "login", "consent"],
        "ui_locales_supported": ["vi", "en"],
        "claims_locales_supported": ["vi"],
        "frontchannel_logout_supported": False,
        "backchannel_logout_supported": True,
        "backchannel_logout_session_supported": True,
        "backchannel_token_delivery_modes_supported": ["poll"],
        "backchannel_user_code_parameter_supported": False,
        "tls_client_certificate_bound_access_tokens": False,
    }
