"""Device-bound keys held by the citizen app (ECDSA P-256), and the statements the app signs.

The app generates its key pair on the phone (in the secure element where it can) and registers the
public key once, proving possession by signing the enrolment code. One device is active per account:
registering a new device revokes the previous one.

Everything the app asserts afterwards — "approve this QR login", "approve this step-up", "approve
this signature request" — is a compact JWS (ES256 only) over a small JSON object, verified here:
the header names the key by its RFC 7638 thumbprint (``kid``) and the type (``typ``) of statement;
the claims bind it to this provider (``aud``), to one challenge, and to a short time window. The app
also reports how the person unlocked the key (``uv``: ``pin``, ``face`` or ``fpt``) — the second
factor that makes a device approval a two-factor login, as the user-verification flag does in
WebAuthn.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import ECKey

from vnid.assurance import Amr
from vnid.errors import AuthenticationFailed, FailedPrecondition, InvalidInput

__all__ = [
    "APPROVAL_TYPE",
    "DEVICE_REQUEST_TYPE",
    "DeviceKey",
    "DeviceNotRegistered",
    "DeviceStatement",
    "ENROLMENT_TYPE",
    "InvalidCredentials",
    "import_device_key",
    "peek_kid",
    "verify_device_statement",
]


class InvalidCredentials(AuthenticationFailed):
    """The identifier, password, one-time code or device signature did not verify."""

    reason = "INVALID_CREDENTIALS"


class DeviceNotRegistered(FailedPrecondition):
    """The account has no active device key (the citizen app is not set up)."""

    reason = "DEVICE_NOT_REGISTERED"


APPROVAL_TYPE = "vnid-approval+jwt"
ENROLMENT_TYPE = "vnid-enrolment+jwt"
DEVICE_REQUEST_TYPE = "vnid-device+jwt"

_USER_VERIFICATION = {"pin": Amr.PIN, "face": Amr.FACE, "fpt": Amr.FPT}
_MAX_SKEW = dt.timedelta(seconds=60)


@dataclass(frozen=True, slots=True)
class DeviceKey:
    device_id: str
    account_id: str
    public_jwk: Mapping[str, str]
    jkt: str  # RFC 7638 thumbprint (SHA-256, base64url) of ``public_jwk``
    label: str
    registered_at: dt.datetime
    revoked_at: dt.datetime | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


def import_device_key(jwk: Mapping[str, Any]) -> tuple[dict[str, str], str]:
    """Check that ``jwk`` is a public EC P-256 key; return its canonical public form and thumbprint."""
    if not isinstance(jwk, Mapping) or jwk.get("kty") != "EC" or jwk.get("crv") != "P-256":
        raise InvalidInput("the device key must be an EC P-256 public key", reason="INVALID_DEVICE_KEY")
    if "d" in jwk:
        raise InvalidInput("send the public key only", reason="INVALID_DEVICE_KEY")
    try:
        key = ECKey.import_key({"kty": "EC", "crv": "P-256", "x": jwk["x"], "y": jwk["y"]})
    except (JoseError, KeyError, ValueError, TypeError):
        raise InvalidInput("the device key is not a valid P-256 point",
                           reason="INVALID_DEVICE_KEY") from None
    public = {k: str(v) for k, v in key.as_dict(private=False).items() if k in {"kty", "crv", "x", "y"}}
    return public, key.thumbprint()


@dataclass(frozen=True, slots=True)
class DeviceStatement:
    claims: Mapping[str, Any]
    jkt: str
    user_verification: tuple[Amr, ...]

    @property
    def challenge(self) -> str:
        return str(self.claims.get("challenge", ""))

    @property
    def decision(self) -> str:
        return str(self.claims.get("decision", ""))


def peek_kid(token: str) -> str:
    """The ``kid`` a statement claims, to find its key; nothing is trusted before verification."""
    try:
        part = token.split(".", 1)[0]
        header = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    except (ValueError, TypeError):
        raise InvalidCredentials("the device statement is malformed") from None
    kid = header.get("kid") if isinstance(header, dict) else None
    if not isinstance(kid, str) or not kid or len(kid) > 100:
        raise InvalidCredentials("the device statement names no key")
    return kid


def verify_device_statement(token: str, key_jwk: Mapping[str, str], *, typ: str, audience: str,
                            now: dt.datetime, required: Sequence[str] = ()) -> DeviceStatement:
    """Verify a statement signed by a registered device key; raise one opaque error if anything
    (signature, type, audience, time, required claims) does not hold."""
    try:
        key = ECKey.import_key(dict(key_jwk))
        obj = jws.deserialize_compact(token, key, algorithms=["ES256"])
        header = obj.headers()
        claims = json.loads(obj.payload or b"")
    except (JoseError, ValueError, TypeError):
        raise InvalidCredentials("the device statement did not verify") from None
    if not isinstance(claims, dict) or header.get("typ") != typ or header.get("alg") != "ES256":
        raise InvalidCredentials("the device statement did not verify")
    if claims.get("aud") != audience:
        raise InvalidCredentials("the device statement did not verify")
    iat = claims.get("iat")
    if not isinstance(iat, int | float) or isinstance(iat, bool):
        raise InvalidCredentials("the device statement did not verify")
    issued = dt.datetime.fromtimestamp(iat, dt.UTC)
    if abs(now - issued) > _MAX_SKEW:
        raise InvalidCredentials("the device statement did not verify")
    for name in required:
        if not isinstance(claims.get(name), str) or not claims[name]:
            raise InvalidCredentials("the device statement did not verify")
    uv_raw = claims.get("uv", [])
    uv = tuple(_USER_VERIFICATION[v] for v in uv_raw if v in _USER_VERIFICATION) \
        if isinstance(uv_raw, list) else ()
    return DeviceStatement(claims=claims, jkt=str(header.get("kid", "")), user_verification=uv)
