from __future__ import annotations

import datetime as dt

import pytest

from vnid.oauth2.errors import InvalidDpopProof, InvalidGrant, InvalidRequest, UseDpopNonce
from vnid.oauth2.rfc7636_pkce import check_code_challenge, verify_code_verifier
from vnid.oauth2.rfc9449_dpop import DpopNonces, access_token_hash, verify_dpop_proof
from vnid.rp.dpop import DpopKey

NOW = dt.datetime(2025, 7, 1, tzinfo=dt.UTC)


def test_rfc7636_appendix_b() -> None:
    challenge = check_code_challenge("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM", "S256")
    verify_code_verifier("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk", challenge)
    with pytest.raises(InvalidGrant):
        verify_code_verifier("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXK", challenge)
    for method in ("plain", None, "s256"):
        with pytest.raises(InvalidRequest):
            check_code_challenge(challenge, method)


def test_dpop_proof_checks() -> None:
    key = DpopKey()
    url = "https://id.example.vn/id/token"
    nonces = DpopNonces(b"k" * 32)
    proof = key.proof("POST", url, now=NOW, nonce=nonces.current(NOW))
    checked = verify_dpop_proof(proof, method="POST", url=url + "?x=1", now=NOW, nonces=nonces)
    assert checked.jkt == key.jkt
    for kwargs in ({"method": "GET", "url": url}, {"method": "POST", "url": url + "/x"},
                   {"method": "POST", "url": url, "now": NOW + dt.timedelta(minutes=5)}):
        args = {"now": NOW, "nonces": nonces, **kwargs}
        with pytest.raises(InvalidDpopProof):
            verify_dpop_proof(proof, **args)  # type: ignore[arg-type]
    with pytest.raises(UseDpopNonce) as err:
        verify_dpop_proof(key.proof("POST", url, now=NOW), method="POST", url=url, now=NOW,
                          nonces=nonces)
    assert err.value.headers[0][0] == "dpop-nonce"
    token_proof = key.proof("GET", url, now=NOW, access_token="abc")
    verify_dpop_proof(token_proof, method="GET", url=url, now=NOW, nonces=None,
                      access_token="abc")
    with pytest.raises(InvalidDpopProof):
        verify_dpop_proof(token_proof, method="GET", url=url, now=NOW, nonces=None,
                          access_token="abd")
    assert access_token_hash("abc") != access_token_hash("abd")


def test_nonces_expire_after_two_windows() -> None:
    nonces = DpopNonces(b"k" * 32, window=dt.timedelta(minutes=5))
    nonce = nonces.current(NOW)
    assert nonces.valid(nonce, NOW + dt.timedelta(minutes=4))
    assert not nonces.valid(nonce, NOW + dt.timedelta(minutes=11))
    assert not DpopNonces(b"j" * 32).valid(nonce, NOW)
