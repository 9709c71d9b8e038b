from __future__ import annotations

import dataclasses
import datetime as dt

from joserfc import jwt

from vnid.jose.keys import KeyRing, KeyState, RotationPolicy, SigningKeyRecord, plan_rotation

T0 = dt.datetime(2025, 7, 1, tzinfo=dt.UTC)
PASS = b"test-passphrase"
POLICY = RotationPolicy(algorithms=("ES256",), rotate_after=dt.timedelta(days=90),
                        publish_ahead=dt.timedelta(days=2),
                        retain_after_retire=dt.timedelta(days=7))


def apply(records: list[SigningKeyRecord], now: dt.datetime) -> list[SigningKeyRecord]:
    changed, deleted = plan_rotation(records, now=now, policy=POLICY, passphrase=PASS)
    by_kid = {r.kid: r for r in records}
    for r in changed:
        by_kid[r.kid] = r
    for kid in deleted:
        del by_kid[kid]
    return list(by_kid.values())


def states(records: list[SigningKeyRecord]) -> list[str]:
    return sorted(r.state.value for r in records)


def test_rotation_publishes_ahead_then_promotes_then_retires_then_deletes() -> None:
    keys = apply([], T0)
    assert states(keys) == ["active"]
    first = keys[0]
    assert apply(keys, T0 + dt.timedelta(days=10)) == keys  # nothing to do
    keys = apply(keys, T0 + dt.timedelta(days=88))
    assert states(keys) == ["active", "published"]  # the successor is in the JWKS already
    keys = apply(keys, T0 + dt.timedelta(days=90))
    assert states(keys) == ["active", "retired"]
    assert next(r for r in keys if r.kid == first.kid).state is KeyState.RETIRED
    keys = apply(keys, T0 + dt.timedelta(days=97))
    assert states(keys) == ["active"] and keys[0].kid != first.kid


def test_ring_signs_with_the_active_key_and_publishes_all() -> None:
    keys = apply(apply([], T0), T0 + dt.timedelta(days=88))
    ring = KeyRing(keys, PASS)
    assert len(ring.jwks["keys"]) == 2 and all("d" not in k for k in ring.jwks["keys"])
    key = ring.signing_key("ES256")
    active = next(r for r in keys if r.state is KeyState.ACTIVE)
    assert key.kid == active.kid
    token = jwt.encode({"alg": "ES256", "kid": key.kid}, {"x": 1}, key)
    assert jwt.decode(token, ring.public_keys()[[r.kid for r in ring.records].index(key.kid)])


def test_private_keys_are_stored_encrypted() -> None:
    (record,) = apply([], T0)
    assert b"ENCRYPTED PRIVATE KEY" in record.private_pkcs8
    assert "d" not in record.public_jwk
    assert dataclasses.replace(record).alg == "ES256"
