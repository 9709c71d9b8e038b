"""Registered clients (relying parties and services) and their metadata (RFC 7591 §2 names).

Three profiles:

* ``fapi2`` — FAPI 2.0 Security Profile: ``private_key_jwt`` only, pushed authorization requests
  required, DPoP-bound access tokens required. Provincial systems and the national portal.
* ``oidc`` — classic OpenID Connect code flow with PKCE; may use ``client_secret_basic``/``_post``
  and plain authorization requests; DPoP optional.
* ``service`` — a system calling the gRPC API with client-credentials tokens; no browser flows.

Registrations are data (``[[identity.clients]]`` or the ``vnegov identity client`` command); this
module validates them. Unknown metadata names are refused so that a typo never silently weakens a
client.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from vnid.agency import validate_agency_code
from vnid.errors import InvalidInput
from vnid.units import validate_province_code

__all__ = [
    "CIBA_GRANT",
    "ClaimProfileName",
    "Client",
    "ClientProfile",
    "ID_TOKEN_SIGNING_ALGS",
    "SubjectType",
]

CIBA_GRANT = "urn:openid:params:grant-type:ciba"
# Only asymmetric algorithms that FAPI 2.0 (§5.4) allows; never "none", never HMAC.
ID_TOKEN_SIGNING_ALGS = ("ES256", "PS256", "EdDSA")
CLIENT_ASSERTION_ALGS_FAPI = ("ES256", "PS256", "EdDSA")
CLIENT_ASSERTION_ALGS_OIDC = ("ES256", "PS256", "EdDSA", "RS256")
JWE_ALGS = ("RSA-OAEP-256", "ECDH-ES", "ECDH-ES+A256KW", "ECDH-ES+A128KW")
JWE_ENCS = ("A256GCM", "A128GCM", "A128CBC-HS256", "A256CBC-HS512")
GRANT_TYPES = ("authorization_code", "refresh_token", "client_credentials", CIBA_GRANT)
AUTH_METHODS = ("private_key_jwt", "client_secret_basic", "client_secret_post")


class ClientProfile(StrEnum):
    FAPI2 = "fapi2"
    OIDC = "oidc"
    SERVICE = "service"


class SubjectType(StrEnum):
    PUBLIC = "public"
    PAIRWISE = "pairwise"


class ClaimProfileName(StrEnum):
    STANDARD = "standard"
    NATIONAL_PORTAL = "national_portal"


_FIELDS = {
    "client_id", "client_name", "profile", "redirect_uris", "post_logout_redirect_uris",
    "token_endpoint_auth_method", "jwks", "client_secret_sha256", "grant_types", "scope",
    "subject_type", "sector_identifier", "claim_profile", "id_token_signed_response_alg",
    "id_token_encrypted_response_alg", "id_token_encrypted_response_enc",
    "userinfo_signed_response_alg", "userinfo_encrypted_response_alg",
    "userinfo_encrypted_response_enc", "backchannel_logout_uri",
    "backchannel_logout_session_required", "default_acr_values", "require_consent",
    "refresh_token_rotation", "agency_code", "province_code", "provinces", "service_scopes",
    "may_introspect", "dpop_bound_access_tokens", "require_pushed_authorization_requests",
}


def _uri(value: str, what: str, *, allow_http_loopback: bool = True) -> str:
    parts = urlsplit(value)
    if parts.fragment or not parts.scheme or not parts.netloc:
        raise InvalidInput(f"{what} must be an absolute URI without a fragment",
                           reason="INVALID_CLIENT_METADATA")
    loopback = parts.hostname in {"127.0.0.1", "localhost", "::1"}
    if parts.scheme != "https" and not (parts.scheme == "http" and loopback and allow_http_loopback):
        raise InvalidInput(f"{what} must use https (http only on loopback addresses)",
                           reason="INVALID_CLIENT_METADATA")
    return value


def hash_secret(secret: str) -> str:
    """How a generated client secret is stored (secrets are 256-bit random, so SHA-256 suffices)."""
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Client:
    client_id: str
    client_name: str
    profile: ClientProfile
    redirect_uris: tuple[str, ...] = ()
    post_logout_redirect_uris: tuple[str, ...] = ()
    token_endpoint_auth_method: str = "private_key_jwt"
    jwks: Mapping[str, Any] = field(default_factory=dict)
    client_secret_sha256: str = ""
    grant_types: frozenset[str] = frozenset({"authorization_code", "refresh_token"})
    scopes: frozenset[str] = frozenset({"openid", "profile", "national_id"})
    subject_type: SubjectType = SubjectType.PAIRWISE
    sector_identifier: str = ""
    claim_profile: ClaimProfileName = ClaimProfileName.STANDARD
    id_token_signed_response_alg: str = "ES256"
    id_token_encrypted_response_alg: str = ""
    id_token_encrypted_response_enc: str = ""
    userinfo_signed_response_alg: str = ""
    userinfo_encrypted_response_alg: str = ""
    userinfo_encrypted_response_enc: str = ""
    backchannel_logout_uri: str = ""
    backchannel_logout_session_required: bool = True
    default_acr_values: tuple[str, ...] = ()
    require_consent: bool = True
    refresh_token_rotation: bool = True
    agency_code: str = ""
    province_code: str = ""
    provinces: tuple[str, ...] = ()
    service_scopes: frozenset[str] = frozenset()
    may_introspect: bool = False
    dpop_bound_access_tokens: bool = False
    require_pushed_authorization_requests: bool = False
    _keyset: Any = field(default=None, compare=False, repr=False)

    @property
    def is_fapi(self) -> bool:
        return self.profile is ClientProfile.FAPI2

    @property
    def sector(self) -> str:
        """The sector identifier for pairwise subjects: configured, else the redirect URIs' host."""
        if self.sector_identifier:
            return self.sector_identifier
        hosts = {urlsplit(u).hostname or "" for u in self.redirect_uris}
        return hosts.pop() if len(hosts) == 1 else self.client_id

    def keyset(self) -> KeySet:
        """The client's public keys (signature and encryption), parsed once."""
        if self._keyset is None:
            object.__setattr__(self, "_keyset", KeySet.import_key_set(dict(self.jwks)))  # type: ignore[arg-type]
        return self._keyset  # type: ignore[no-any-return]

    def assertion_algs(self) -> tuple[str, ...]:
        return CLIENT_ASSERTION_ALGS_FAPI if self.is_fapi else CLIENT_ASSERTION_ALGS_OIDC

    def check_secret(self, secret: str) -> bool:
        if not self.client_secret_sha256:
            return False
        return hmac.compare_digest(hash_secret(secret), self.client_secret_sha256)

    def as_metadata(self) -> dict[str, Any]:
        """The registration as data (what :meth:`from_metadata` reads)."""
        out: dict[str, Any] = {}
        for name in sorted(_FIELDS):
            value = getattr(self, "scopes" if name == "scope" else name)
            if isinstance(value, frozenset):
                value = sorted(value)
            elif isinstance(value, tuple):
                value = list(value)
            elif isinstance(value, StrEnum):
                value = value.value
            elif isinstance(value, Mapping):
                value = dict(value)
            if name == "scope":
                value = " ".join(value)
            out[name] = value
        return out

    @classmethod
    def from_metadata(cls, data: Mapping[str, Any]) -> Client:
        unknown = set(data) - _FIELDS
        if unknown:
            raise InvalidInput(f"unknown client metadata {sorted(unknown)[0]!r}",
                               reason="INVALID_CLIENT_METADATA")
        client_id = str(data.get("client_id", ""))
        if not client_id or len(client_id) > 100 or not client_id.isascii() or " " in client_id:
            raise InvalidInput("client_id must be 1-100 ASCII characters without spaces",
                               reason="INVALID_CLIENT_METADATA")
        try:
            profile = ClientProfile(str(data.get("profile", "fapi2")))
            subject_type = SubjectType(str(data.get("subject_type", "pairwise")))
            claim_profile = ClaimProfileName(str(data.get("claim_profile", "standard")))
        except ValueError as exc:
            raise InvalidInput(str(exc), reason="INVALID_CLIENT_METADATA") from None
        defaults = {
            ClientProfile.FAPI2: ["authorization_code", "refresh_token"],
            ClientProfile.OIDC: ["authorization_code", "refresh_token"],
            ClientProfile.SERVICE: ["client_credentials"],
        }[profile]
        grant_types = frozenset(_strings(data.get("grant_types", defaults), "grant_types"))
        if not grant_types <= set(GRANT_TYPES):
            raise InvalidInput(f"unsupported grant type in {sorted(grant_types)}",
                               reason="INVALID_CLIENT_METADATA")
        method = str(data.get("token_endpoint_auth_method", "private_key_jwt"))
        if method not in AUTH_METHODS:
            raise InvalidInput(f"unsupported token_endpoint_auth_method {method!r}",
                               reason="INVALID_CLIENT_METADATA")
        if profile is not ClientProfile.OIDC and method != "private_key_jwt":
            raise InvalidInput(f"{profile.value} clients authenticate with private_key_jwt",
                               reason="INVALID_CLIENT_METADATA")
        jwks = dict(data.get("jwks") or {})
        if method == "private_key_jwt" and not jwks.get("keys"):
            raise InvalidInput("private_key_jwt clients register their public keys (jwks)",
                               reason="INVALID_CLIENT_METADATA")
        if jwks:
            keys = jwks.get("keys")
            if not isinstance(keys, list) or any(not isinstance(k, dict) or "d" in k
                                                 or k.get("kty") == "oct" for k in keys):
                raise InvalidInput("jwks must hold public asymmetric keys only",
                                   reason="INVALID_CLIENT_METADATA")
            try:
                KeySet.import_key_set(jwks)  # type: ignore[arg-type]
            except (JoseError, ValueError, TypeError, KeyError):
                raise InvalidInput("jwks is not a valid JWK set",
                                   reason="INVALID_CLIENT_METADATA") from None
        secret = str(data.get("client_secret_sha256", ""))
        if method.startswith("client_secret") and len(secret) != 64:
            raise InvalidInput("client_secret_sha256 must be the hex SHA-256 of the secret",
                               reason="INVALID_CLIENT_METADATA")
        redirect_uris = tuple(_uri(u, "redirect_uri") for u in
                              _strings(data.get("redirect_uris", []), "redirect_uris"))
        browser = profile is not ClientProfile.SERVICE and "authorization_code" in grant_types
        if browser and not redirect_uris:
            raise InvalidInput("a client using the code flow registers its redirect_uris",
                               reason="INVALID_CLIENT_METADATA")
        id_alg = str(data.get("id_token_signed_response_alg", "ES256"))
        if id_alg not in ID_TOKEN_SIGNING_ALGS:
            raise InvalidInput(f"id_token_signed_response_alg must be one of "
                               f"{', '.join(ID_TOKEN_SIGNING_ALGS)}",
                               reason="INVALID_CLIENT_METADATA")
        ui_alg = str(data.get("userinfo_signed_response_alg", ""))
        if ui_alg and ui_alg not in ID_TOKEN_SIGNING_ALGS:
            raise InvalidInput("unsupported userinfo_signed_response_alg",
                               reason="INVALID_CLIENT_METADATA")
        for prefix in ("id_token", "userinfo"):
            alg = str(data.get(f"{prefix}_encrypted_response_alg", ""))
            enc = str(data.get(f"{prefix}_encrypted_response_enc", "A256GCM" if alg else ""))
            if alg and (alg not in JWE_ALGS or enc not in JWE_ENCS):
                raise InvalidInput(f"unsupported {prefix} encryption {alg}/{enc}",
                                   reason="INVALID_CLIENT_METADATA")
            if enc and not alg:
                raise InvalidInput(f"{prefix}_encrypted_response_enc needs an alg",
                                   reason="INVALID_CLIENT_METADATA")
        agency = str(data.get("agency_code", ""))
        if agency:
            validate_agency_code(agency)
        province = str(data.get("province_code", ""))
        if province:
            validate_province_code(province)
        provinces = tuple(_strings(data.get("provinces", [province] if province else []),
                                   "provinces"))
        for p in provinces:
            if p != "*":
                validate_province_code(p)
        service_scopes = frozenset(_strings(data.get("service_scopes", []), "service_scopes"))
        if "client_credentials" in grant_types and not agency:
            raise InvalidInput("a client_credentials client names its agency_code",
                               reason="INVALID_CLIENT_METADATA")
        scope_text = data.get("scope")
        scopes = frozenset(str(scope_text).split()) if scope_text is not None else \
            frozenset({"openid", "profile", "national_id", "offline_access"})
        fapi = profile is ClientProfile.FAPI2
        backchannel = str(data.get("backchannel_logout_uri", ""))
        return cls(
            client_id=client_id,
            client_name=str(data.get("client_name", client_id))[:200],
            profile=profile,
            redirect_uris=redirect_uris,
            post_logout_redirect_uris=tuple(
                _uri(u, "post_logout_redirect_uri")
                for u in _strings(data.get("post_logout_redirect_uris", []),
                                  "post_logout_redirect_uris")),
            token_endpoint_auth_method=method,
            jwks=jwks,
            client_secret_sha256=secret,
            grant_types=grant_types,
            scopes=scopes,
            subject_type=subject_type,
            sector_identifier=str(data.get("sector_identifier", "")),
            claim_profile=claim_profile,
            id_token_signed_response_alg=id_alg,
            id_token_encrypted_response_alg=str(data.get("id_token_encrypted_response_alg", "")),
            id_token_encrypted_response_enc=str(data.get(
                "id_token_encrypted_response_enc",
                "A256GCM" if data.get("id_token_encrypted_response_alg") else "")),
            userinfo_signed_response_alg=ui_alg,
            userinfo_encrypted_response_alg=str(data.get("userinfo_encrypted_response_alg", "")),
            userinfo_encrypted_response_enc=str(data.get(
                "userinfo_encrypted_response_enc",
                "A256GCM" if data.get("userinfo_encrypted_response_alg") else "")),
            backchannel_logout_uri=_uri(backchannel, "backchannel_logout_uri") if backchannel
            else "",
            backchannel_logout_session_required=bool(
                data.get("backchannel_logout_session_required", True)),
            default_acr_values=tuple(_strings(data.get("default_acr_values", []),
                                              "default_acr_values")),
            require_consent=bool(data.get("require_consent", True)),
            refresh_token_rotation=bool(data.get("refresh_token_rotation", True)),
            agency_code=agency,
            province_code=province,
            provinces=provinces,
            service_scopes=service_scopes,
            may_introspect=bool(data.get("may_introspect", False)),
            dpop_bound_access_tokens=fapi or bool(data.get("dpop_bound_access_tokens", False)),
            require_pushed_authorization_requests=fapi or bool(
                data.get("require_pushed_authorization_requests", False)),
        )


def _strings(value: Any, what: str) -> Iterable[str]:
    if isinstance(value, str):
        value = value.split()
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise InvalidInput(f"{what} must be a list of strings", reason="INVALID_CLIENT_METADATA")
    return list(value)
