"""Profiles as data, subject layout, key policy, validity and renewal rules."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from signing.ca import (
    OID_VNEGOV_SUBJECT_INFO,
    SubjectData,
    SubjectNotAllowed,
    WeakKey,
    build_subject,
    default_profiles,
    load_profiles,
    new_validity,
    read_subject_info,
    renewal_validity,
)
from signing.ca.oids import EKU_DOCUMENT_SIGNING
from signing.ca.profiles import InvalidProfile
from signing.ca.subject import subject_data_from_certificate
from signing.ca.validity import RenewalRefused, ValidityTooLong
from tests.signing.ca.hierarchy import SUBJECTS, make_hierarchy

NOW = dt.datetime(2025, 7, 1, 1, 0, tzinfo=dt.UTC)
FAR = NOW + dt.timedelta(days=3650)


def test_shipped_profiles_cover_every_subscriber_kind() -> None:
    reg = default_profiles()
    assert {p.id for p in reg.latest()} == {"individual", "organisation", "device",
                                           "ocsp-responder", "timestamping"}
    individual = reg.get("individual")
    assert individual.key == "individual@1"
    assert individual.key_usages.digital_signature and individual.key_usages.content_commitment
    assert EKU_DOCUMENT_SIGNING in individual.extended_key_usages
    assert reg.get("ocsp-responder").ocsp_nocheck
    tsa = reg.get("timestamping")
    assert tsa.extended_key_usages == (ExtendedKeyUsageOID.TIME_STAMPING,)
    assert tsa.extended_key_usage_critical
    assert all(p.max_validity_days <= 1826 for p in reg.all())


def test_newest_version_wins_and_old_versions_stay() -> None:
    text = b"""
profiles:
  - {id: x, version: 1, kind: device, subject: {required: [system_name]}, key_usage:
     [digital_signature], validity_days: {default: 10, max: 20}, policy: device}
  - {id: x, version: 2, kind: device, subject: {required: [system_name]}, key_usage:
     [digital_signature], validity_days: {default: 30, max: 40}, policy: device}
