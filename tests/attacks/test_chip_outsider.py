"""An outsider's attacks on level-2 proofing from the chip ID card (vnid/icao9303, the library
checks the gRPC flow relies on). Each test shows the attack failing."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib

import pytest

from tests.support.icao import (
    NOW,
    Person,
    _field,
    _signed,
    _utf8,
    dg1,
    dg13,
    make_chip,
    make_csca,
    make_ds,
    td1,
    tlv,
)
from vnid.icao9303 import ChipError, CscaTrustList, check_consistency, verify_chip
from vnid.icao9303.lds import parse_dg1, parse_dg13
from vnid.icao9303.sod import _LdsSecurityObject

CHALLENGE = bytes.fromhex("0102030405060708")


@pytest.fixture(scope="module")
def pki() -> tuple[CscaTrustList, object]:
    csca = make_csca()
    return CscaTrustList.from_pem(csca.pem), make_ds(csca)


def test_stripping_dg15_does_not_downgrade_a_chip_with_active_authentication(pki) -> None:
    """A copy of a chip's data (read from someone else's card) cannot answer the challenge, so the
    attacker leaves DG15 out: the SOD still lists it, and the chip must then answer."""
    trust, ds = pki
    chip = make_chip(ds, aa="rsa")
    groups = {n: v for n, v in chip.groups.items() if n != 15}
    with pytest.raises(ChipError) as err:
        verify_chip(sod=chip.sod, data_groups=groups, trust=trust, at=NOW, challenge=CHALLENGE)
    assert err.value.reason == "CHIP_AA_FAILED"
    # ... and claiming chip authentication instead does not help either.
    with pytest.raises(ChipError) as err:
        verify_chip(sod=chip.sod, data_groups=groups, trust=trust, at=NOW, challenge=CHALLENGE,
                    chip_authentication_reported=True)
    assert err.value.reason == "CHIP_AA_FAILED"
    # The genuine chip still passes.
    ok = verify_chip(sod=chip.sod, data_groups=chip.groups, trust=trust, at=NOW,
                     challenge=CHALLENGE, aa_signature=chip.answer(CHALLENGE))
    assert ok.strength == "strong"


def _sod_listing(ds: object, listed: list[tuple[int, bytes]]) -> bytes:
    lso = _LdsSecurityObject({
        "version": 0, "hash_algorithm": {"algorithm": "sha256"},
        "data_group_hash_values": [
            {"data_group_number": n, "data_group_hash_value": hashlib.sha256(v).digest()}
            for n, v in listed]}).dump()
    return tlv(0x77, _signed(ds, lso, "2.23.136.1.1.1", "sha256"))  # type: ignore[arg-type]


def test_a_sod_listing_a_data_group_twice_is_refused(pki) -> None:
    """Two hashes for DG13 make "the" DG13 ambiguous: whichever one the verifier keeps decides
    which personal data is accepted. Such a SOD is malformed, whatever order the hashes come in."""
    trust, ds = pki
    person = Person()
    other = dataclasses.replace(person, full_name="Lê Thị Mai", sex="F")
    for first, second in ((dg13(person), dg13(other)), (dg13(other), dg13(person))):
        sod = _sod_listing(ds, [(1, dg1(person)), (13, first), (13, second)])
        for presented in (first, second):
            with pytest.raises(ChipError) as err:
                verify_chip(sod=sod, data_groups={1: dg1(person), 13: presented}, trust=trust,
                            at=NOW)
            assert err.value.reason == "CHIP_SOD_INVALID"


def test_a_dg13_with_a_field_twice_is_refused() -> None:
    """DG13 naming two personal ID numbers (or two names) is ambiguous: a reader that keeps the
    first and one that keeps the last see different people."""
    person = Person()
    base = dg13(person)
    inner = base[2:] if base[1] < 0x80 else base[2 + (base[1] & 0x7F):]
    extra = _field(1, _utf8("079090000001"))
    seq = inner[2:] if inner[1] < 0x80 else inner[2 + (inner[1] & 0x7F):]
    doubled = tlv(0x6D, tlv(0x30, seq + extra))
    with pytest.raises(ChipError) as err:
        parse_dg13(doubled)
    assert err.value.reason == "CHIP_MALFORMED"
    assert parse_dg13(base).personal_id == person.personal_id


def test_a_dg1_with_two_zones_is_refused() -> None:
    person = Person()
    other = dataclasses.replace(person, personal_id="079090000001")
    zone = td1(person).replace("\n", "").encode()
    zone2 = td1(other).replace("\n", "").encode()
    with pytest.raises(ChipError) as err:
        parse_dg1(tlv(0x61, tlv(0x5F1F, zone) + tlv(0x5F1F, zone2)))
    assert err.value.reason == "CHIP_MALFORMED"
    assert parse_dg1(dg1(person)).personal_id == person.personal_id


def _evidence(pki, person: Person, dg13_person: Person):  # type: ignore[no-untyped-def]
    trust, ds = pki
    groups = {1: dg1(person), 13: dg13(dg13_person)}
    from tests.support.icao import make_sod

    return verify_chip(sod=make_sod(ds, groups), data_groups=groups, trust=trust, at=NOW)


def test_mrz_and_dg13_must_agree_on_expiry_and_sex(pki) -> None:
    """The MRZ says the card expired; DG13 says it runs to 2099: the card's validity (which
    bounds the level-2 account) must not come from whichever says more."""
    person = Person(date_of_expiry=dt.date(2021, 1, 1))
    longer = dataclasses.replace(person, date_of_expiry=dt.date(2099, 12, 31))
    evidence = _evidence(pki, person, longer)
    with pytest.raises(ChipError) as err:
        check_consistency(evidence, personal_id=person.personal_id, full_name=person.full_name,
                          date_of_birth=person.date_of_birth)
    assert err.value.reason == "CHIP_DATA_MISMATCH"
    # The MRZ says M, DG13 says Nữ.
    evidence = _evidence(pki, person, dataclasses.replace(person, sex="F"))
    with pytest.raises(ChipError) as err:
        check_consistency(evidence, personal_id=person.personal_id, full_name=person.full_name,
                          date_of_birth=person.date_of_birth)
    assert err.value.reason == "CHIP_DATA_MISMATCH"
    # A consistent card passes.
    evidence = _evidence(pki, person, person)
    check_consistency(evidence, personal_id=person.personal_id, full_name=person.full_name,
                      date_of_birth=person.date_of_birth)


def _foreign_csca(country: str):  # type: ignore[no-untyped-def]
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    from tests.support.icao import Authority

    key = ec.generate_private_key(ec.SECP384R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, country),
                         x509.NameAttribute(NameOID.COMMON_NAME, f"CSCA {country}")])
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(NOW - dt.timedelta(days=365))
            .not_valid_after(NOW + dt.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .sign(key, hashes.SHA384()))
    return Authority(cert, key)


def test_another_countrys_document_signer_cannot_issue_a_vietnamese_card() -> None:
    """A trust list made from an ICAO master list holds the CSCAs of many countries. A document
    signer of any of them must not be able to sign a chip that claims to be a Vietnamese ID card
    (ICAO 9303-11: the CSCA's country is the document's issuing state)."""
    viet_nam, foreign = make_csca(), _foreign_csca("UT")
    trust = CscaTrustList((viet_nam.cert, foreign.cert))
    forged = make_chip(make_ds(foreign, "DS of another state"), aa=None)
    with pytest.raises(ChipError) as err:
        verify_chip(sod=forged.sod, data_groups=forged.groups, trust=trust, at=NOW)
    assert err.value.reason == "CHIP_DS_UNTRUSTED"
    genuine = make_chip(make_ds(viet_nam), aa=None)
    assert verify_chip(sod=genuine.sod, data_groups=genuine.groups, trust=trust, at=NOW)


def test_an_mrz_without_a_document_number_does_not_match_every_account(pki) -> None:
    """A zone whose document number is all fillers (and with no ID in its optional data) "ends"
    every personal ID number: the MRZ must name the account's number, not nothing."""
    from vnid.icao9303.mrz import check_digit

    trust, ds = pki
    person = Person()
    line1 = "IDVNM" + "<" * 9 + check_digit("<" * 9) + "<" * 15
    dob = person.date_of_birth.strftime("%y%m%d")
    exp = person.date_of_expiry.strftime("%y%m%d")
    line2 = dob + check_digit(dob) + "M" + exp + check_digit(exp) + "VNM" + "<" * 11
    line2 += check_digit(line1[5:30] + line2[0:7] + line2[8:15] + line2[18:29])
    line3 = td1(person).split("\n")[2]
    groups = {1: dg1(person, mrz=line1 + line2 + line3), 13: dg13(person)}
    from tests.support.icao import make_sod

    evidence = verify_chip(sod=make_sod(ds, groups), data_groups=groups, trust=trust, at=NOW)
    assert evidence.mrz.document_number == ""
    with pytest.raises(ChipError) as err:
        check_consistency(evidence, personal_id=person.personal_id, full_name=person.full_name,
                          date_of_birth=person.date_of_birth)
    assert err.value.reason == "CHIP_DATA_MISMATCH"


