"""The RFC 3161 TSA: openssl accepts its tokens for the stamped data and rejects them for other
data; requests it cannot honour are rejected with the right failure bit."""

from __future__ import annotations

import datetime as dt
import hashlib
import subprocess
from pathlib import Path

import pytest
from asn1crypto import core, tsp

from signing.ca.oids import TSA_POLICY
from signing.tsa import FailureInfo, TimeCounterSerials, TimeStampAuthority, TsaSettings
from tests.signing.ca.hierarchy import Hierarchy, make_hierarchy


@pytest.fixture(scope="module")
def h() -> Hierarchy:
    return make_hierarchy()


def _tsa(h: Hierarchy, **settings: object) -> TimeStampAuthority:
    return TimeStampAuthority(h.tsa, h.tsa_key, chain=(h.issuing,),
                              settings=TsaSettings(**settings))  # type: ignore[arg-type]


def _query(tmp: Path, data: bytes, *args: str) -> Path:
    (tmp / "doc").write_bytes(data)
    subprocess.run(["openssl", "ts", "-query", "-data", tmp / "doc", "-out", tmp / "q.tsq",
                    *args], check=True, capture_output=True)
    return tmp / "q.tsq"


def test_openssl_verifies_token_for_the_data_and_rejects_other_data(h: Hierarchy,
                                                                    tmp_path: Path) -> None:
    files = h.write(tmp_path)
    query = _query(tmp_path, b"Quyet dinh 1234/QD-UBND", "-sha256", "-cert")
    answer = _tsa(h).respond(query.read_bytes(), dt.datetime.now(dt.UTC))
    assert answer.granted
    (tmp_path / "r.tsr").write_bytes(answer.body)
    ok = subprocess.run(["openssl", "ts", "-verify", "-in", tmp_path / "r.tsr", "-queryfile",
                         query, "-CAfile", files["root"]], capture_output=True, text=True)
    assert "Verification: OK" in ok.stdout, ok.stdout + ok.stderr
    ok = subprocess.run(["openssl", "ts", "-verify", "-in", tmp_path / "r.tsr", "-data",
                         tmp_path / "doc", "-CAfile", files["root"]], capture_output=True,
                        text=True)
    assert "Verification: OK" in ok.stdout
    (tmp_path / "other").write_bytes(b"Quyet dinh 1235/QD-UBND")
    bad = subprocess.run(["openssl", "ts", "-verify", "-in", tmp_path / "r.tsr", "-data",
                          tmp_path / "other", "-CAfile", files["root"]], capture_output=True,
                         text=True)
    assert "Verification: FAILED" in bad.stdout and "message imprint mismatch" in bad.stderr
    text = subprocess.run(["openssl", "ts", "-reply", "-in", tmp_path / "r.tsr", "-text"],
                          capture_output=True, text=True).stdout
    assert f"Policy OID: {TSA_POLICY.dotted_string}" in text
    assert "Accuracy: 0x01 seconds" in text
    assert "Nonce: 0x" in text


def test_token_fields(h: Hierarchy, tmp_path: Path) -> None:
    query = _query(tmp_path, b"x", "-sha384", "-no_nonce")
    now = dt.datetime(2025, 7, 1, 3, 4, 5, 678000, tzinfo=dt.UTC)
    answer = _tsa(h, accuracy_seconds=0, accuracy_millis=500).respond(query.read_bytes(), now)
    resp = tsp.TimeStampResp.load(answer.body)
    info = resp["time_stamp_token"]["content"]["encap_content_info"]["content"].parsed
    assert info["gen_time"].native == now.replace(microsecond=0)
    assert info["accuracy"].native == {"seconds": None, "millis": 500, "micros": None}
    assert info["nonce"].native is None
    assert info["message_imprint"]["hashed_message"].native == hashlib.sha384(b"x").digest()
    assert info["serial_number"].native == answer.serial_number
    signed = resp["time_stamp_token"]["content"]
    assert not signed["certificates"].native  # no -cert: no certificates in the token
    attrs = {a["type"].native for a in signed["signer_infos"][0]["signed_attrs"]}
    assert attrs == {"content_type", "message_digest", "signing_certificate_v2"}


@pytest.mark.parametrize("args, failure", [
    (("-sha1",), FailureInfo.BAD_ALG),
    (("-sha256", "-tspolicy", "1.2.3.4"), FailureInfo.UNACCEPTED_POLICY),
])
def test_rejections(h: Hierarchy, tmp_path: Path, args: tuple[str, ...],
                    failure: FailureInfo) -> None:
    answer = _tsa(h).respond(_query(tmp_path, b"x", *args).read_bytes(), dt.datetime.now(dt.UTC))
    assert not answer.granted and answer.failure is failure
    status = tsp.PKIStatusInfo.load(core.Sequence.load(answer.body).contents)
    assert status["status"].native == "rejection"
    assert status["fail_info"].native == {failure.name.lower().replace("extension", "extensions")}
    (tmp_path / "r.tsr").write_bytes(answer.body)
    text = subprocess.run(["openssl", "ts", "-reply", "-in", tmp_path / "r.tsr", "-text"],
                          capture_output=True, text=True).stdout
    assert "Status: Rejected" in text


def test_malformed_and_wrong_length_requests(h: Hierarchy) -> None:
    now = dt.datetime.now(dt.UTC)
    assert _tsa(h).respond(b"garbage", now).failure is FailureInfo.BAD_DATA_FORMAT
    req = tsp.TimeStampReq({"version": "v1", "message_imprint": {
        "hash_algorithm": {"algorithm": "sha256"}, "hashed_message": b"short"}})
    assert _tsa(h).respond(req.dump(), now).failure is FailureInfo.BAD_DATA_FORMAT
    req = tsp.TimeStampReq({"version": "v1", "message_imprint": {
        "hash_algorithm": {"algorithm": "sha256"}, "hashed_message": b"\0" * 32},
        "extensions": [{"extn_id": "1.2.3", "critical": False, "extn_value": b"\x05\x00"}]})
    assert _tsa(h).respond(req.dump(), now).failure is FailureInfo.UNACCEPTED_EXTENSION


def test_serial_numbers_are_unique_and_positive() -> None:
    a, b = TimeCounterSerials(), TimeCounterSerials()
    serials = [a.next_serial() for _ in range(5000)] + [b.next_serial() for _ in range(5000)]
    assert len(set(serials)) == 10000 and min(serials) > 0
    assert max(serials).bit_length() <= 160


def test_tsa_certificate_must_be_a_tsa_certificate(h: Hierarchy) -> None:
    device, key = h.issue("device")
    with pytest.raises(Exception, match="id-kp-timeStamping"):
        TimeStampAuthority(device, key)