"""
    reg = load_profiles(text)
    assert reg.get("x").version == 2
    assert reg.get("x", 1).max_validity_days == 20
    assert reg.by_key("x@1").version == 1


@pytest.mark.parametrize("text, message", [
    (b"profiles: [{id: x, version: 1, kind: device, subject: {required: [system_name]}, "
     b"key_usage: [digital_signature], validity_days: {default: 1, max: 2}, policy: device, "
     b"colour: red}]", "unknown key 'colour'"),
    (b"profiles: [{id: x, version: 1, kind: device, subject: {required: [shoe_size]}, "
     b"key_usage: [digital_signature], validity_days: {default: 1, max: 2}, policy: device}]",
     "unknown subject field 'shoe_size'"),
    (b"profiles: [{id: x, version: 1, kind: device, subject: {required: [system_name]}, "
     b"key_usage: [key_cert_sign], validity_days: {default: 1, max: 2}, policy: device}]",
     "cannot sign certificates"),
    (b"profiles: [{id: x, version: 1, kind: device, subject: {required: [system_name]}, "
     b"key_usage: [digital_signature], validity_days: {default: 1, max: 2000}, policy: device}]",
     "at most 5 years"),
    (b"profiles: [{id: x, version: 1, kind: device, subject: {required: [system_name]}, "
     b"key_usage: [digital_signature], validity_days: {default: 1, max: 2}, policy: device,"
     b" renewal: {max_extension_days: 1500}}]", "at most 3 years"),
])
def test_malformed_profiles_are_rejected_with_the_reason(text: bytes, message: str) -> None:
    with pytest.raises(InvalidProfile, match=message):
        load_profiles(text)


def test_individual_subject_layout_and_machine_readable_fields() -> None:
    profile = default_profiles().get("individual")
    name, info, sans = build_subject(profile, SUBJECTS["individual"])
    get = lambda oid: name.get_attributes_for_oid(oid)[0].value  # noqa: E731
    assert get(NameOID.COMMON_NAME) == "Nguyễn Văn An"
    assert get(NameOID.TITLE) == "Chuyên viên"
    assert get(NameOID.ORGANIZATIONAL_UNIT_NAME) == "Phòng Văn hóa - Xã hội"
    assert get(NameOID.ORGANIZATION_NAME) == "UBND Phường Sài Gòn"
    assert get(NameOID.STATE_OR_PROVINCE_NAME) == "TP. Hồ Chí Minh"
    assert get(NameOID.COUNTRY_NAME) == "VN"
    assert info is not None and info.personal_id == "079084000999"
    assert info.agency_code == "000.31.01.H29" and info.province_code == "79"
    assert sans == [x509.RFC822Name("nvan@hochiminhcity.gov.vn")]


def test_issued_certificate_carries_profile_extensions() -> None:
    h = make_hierarchy(NOW)
    cert, _ = h.issue("individual")
    ext = cert.extensions
    assert ext.get_extension_for_class(x509.KeyUsage).value.content_commitment
    assert ext.get_extension_for_class(x509.CRLDistributionPoints)
    aia = ext.get_extension_for_class(x509.AuthorityInformationAccess).value
    assert {a.access_location.value for a in aia} == {
        "http://127.0.0.1:8080/pki/ocsp", "http://127.0.0.1:8080/pki/certs/issuing-ca.cer"}
    assert ext.get_extension_for_oid(OID_VNEGOV_SUBJECT_INFO).critical is False
    assert read_subject_info(cert).personal_id == "079084000999"  # type: ignore[union-attr]
    ocsp = h.ocsp.extensions
    assert ocsp.get_extension_for_class(x509.OCSPNoCheck)
    assert list(ocsp.get_extension_for_class(x509.ExtendedKeyUsage).value) == [
        ExtendedKeyUsageOID.OCSP_SIGNING]
    tsa_eku = h.tsa.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    assert tsa_eku.critical and list(tsa_eku.value) == [ExtendedKeyUsageOID.TIME_STAMPING]


def test_reading_back_a_certificate_gives_the_same_subject_data() -> None:
    h = make_hierarchy(NOW)
    for pid in ("individual", "organisation", "device"):
        cert, _ = h.issue(pid)
        assert subject_data_from_certificate(cert, default_profiles().get(pid)) == SUBJECTS[pid]


@pytest.mark.parametrize("profile, changes, field", [
    ("individual", {"full_name": ""}, "full_name"),
    ("individual", {"dns_names": ("a.example",)}, "dns_names"),
    ("organisation", {"personal_id": "079084000999"}, "personal_id"),
    ("individual", {"province_code": "02"}, "province_code"),  # Hà Giang is no longer a province
    ("individual", {"agency_code": "H29 "}, "agency_code"),
    ("individual", {"personal_id": "07908400099"}, "subject"),
    ("individual", {"email": "an@"}, "email"),
    ("individual", {"unit": "x" * 65}, "unit"),
    ("individual", {"unit": "Phòng\x00"}, "unit"),
])
def test_subject_fields_the_profile_does_not_allow_are_refused(profile: str, changes: dict,
                                                               field: str) -> None:
    data = SUBJECTS[profile].replace(**changes)
    with pytest.raises(SubjectNotAllowed) as err:
        build_subject(default_profiles().get(profile), data)
    assert err.value.metadata["field"] == field


def test_subject_data_from_dict_rejects_unknown_fields() -> None:
    with pytest.raises(SubjectNotAllowed, match="unknown subject field"):
        SubjectData.from_dict({"full_name": "A", "shoe_size": "42"})
    assert SubjectData.from_dict(SUBJECTS["device"].as_dict()) == SUBJECTS["device"]


@pytest.mark.parametrize("key, ok", [
    (rsa.generate_private_key(65537, 1024), False),
    (rsa.generate_private_key(65537, 2048), True),
    (ec.generate_private_key(ec.SECP256R1()), True),
    (ec.generate_private_key(ec.SECP256K1()), False),
    (ec.generate_private_key(ec.BrainpoolP256R1()), False),
    (ed25519.Ed25519PrivateKey.generate(), False),  # allowed globally, not by this profile
])
def test_key_policy(key, ok: bool) -> None:  # type: ignore[no-untyped-def]
    profile = default_profiles().get("individual")
    if ok:
        profile.check_public_key(key.public_key())
    else:
        with pytest.raises(WeakKey):
            profile.check_public_key(key.public_key())


def test_a_root_ca_lives_at_most_20_years() -> None:
    from signing.ca import CA_KEY_USAGES, CertificateSpec, issue_certificate
    from signing.errors import InvalidInput

    key = ec.generate_private_key(ec.SECP384R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Root")])
    start = dt.datetime(2026, 7, 1, tzinfo=dt.UTC)

    def root(not_after: dt.datetime) -> x509.Certificate:
        return issue_certificate(CertificateSpec(
            subject=subject, not_before=start, not_after=not_after,
            key_usages=CA_KEY_USAGES, is_ca=True), key.public_key(), key)

    limit = dt.datetime(2046, 7, 1, tzinfo=dt.UTC)
    assert root(limit).not_valid_after_utc == limit
    with pytest.raises(InvalidInput) as err:
        root(limit + dt.timedelta(seconds=1))
    assert err.value.reason == "VALIDITY_TOO_LONG" and "20 years" in err.value.message


def test_validity_limits() -> None:
    p = default_profiles().get("individual")
    v = new_validity(p, now=NOW, days=None, issuer_not_after=FAR)
    assert v.not_after - v.not_before == dt.timedelta(days=1826)
    with pytest.raises(ValidityTooLong):
        new_validity(p, now=NOW, days=1827, issuer_not_after=FAR)
    capped = new_validity(p, now=NOW, days=1000, issuer_not_after=NOW + dt.timedelta(days=10))
    assert capped.not_after == NOW + dt.timedelta(days=10)


def test_renewal_rules() -> None:
    p = default_profiles().get("individual")
    end = NOW + dt.timedelta(days=200)
    v = renewal_validity(p, now=NOW, not_after=end, renewals_so_far=0, extension_days=None,
                         issuer_not_after=FAR)
    assert v.not_after == end + dt.timedelta(days=1095) and v.not_before == NOW
    with pytest.raises(RenewalRefused) as err:
        renewal_validity(p, now=NOW, not_after=end, renewals_so_far=1, extension_days=None,
                         issuer_not_after=FAR)
    assert err.value.reason == "RENEWAL_LIMIT_REACHED"
    with pytest.raises(RenewalRefused) as err:
        renewal_validity(p, now=NOW, not_after=NOW + dt.timedelta(days=59), renewals_so_far=0,
                         extension_days=None, issuer_not_after=FAR)
    assert err.value.reason == "RENEWAL_TOO_LATE"
    with pytest.raises(ValidityTooLong):
        renewal_validity(p, now=NOW, not_after=end, renewals_so_far=0, extension_days=1200,
                         issuer_not_after=FAR)
    # Never more than 5 years from now, however much validity is left.
    long = renewal_validity(p, now=NOW, not_after=NOW + dt.timedelta(days=1500),
                            renewals_so_far=0, extension_days=None, issuer_not_after=FAR)
    assert long.not_after == NOW + dt.timedelta(days=1826)
    relaxed = default_profiles().with_renewal({"*": p.renewal.__class__(
        max_renewals=3, min_remaining_days=0, max_extension_days=30)}).get("individual")
    assert renewal_validity(relaxed, now=NOW, not_after=NOW + dt.timedelta(days=1),
                            renewals_so_far=2, extension_days=None, issuer_not_after=FAR
                            ).not_after == NOW + dt.timedelta(days=31)


def test_subject_info_der_matches_asn1crypto() -> None:
    from signing.ca.extensions import SubjectInfo, _SubjectInfoAsn1

    for info in (SubjectInfo(agency_code="000.00.31.H29", province_code="79",
                             commune_code="26734", personal_id="079084000999"),
                 SubjectInfo(agency_code="H55.242"), SubjectInfo(personal_id="001099000001")):
        fields = {k: getattr(info, k) for k in ("agency_code", "province_code", "commune_code",
                                                "personal_id") if getattr(info, k) is not None}
        assert info.to_der() == _SubjectInfoAsn1(fields).dump()
        assert SubjectInfo.from_der(info.to_der()) == info