def _nested(depth: int) -> bytes:
    value = b"\x05\x00"
    for _ in range(depth):
        value = tlv(0x30, value)
    return value


def test_a_deeply_nested_sod_is_a_clear_error(pki) -> None:
    """A few kilobytes of nested SEQUENCEs in a signed attribute (read before the signature is
    checked) exhausted the recursion limit: RecursionError, not a chip error."""
    from asn1crypto import cms
    from asn1crypto import core as asn1

    from vnid.icao9303.lds import read_tlv

    trust, ds = pki
    chip = make_chip(ds, aa=None)
    info = cms.ContentInfo.load(read_tlv(chip.sod).value)
    signer = info["content"]["signer_infos"][0]
    deep = cms.CMSAttribute({"type": "1.2.3.4", "values": [asn1.Any.load(_nested(3000))]})
    signer["signed_attrs"] = cms.CMSAttributes([*signer["signed_attrs"], deep])
    hostile = tlv(0x77, info.dump(force=True))
    with pytest.raises(ChipError) as err:
        verify_chip(sod=hostile, data_groups=chip.groups, trust=trust, at=NOW)
    assert err.value.reason == "CHIP_MALFORMED"
    # The same in a master list.
    with pytest.raises(ChipError) as err:
        CscaTrustList.from_master_list(_nested(3000), signer_issuers=list(trust.certificates))
    assert err.value.reason == "CHIP_MALFORMED"
    # The chip as issued still verifies.
    assert verify_chip(sod=chip.sod, data_groups=chip.groups, trust=trust, at=NOW)


