"""The relying-party library's token checks, against keys served through its HTTP port."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from vnid.assurance import AssuranceLevel
from vnid.rp import BackchannelLogoutReceiver, HttpResponse, IdTokenValidator, JwksCache, TokenInvalid

ISS = "https://id.example.vn/id"
NOW = dt.datetime(2025, 7, 1, 8, 0, tzinfo=dt.UTC)


class Keys:
    """Serves a JWKS that the test can rotate (implements the HttpTransport port)."""

    def __init__(self) -> None:
        self.keys: dict[str, ec.EllipticCurvePrivateKey] = {}
        self.requests = 0
        self.add("k1")

    def add(self, kid: str) -> None:
        self.keys[kid] = ec.generate_private_key(ec.SECP256R1())

    def request(self, method: str, url: str, *, headers: Mapping[str, str],
                form: Mapping[str, str] | None = None) -> HttpResponse:
        self.requests += 1
        keys = [{**ECAlgorithm.to_jwk(k.public_key(), as_dict=True), "kid": kid, "alg": "ES256",
                 "use": "sig"} for kid, k in self.keys.items()]
        return HttpResponse(200, {}, json.dumps({"keys": keys}).encode())

    def sign(self, claims: dict[str, Any], kid: str = "k1", typ: str = "JWT") -> str:
        return jwt.encode(claims, self.keys[kid], algorithm="ES256",
                          headers={"kid": kid, "typ": typ})


def claims(**extra: Any) -> dict[str, Any]:
    t = int(NOW.timestamp())
    return {"iss": ISS, "aud": "rp", "sub": "s", "iat": t, "exp": t + 300, "nonce": "n",
            "acr": "LoA2", "amr": ["pwd", "otp", "mfa"], "auth_time": t - 60, **extra}


@pytest.fixture
def keys() -> Keys:
    return Keys()


def validator(keys: Keys) -> IdTokenValidator:
    return IdTokenValidator(issuer=ISS, client_id="rp", jwks=JwksCache(keys, ISS + "/jwks"))


def test_valid_token(keys: Keys) -> None:
    checked = validator(keys).validate(keys.sign(claims()), now=NOW, nonce="n",
                                       min_level=AssuranceLevel.LOA2, max_age=120)
    assert checked.level is AssuranceLevel.LOA2 and checked.sub == "s"


@pytest.mark.parametrize("bad", [
    {"iss": "https://other/id"}, {"aud": "other"}, {"exp": int(NOW.timestamp()) - 60},
    {"iat": int(NOW.timestamp()) + 600}, {"nonce": "other"}, {"acr": "LoA1"},
    {"acr": "urn:unknown"}, {"auth_time": int(NOW.timestamp()) - 3600},
    {"aud": ["rp", "other"], "azp": "other"}, {"aud": ["rp", "other"]}, {"azp": "other"},
])
def test_each_check_refuses(keys: Keys, bad: dict[str, Any]) -> None:
    with pytest.raises(TokenInvalid):
        validator(keys).validate(keys.sign(claims(**bad)), now=NOW, nonce="n",
                                 min_level=AssuranceLevel.LOA2, max_age=120)


def test_rotation_is_followed_but_unknown_kids_do_not_hammer_the_provider(keys: Keys) -> None:
    v = validator(keys)
    v.validate(keys.sign(claims()), now=NOW, nonce="n")
    assert keys.requests == 1
    keys.add("k2")  # the provider publishes its next key and starts using it
    v.validate(keys.sign(claims(), kid="k2"), now=NOW + dt.timedelta(minutes=1), nonce="n")
    assert keys.requests == 2
    for i in range(20):
        with pytest.raises(TokenInvalid):
            v.jwks.key(f"forged-{i}", NOW + dt.timedelta(minutes=1))
    assert keys.requests == 2  # within min_refresh: no further fetches


def test_only_asymmetric_algorithms_can_be_configured(keys: Keys) -> None:
    with pytest.raises(ValueError):
        IdTokenValidator(issuer=ISS, client_id="rp", jwks=JwksCache(keys, ISS),
                         algorithms=["HS256"])


def test_backchannel_logout_token(keys: Keys) -> None:
    seen: set[str] = set()

    def remember(jti: str, _exp: dt.datetime) -> bool:
        known = jti in seen
        seen.add(jti)
        return known
    receiver = BackchannelLogoutReceiver(issuer=ISS, client_id="rp",
                                         jwks=JwksCache(keys, ISS), seen=remember)
    t = int(NOW.timestamp())
    good = {"iss": ISS, "aud": "rp", "iat": t, "exp": t + 120, "jti": "j1", "sid": "S",
            "sub": "s", "events": {"http://schemas.openid.net/event/backchannel-logout": {}}}
    token = keys.sign(good, typ="logout+jwt")
    assert receiver.validate(token, now=NOW).sid == "S"
    with pytest.raises(TokenInvalid):
        receiver.validate(token, now=NOW)  # replayed
    for bad, typ in (({**good, "jti": "j2", "nonce": "x"}, "logout+jwt"),
                     ({**good, "jti": "j3"}, "JWT"),
                     ({**good, "jti": "j4", "events": {}}, "logout+jwt"),
                     ({**good, "jti": "j5", "aud": "other"}, "logout+jwt")):
        with pytest.raises(TokenInvalid):
            receiver.validate(keys.sign(bad, typ=typ), now=NOW)
