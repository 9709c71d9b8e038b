"""ID tokens (OpenID Connect Core §2, §3.1.3.6) and the other JWTs the provider signs, with optional
encryption to the client (Core §10.2: sign, then encrypt; ``cty: JWT``).

Every ID token carries ``acr``, ``amr`` (RFC 8176) and ``auth_time``, whatever the client asked, so a
relying party can always tell how the person logged in. Signing uses only ES256, PS256 or EdDSA
(the client's ``id_token_signed_response_alg``).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
from collections.abc import Mapping
from typing import Any

from joserfc import jwe, jwt
from joserfc.errors import JoseError
from joserfc.jwk import Key

from vnid.errors import FailedPrecondition
from vnid.jose.keys import KeyRing
from vnid.jose.registry import jws_registry
from vnid.oauth2.clients import Client

__all__ = ["encrypt_for_client", "left_hash", "sign_jwt", "signed_for_client"]

_ENC_KTY = {"RSA-OAEP-256": ("RSA",), "ECDH-ES": ("EC", "OKP"), "ECDH-ES+A256KW": ("EC", "OKP"),
            "ECDH-ES+A128KW": ("EC", "OKP")}


def sign_jwt(claims: Mapping[str, Any], keyring: KeyRing, alg: str, *, typ: str = "JWT") -> str:
    key = keyring.signing_key(alg)
    header = {"alg": alg, "kid": key.kid, "typ": typ}
    return jwt.encode(header, dict(claims), key, registry=jws_registry([alg]))


def _encryption_key(client: Client, alg: str) -> Key:
    for key in client.keyset():
        use = key.get("use") if hasattr(key, "get") else None
        if key.key_type in _ENC_KTY[alg] and use in (None, "enc"):
            if key.key_type == "OKP" and key.as_dict().get("crv") not in ("X25519", "X448"):
                continue
            return key
    raise FailedPrecondition("the client registered no key to encrypt to",
                             reason="NO_CLIENT_ENCRYPTION_KEY")


def encrypt_for_client(payload: str | bytes, client: Client, alg: str, enc: str, *,
                       cty: str | None) -> str:
    key = _encryption_key(client, alg)
    header: dict[str, Any] = {"alg": alg, "enc": enc}
    if key.kid:
        header["kid"] = key.kid
    if cty:
        header["cty"] = cty
    try:
        return jwe.encrypt_compact(header, payload, key, algorithms=[alg, enc])
    except (JoseError, ValueError) as exc:
        raise FailedPrecondition("encryption to the client failed",
                                 reason="CLIENT_ENCRYPTION_FAILED") from exc


def signed_for_client(claims: Mapping[str, Any], client: Client, keyring: KeyRing, *,
                      sign_alg: str, enc_alg: str, enc: str, typ: str = "JWT") -> str:
    """Sign ``claims``; encrypt the result to the client when it registered ``enc_alg``."""
    token = sign_jwt(claims, keyring, sign_alg, typ=typ)
    if enc_alg:
        return encrypt_for_client(token, client, enc_alg, enc, cty="JWT")
    return token


def left_hash(value: str, alg: str) -> str:
    """``at_hash``/``c_hash``: the left half of the hash matching ``alg`` (Core §3.1.3.6)."""
    digest = hashlib.sha512(value.encode()).digest() if alg == "EdDSA" else \
        hashlib.sha256(value.encode()).digest()
    return base64.urlsafe_b64encode(digest[: len(digest) // 2]).rstrip(b"=").decode()


def epoch(instant: dt.datetime) -> int:
    return int(instant.timestamp())
