from __future__ import annotations

import datetime as dt
import time

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from vnid.authn.device import (
    APPROVAL_TYPE,
    InvalidCredentials,
    import_device_key,
    verify_device_statement,
)
from vnid.errors import InvalidInput

AUD = "https://id.example.vn/id"


def keypair() -> tuple[ec.EllipticCurvePrivateKey, dict[str, str]]:
    key = ec.generate_private_key(ec.SECP256R1())
    public, _ = import_device_key(ECAlgorithm.to_jwk(key.public_key(), as_dict=True))
    return key, public


def statement(key: ec.EllipticCurvePrivateKey, typ: str = APPROVAL_TYPE, **claims: object) -> str:
    body = {"aud": AUD, "iat": int(time.time()), "challenge": "c", **claims}
    return jwt.encode(body, key, algorithm="ES256", headers={"typ": typ, "kid": "d1"})


def test_statement_verifies_and_reports_user_verification() -> None:
    key, public = keypair()
    checked = verify_device_statement(statement(key, uv=["pin", "bogus"]), public,
                                      typ=APPROVAL_TYPE, audience=AUD,
                                      now=dt.datetime.now(dt.UTC), required=("challenge",))
    assert [m.value for m in checked.user_verification] == ["pin"]


@pytest.mark.parametrize("case", ["other_key", "typ", "aud", "old", "missing"])
def test_statement_failures_are_one_error(case: str) -> None:
    key, public = keypair()
    other, _ = keypair()
    now = dt.datetime.now(dt.UTC)
    token = {
        "other_key": statement(other), "typ": statement(key, typ="JWT"),
        "aud": statement(key, aud="https://evil"), "old": statement(key, iat=int(time.time()) - 600),
        "missing": statement(key, challenge=""),
    }[case]
    with pytest.raises(InvalidCredentials):
        verify_device_statement(token, public, typ=APPROVAL_TYPE, audience=AUD, now=now,
                                required=("challenge",))


def test_only_public_p256_keys_register() -> None:
    key = ec.generate_private_key(ec.SECP384R1())
    with pytest.raises(InvalidInput):
        import_device_key(ECAlgorithm.to_jwk(key.public_key(), as_dict=True))
    p256 = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(InvalidInput):
        import_device_key(ECAlgorithm.to_jwk(p256, as_dict=True))
