"""Chip ID card verification (ICAO 9303 parts 10, 11, 12) on synthetic chips made by
tests/support/icao.py: a genuine chip verifies, and each attack fails with its own reason."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from tests.support import icao
from vnid.icao9303 import (
    ChipError,
    CscaTrustList,
    Genuineness,
    InvalidMrz,
    check_consistency,
    check_digit,
    parse_dg13,
    parse_td1,
    verify_chip,
)

CHALLENGE = os.urandom(8)


@pytest.fixture(scope="module")
def csca() -> icao.Authority:
    return icao.make_csca()


@pytest.fixture(scope="module")
def ds(csca: icao.Authority) -> icao.Authority:
    return icao.make_ds(csca)


@pytest.fixture(scope="module")
def trust(csca: icao.Authority) -> CscaTrustList:
    return CscaTrustList.from_pem(csca.pem)


@pytest.fixture(scope="module")
def chip(ds: icao.Authority) -> icao.Chip:
    return icao.make_chip(ds)


def verify(chip: icao.Chip, trust: CscaTrustList, *, challenge: bytes = CHALLENGE,
           answer: bytes | None = None, at: dt.datetime | None = None) -> object:
    return verify_chip(sod=chip.sod, data_groups=chip.groups, trust=trust,
                       at=at or icao.NOW, challenge=challenge,
                       aa_signature=answer if answer is not None else (
                           chip.answer(challenge) if chip.aa_key else None))


def reason_of(call: object) -> str:
    with pytest.raises(ChipError) as err:
        call()  # type: ignore[operator]
    return err.value.reason


# ------------------------------------------------------------------ MRZ
def test_check_digits_follow_icao_9303_part_3() -> None:
    # ICAO 9303-3's worked example: document number L898902C3 has check digit 6.
    assert check_digit("L898902C3") == "6"
    assert check_digit("740812") == "2"
    assert check_digit("120415") == "9"


def test_td1_parses_and_a_wrong_check_digit_is_refused() -> None:
    zone = icao.td1(icao.Person())
    mrz = parse_td1(zone)
    assert mrz.personal_id == "001090012345"
    assert mrz.document_number == "090012345"
    assert mrz.date_of_birth == dt.date(1990, 5, 17)
    assert mrz.name == "NGUYEN VAN AN"
    broken = zone[:14] + str((int(zone[14]) + 1) % 10) + zone[15:]
    with pytest.raises(InvalidMrz) as err:
        parse_td1(broken)
    assert err.value.metadata["field"] == "document number"
    with pytest.raises(InvalidMrz):
        parse_td1(zone[:-3])


# ------------------------------------------------------------------ genuine chips
@pytest.mark.parametrize("aa", ["rsa", "ec"])
def test_a_genuine_chip_verifies_with_active_authentication(ds: icao.Authority,
                                                            trust: CscaTrustList,
                                                            aa: str) -> None:
    chip = icao.make_chip(ds, aa=aa)
    evidence = verify(chip, trust)
    assert evidence.genuineness is Genuineness.ACTIVE_AUTHENTICATION  # type: ignore[attr-defined]
    assert evidence.strength == "strong"  # type: ignore[attr-defined]
    data = evidence.personal_data  # type: ignore[attr-defined]
    assert data.full_name == "Nguyễn Văn An"
    assert data.personal_id == "001090012345"
    assert data.date_of_birth == dt.date(1990, 5, 17)
    assert data.father_name == "Nguyễn Văn Bình" and data.mother_name == "Trần Thị Cúc"
    assert data.claims()["gender"] == "male"
    check_consistency(evidence, personal_id="001090012345",  # type: ignore[arg-type]
                      full_name="NGUYỄN VĂN AN", date_of_birth=dt.date(1990, 5, 17))


def test_without_dg15_the_evidence_is_weak_and_says_why(ds: icao.Authority,
                                                        trust: CscaTrustList) -> None:
    chip = icao.make_chip(ds, aa=None)
    evidence = verify(chip, trust)
    assert evidence.genuineness is Genuineness.NONE  # type: ignore[attr-defined]
    assert evidence.strength == "weak"  # type: ignore[attr-defined]
    assert "copy" in evidence.notes[0]  # type: ignore[attr-defined]
    chip = icao.make_chip(ds, aa=None, with_dg14=True)
    evidence = verify_chip(sod=chip.sod, data_groups=chip.groups, trust=trust, at=icao.NOW,
                           chip_authentication_reported=True)
    assert evidence.genuineness is Genuineness.CHIP_AUTHENTICATION_REPORTED


def test_dg13_parsing_is_defensive() -> None:
    assert parse_dg13(icao.tlv(0x6D, b"")).full_name == ""
    odd = icao.tlv(0x6D, icao.tlv(0x30, icao._field(42, icao._utf8("x"))))
    assert parse_dg13(odd).other == {42: "x"}
    for bad in (b"", b"\x6d", b"\x6d\x05\x30", b"\x61\x00", b"\x6d\x84\xff\xff\xff\xff"):
        with pytest.raises(ChipError):
            parse_dg13(bad)
    deep = b"\x04\x00"
    for _ in range(40):
        deep = icao.tlv(0x30, deep)
    with pytest.raises(ChipError):
        parse_dg13(icao.tlv(0x6D, deep))


# ------------------------------------------------------------------ attacks
def test_a_data_group_altered_after_signing_fails(chip: icao.Chip,
                                                  trust: CscaTrustList) -> None:
    other = icao.dg13(icao.Person(full_name="Lê Thị Giả"))
    assert reason_of(lambda: verify(icao.altered(chip, 13, other), trust)) \
        == "CHIP_DATA_GROUP_ALTERED"
    # A data group the SOD does not list is not accepted either.
    assert reason_of(lambda: verify(icao.altered(chip, 11, icao.tlv(0x6B, b"")), trust)) \
        == "CHIP_DATA_GROUP_ALTERED"


def test_an_sod_signed_by_a_ds_of_another_csca_fails(chip: icao.Chip) -> None:
    foreign = icao.make_csca("Foreign CSCA")
    foreign_ds = icao.make_ds(foreign)
    forged = icao.make_chip(foreign_ds)
    trust = CscaTrustList.from_pem(icao.make_csca().pem)
    assert reason_of(lambda: verify(forged, trust)) == "CHIP_DS_UNTRUSTED"


def test_an_sod_whose_signature_was_tampered_fails(chip: icao.Chip,
                                                   trust: CscaTrustList) -> None:
    sod = bytearray(chip.sod)
    sod[-5] ^= 0x01  # inside the signature value
    tampered = icao.Chip(chip.person, chip.groups, bytes(sod), chip.aa_key)
    assert reason_of(lambda: verify(tampered, trust)) in {"CHIP_SOD_INVALID", "CHIP_MALFORMED"}


def test_an_expired_or_revoked_ds_fails(csca: icao.Authority, trust: CscaTrustList) -> None:
    old = icao.make_ds(csca, not_before=icao.NOW - dt.timedelta(days=3650),
                       not_after=icao.NOW - dt.timedelta(days=1))
    assert reason_of(lambda: verify(icao.make_chip(old), trust)) == "CHIP_DS_EXPIRED"
    ds = icao.make_ds(csca, "Revoked DS")
    chip = icao.make_chip(ds)
    verify(chip, trust)
    crl = icao.make_crl(csca, [(ds.cert, icao.NOW - dt.timedelta(hours=1))])
    revoked_trust = CscaTrustList.from_pem(csca.pem, [crl])
    assert reason_of(lambda: verify(chip, revoked_trust)) == "CHIP_DS_REVOKED"


def test_a_wrong_or_replayed_active_authentication_answer_fails(chip: icao.Chip,
                                                                trust: CscaTrustList) -> None:
    # An answer recorded for another challenge (a clone replaying a genuine chip's answer).
    replayed = chip.answer(b"OLDCHALL")
    assert reason_of(lambda: verify(chip, trust, answer=replayed)) == "CHIP_AA_FAILED"
    assert reason_of(lambda: verify(chip, trust, answer=b"\x00" * 128)) == "CHIP_AA_FAILED"
    # A clone: same data groups and SOD, but its own key answers.
    clone = icao.make_chip(icao.make_ds(icao.make_csca()))
    assert reason_of(lambda: verify(chip, trust, answer=clone.answer(CHALLENGE))) \
        == "CHIP_AA_FAILED"
    assert reason_of(lambda: verify_chip(sod=chip.sod, data_groups=chip.groups, trust=trust,
                                         at=icao.NOW)) == "CHIP_AA_FAILED"


def test_an_mrz_check_digit_wrong_fails(ds: icao.Authority, trust: CscaTrustList) -> None:
    person = icao.Person()
    zone = icao.td1(person)
    broken = zone[:14] + str((int(zone[14]) + 1) % 10) + zone[15:]
    groups = {1: icao.dg1(person, mrz=broken), 13: icao.dg13(person)}
    chip = icao.Chip(person, groups, icao.make_sod(ds, groups), None)
    with pytest.raises(InvalidMrz) as err:
        verify(chip, trust)
    assert err.value.reason == "MRZ_INVALID"


def test_dg13_that_does_not_match_the_account_fails(chip: icao.Chip,
                                                    trust: CscaTrustList) -> None:
    evidence = verify(chip, trust)
    for kwargs in ({"personal_id": "001090099999", "full_name": "Nguyễn Văn An",
                    "date_of_birth": dt.date(1990, 5, 17)},
                   {"personal_id": "001090012345", "full_name": "Nguyễn Văn Ân Khác",
                    "date_of_birth": dt.date(1990, 5, 17)},
                   {"personal_id": "001090012345", "full_name": "Nguyễn Văn An",
                    "date_of_birth": dt.date(1991, 5, 17)}):
        with pytest.raises(ChipError) as err:
            check_consistency(evidence, **kwargs)  # type: ignore[arg-type]
        assert err.value.reason == "CHIP_DATA_MISMATCH"
    # A personal ID number whose century-and-sex digit (1: a woman born in the 1900s)
    # contradicts the chip's MRZ (M).
    contradicting = icao.Person(personal_id="001190012345", sex="M")
    csca2 = icao.make_csca()
    chip2 = icao.make_chip(icao.make_ds(csca2), contradicting, aa=None)
    ev2 = verify(chip2, CscaTrustList.from_pem(csca2.pem))
    with pytest.raises(ChipError) as err:
        check_consistency(ev2, personal_id="001190012345",  # type: ignore[arg-type]
                          full_name="Nguyễn Văn An", date_of_birth=dt.date(1990, 5, 17))
    assert err.value.reason == "CHIP_DATA_MISMATCH"


def test_malformed_sods_are_refused_cleanly(chip: icao.Chip, trust: CscaTrustList) -> None:
    for sod in (b"", b"\x77\x00", b"\x30\x03\x02\x01\x00", chip.sod[:50], b"\x77\x03abc"):
        bad = icao.Chip(chip.person, chip.groups, sod, chip.aa_key)
        assert reason_of(lambda b=bad: verify(b, trust)) == "CHIP_MALFORMED"


def test_a_master_list_loads_only_when_its_signer_is_anchored_out_of_band(
        csca: icao.Authority) -> None:
    """A master list is trusted through the CSCA that issued its signer, which the relying
    party trusts out of band (the publishing country's), never through what the list holds."""
    other = icao.make_csca("Neighbour CSCA")
    signer = icao.make_ds(csca, "Master List Signer")
    trust = CscaTrustList.from_master_list(icao.make_master_list(signer, [csca, other]),
                                           signer_issuers=[csca.cert])
    assert {c.subject for c in trust.certificates} == {csca.cert.subject, other.cert.subject}
    stranger = icao.make_ds(icao.make_csca("Unlisted CSCA"), "Stranger")
    with pytest.raises(ChipError) as err:
        CscaTrustList.from_master_list(icao.make_master_list(stranger, [csca, other]),
                                       signer_issuers=[csca.cert])
    assert err.value.reason == "CHIP_DS_UNTRUSTED"
    # The attack the list's own contents cannot stop: a forger's CSCA put into the list, and a
    # signer it issued signing the list. It vouches for itself; the anchor refuses it.
    forger = icao.make_csca("Forged CSCA")
    forged = icao.make_master_list(icao.make_ds(forger, "Forged Signer"), [csca, forger])
    with pytest.raises(ChipError) as err:
        CscaTrustList.from_master_list(forged, signer_issuers=[csca.cert])
    assert err.value.reason == "CHIP_DS_UNTRUSTED"
    # A listed CSCA is not an anchor because it is listed: only the ones given are.
    with pytest.raises(ChipError):
        CscaTrustList.from_master_list(icao.make_master_list(signer, [csca, other]),
                                       signer_issuers=[other.cert])
    with pytest.raises(ValueError):
        CscaTrustList.from_master_list(forged, signer_issuers=[])
    with pytest.raises(ChipError):
        CscaTrustList.from_master_list(b"\x30\x03\x02\x01\x00", signer_issuers=[csca.cert])


# ------------------------------------------------------------------ independent check
def test_openssl_cms_verifies_the_test_sods_and_rejects_altered_ones(
        chip: icao.Chip, csca: icao.Authority, tmp_path: Path) -> None:
    assert shutil.which("openssl"), "openssl is required"
    (tmp_path / "csca.pem").write_bytes(csca.pem)
    from vnid.icao9303.lds import read_tlv

    (tmp_path / "sod.der").write_bytes(read_tlv(chip.sod).value)

    def openssl_verify(path: Path) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(["openssl", "cms", "-verify", "-inform", "DER", "-in", str(path),
                               "-CAfile", str(tmp_path / "csca.pem"), "-purpose", "any",
                               "-out", str(tmp_path / "content.der")], capture_output=True)

    ok = openssl_verify(tmp_path / "sod.der")
    assert ok.returncode == 0, ok.stderr
    assert b"Verification successful" in ok.stderr
    body = bytearray(read_tlv(chip.sod).value)
    index = body.find(bytes.fromhex(hashlib.sha256(chip.groups[1]).hexdigest()))
    assert index > 0
    body[index] ^= 0xFF  # alter DG1's hash inside the signed content
    (tmp_path / "altered.der").write_bytes(bytes(body))
    bad = openssl_verify(tmp_path / "altered.der")
    assert bad.returncode != 0
    other = icao.make_csca("Other CSCA")
    (tmp_path / "csca.pem").write_bytes(other.pem)
    assert openssl_verify(tmp_path / "sod.der").returncode != 0
    assert serialization  # the module is used by the helpers above
