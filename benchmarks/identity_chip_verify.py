#!/usr/bin/env python3
"""Chip verifications per second (vnid.icao9303.verify_chip: SOD signature, DS chain, data-group
hashes, DG1/DG13 parsing, active authentication) beside raw ``cryptography`` doing only the
signature checks a verification needs, on the same synthetic chip in the same run.

    .venv/bin/python benchmarks/identity_chip_verify.py [--seconds 5]

Goal: at least 200 verifications per second per core. The ratio to the raw signature checks shows
what the parsing and checking around them cost.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[1])]

from cryptography.hazmat.primitives import hashes  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402

from tests.support import icao  # noqa: E402
from vnid.icao9303 import CscaTrustList, verify_chip  # noqa: E402
from vnid.icao9303.aa import verify_active_authentication  # noqa: E402
from vnid.icao9303.lds import parse_dg15, read_tlv  # noqa: E402


def rate(fn: object, seconds: float) -> float:
    count, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        fn()  # type: ignore[operator]
        count += 1
    return count / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    csca = icao.make_csca()
    ds = icao.make_ds(csca)
    chip = icao.make_chip(ds, aa="rsa")
    trust = CscaTrustList.from_pem(csca.pem)
    challenge = os.urandom(8)
    answer = chip.answer(challenge)

    def ours() -> None:
        verify_chip(sod=chip.sod, data_groups=chip.groups, trust=trust, at=icao.NOW,
                    challenge=challenge, aa_signature=answer)

    # The signature work alone: the DS over the SOD and the chip's answer. The CSCA's signature
    # over the DS certificate is checked once per document signer and remembered by the trust
    # list (one DS signs many thousands of cards), so neither side repeats it per chip.
    from asn1crypto import cms

    signed = cms.ContentInfo.load(read_tlv(chip.sod).value)["content"]
    info = signed["signer_infos"][0]
    to_verify = b"\x31" + info["signed_attrs"].dump()[1:]
    signature = info["signature"].native
    ds_key = ds.cert.public_key()
    aa_key = parse_dg15(chip.groups[15])
    assert isinstance(ds_key, ec.EllipticCurvePublicKey)

    def raw() -> None:
        ds_key.verify(signature, to_verify, ec.ECDSA(hashes.SHA256()))
        verify_active_authentication(aa_key, challenge, answer)

    ours()
    raw()
    rounds = [(rate(ours, args.seconds / 2), rate(raw, args.seconds / 2)) for _ in range(2)]
    mine = sum(r[0] for r in rounds) / len(rounds)
    base = sum(r[1] for r in rounds) / len(rounds)
    print(f"chip verifications (vnid.icao9303.verify_chip): {mine:8.0f}/s on one core")
    print(f"signature checks alone (cryptography):          {base:8.0f}/s")
    print(f"ratio: {mine / base:.2f}x of the raw signature checks; goal >= 200/s: "
          f"{'met' if mine >= 200 else 'NOT met'}")


if __name__ == "__main__":
    main()
