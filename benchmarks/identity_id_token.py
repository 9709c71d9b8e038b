#!/usr/bin/env python3
"""The relying-party library's ID-token check beside raw pyjwt decoding of the same token.

The library's check (``IdTokenValidator.validate``: algorithm allow-list, key by ``kid`` from the
cached JWKS, signature, iss, aud, exp/iat against ``now``, nonce, minimum acr, auth_time/max_age)
against the least a relying party could do with pyjwt alone: ``jwt.decode`` with the key in hand,
the algorithm, audience and issuer. Same ES256 token, same key, same process.

    .venv/bin/python benchmarks/identity_id_token.py [--seconds 3]

Prints checks per second for each and the ratio (goal: library >= 0.9x raw pyjwt).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import time
from collections.abc import Callable, Mapping

import jwt
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from vnid.assurance import AssuranceLevel
from vnid.rp import HttpResponse, IdTokenValidator, JwksCache

ISSUER = "https://id.example.gov.vn/id"


class ServedJwks:
    """The provider's JWKS as the library's HTTP port would fetch it (fetched once, then cached)."""

    def __init__(self, jwks: dict[str, object]) -> None:
        self.body = json.dumps(jwks).encode()

    def request(self, method: str, url: str, *, headers: Mapping[str, str],
                form: Mapping[str, str] | None = None) -> HttpResponse:
        return HttpResponse(200, {"content-type": "application/json"}, self.body)


def rate(fn: Callable[[], object], seconds: float) -> float:
    for _ in range(200):
        fn()
    n, start = 0, time.perf_counter()
    stop = start + seconds
    while time.perf_counter() < stop:
        for _ in range(100):
            fn()
        n += 100
    return n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    key = ec.generate_private_key(ec.SECP256R1())
    jwk = {**ECAlgorithm.to_jwk(key.public_key(), as_dict=True), "kid": "k1", "alg": "ES256",
           "use": "sig"}
    now = dt.datetime.now(dt.UTC)
    t = int(now.timestamp())
    token = jwt.encode({"iss": ISSUER, "sub": "s", "aud": "dvc-hcm", "azp": "dvc-hcm", "iat": t,
                        "exp": t + 600, "auth_time": t - 30, "nonce": "n-123", "acr": "LoA2",
                        "amr": ["pwd", "otp", "mfa"], "sid": "sid-1"}, key, algorithm="ES256",
                       headers={"kid": "k1", "typ": "JWT"})
    validator = IdTokenValidator(issuer=ISSUER, client_id="dvc-hcm",
                                 jwks=JwksCache(ServedJwks({"keys": [jwk]}), ISSUER + "/jwks"))
    public = key.public_key()

    def library() -> object:
        return validator.validate(token, now=now, nonce="n-123", min_level=AssuranceLevel.LOA2,
                                  max_age=300)

    def raw() -> object:
        return jwt.decode(token, public, algorithms=["ES256"], audience="dvc-hcm",
                          issuer=ISSUER)

    # Alternate rounds so both see the same machine.
    lib_total = raw_total = 0.0
    for _ in range(args.rounds):
        lib_total += rate(library, args.seconds / args.rounds)
        raw_total += rate(raw, args.seconds / args.rounds)
    lib, base = lib_total / args.rounds, raw_total / args.rounds
    print(f"{'RP library':>12}: {lib:10.0f} ID-token checks/s (signature + iss/aud/exp/iat/"
          f"nonce/acr/auth_time, key from the JWKS cache)")
    print(f"{'raw pyjwt':>12}: {base:10.0f} decodes/s (signature + iss/aud/exp)")
    print(f"{'ratio':>12}: {lib / base:10.2f}x library / raw pyjwt (goal >= 0.9x)")


if __name__ == "__main__":
    main()