def test_the_issuer_cache_cleared_by_another_thread_is_not_a_crash(pki) -> None:
    """Anyone can submit SODs carrying made-up DS certificates; each fills the trust list's issuer
    cache, which is cleared when full. A clear by another thread between storing an entry and
    reading it back raised KeyError (an internal error) instead of an answer."""

    class ClearedByAnotherThread(dict):  # type: ignore[type-arg]
        def __setitem__(self, key: object, value: object) -> None:
            super().__setitem__(key, value)
            self.clear()  # another submission filled the cache meanwhile

    trust, ds = pki
    fresh = CscaTrustList(trust.certificates)
    fresh.__dict__["_issuers"] = ClearedByAnotherThread()
    chip = make_chip(ds, aa=None)  # type: ignore[arg-type]
    assert verify_chip(sod=chip.sod, data_groups=chip.groups, trust=fresh, at=NOW)


def test_a_citizen_over_a_hundred_is_not_refused_for_the_mrz_century(pki) -> None:
    """The MRZ writes the birth year with two digits; a citizen born in 1925 reads as 2025 there.
    DG13 has the full date: the two must be compared without the century the MRZ lacks (and
    still refused when the day, month or year digits differ)."""
    person = Person(personal_id="001025012345", date_of_birth=dt.date(1925, 3, 1))
    evidence = _evidence(pki, person, person)
    check_consistency(evidence, personal_id=person.personal_id, full_name=person.full_name,
                      date_of_birth=person.date_of_birth)
    other_day = dataclasses.replace(person, date_of_birth=dt.date(1925, 3, 2))
    evidence = _evidence(pki, person, other_day)
    with pytest.raises(ChipError) as err:
        check_consistency(evidence, personal_id=person.personal_id, full_name=person.full_name,
                          date_of_birth=other_day.date_of_birth)
    assert err.value.reason == "CHIP_DATA_MISMATCH"
