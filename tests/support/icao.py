"""Synthetic chip ID cards for tests: a test CSCA and document signers, and chips (data groups in
the encodings ICAO 9303 fixes, a SOD, an active-authentication key) made here. No real citizen's
data: the people are invented, the keys are generated per run."""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass, field, replace

from asn1crypto import algos, cms
from asn1crypto import core as asn1
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

from vnid.icao9303.mrz import check_digit
from vnid.icao9303.sod import _CscaMasterList, _LdsSecurityObject

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)


def _name(cn: str, country: str = "VN") -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, country),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "vnegov test chips"),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])


@dataclass
class Authority:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @property
    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)


def make_csca(cn: str = "Test CSCA Viet Nam", *, years: int = 15) -> Authority:
    key = ec.generate_private_key(ec.SECP384R1())
    cert = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(_name(cn))
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(NOW - dt.timedelta(days=365))
            .not_valid_after(NOW + dt.timedelta(days=365 * years))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False,
                                         False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                           critical=False)
            .sign(key, hashes.SHA384()))
    return Authority(cert, key)


def make_ds(csca: Authority, cn: str = "Test Document Signer 1", *,
            not_before: dt.datetime | None = None,
            not_after: dt.datetime | None = None) -> Authority:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(csca.cert.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(not_before or NOW - dt.timedelta(days=30))
            .not_valid_after(not_after or NOW + dt.timedelta(days=365 * 10))
            .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False,
                                         False), critical=True)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                csca.key.public_key()), critical=False)
            .sign(csca.key, hashes.SHA384()))
    return Authority(cert, key)


def make_crl(csca: Authority, revoked: list[tuple[x509.Certificate, dt.datetime]]) -> bytes:
    builder = (x509.CertificateRevocationListBuilder().issuer_name(csca.cert.subject)
               .last_update(NOW - dt.timedelta(hours=1))
               .next_update(NOW + dt.timedelta(days=30)))
    for cert, when in revoked:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(cert.serial_number)
            .revocation_date(when).build())
    return builder.sign(csca.key, hashes.SHA384()).public_bytes(serialization.Encoding.DER)


# ------------------------------------------------------------------ encodings
def tlv(tag: int, value: bytes) -> bytes:
    tag_bytes = tag.to_bytes((tag.bit_length() + 7) // 8 or 1, "big")
    n = len(value)
    if n < 0x80:
        length = bytes([n])
    else:
        raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
        length = bytes([0x80 | len(raw)]) + raw
    return tag_bytes + length + value


def _utf8(text: str) -> bytes:
    return tlv(0x0C, text.encode())


def _field(number: int, *values: bytes) -> bytes:
    return tlv(0x30, tlv(0x02, bytes([number])) + b"".join(values))


def _mrz_name(full_name: str) -> str:
    import unicodedata

    text = unicodedata.normalize("NFD", full_name.replace("Đ", "D").replace("đ", "d"))
    ascii_name = "".join(ch for ch in text if not unicodedata.combining(ch)).upper()
    parts = ascii_name.split()
    return (parts[0] + "<<" + "<".join(parts[1:]))[:30].ljust(30, "<")


@dataclass
class Person:
    personal_id: str = "001090012345"  # Hà Nội, male born 1990
    full_name: str = "Nguyễn Văn An"
    date_of_birth: dt.date = dt.date(1990, 5, 17)
    sex: str = "M"
    date_of_issue: dt.date = dt.date(2021, 4, 2)
    date_of_expiry: dt.date = dt.date(2040, 5, 17)
    place_of_origin: str = "Xã Đông Anh, Hà Nội"
    place_of_residence: str = "Số 1 Phố Huế, Phường Hai Bà Trưng, Hà Nội"
    father_name: str = "Nguyễn Văn Bình"
    mother_name: str = "Trần Thị Cúc"


def td1(person: Person) -> str:
    number = person.personal_id[-9:]
    opt1 = (person.personal_id + "<<<")[:15]
    line1 = "IDVNM" + number + check_digit(number) + opt1
    dob = person.date_of_birth.strftime("%y%m%d")
    exp = person.date_of_expiry.strftime("%y%m%d")
    line2 = dob + check_digit(dob) + person.sex + exp + check_digit(exp) + "VNM" + "<" * 11
    composite = check_digit(line1[5:30] + line2[0:7] + line2[8:15] + line2[18:29])
    return line1 + "\n" + line2 + composite + "\n" + _mrz_name(person.full_name)


def dg1(person: Person, *, mrz: str | None = None) -> bytes:
    return tlv(0x61, tlv(0x5F1F, (mrz or td1(person)).replace("\n", "").encode()))


def dg13(person: Person) -> bytes:
    sex = "Nam" if person.sex == "M" else "Nữ"
    fields = [
        _field(1, _utf8(person.personal_id)), _field(2, _utf8(person.full_name)),
        _field(3, _utf8(person.date_of_birth.strftime("%d/%m/%Y"))), _field(4, _utf8(sex)),
        _field(5, _utf8("Việt Nam")), _field(6, _utf8("Kinh")), _field(7, _utf8("Không")),
        _field(8, _utf8(person.place_of_origin)), _field(9, _utf8(person.place_of_residence)),
        _field(10, _utf8("Nốt ruồi C:2cm trên trước đầu lông mày trái")),
        _field(11, _utf8(person.date_of_issue.strftime("%d/%m/%Y"))),
        _field(12, _utf8(person.date_of_expiry.strftime("%d/%m/%Y"))),
        _field(13, tlv(0x30, _field(1, _utf8(person.father_name))
                       + _field(2, _utf8(person.mother_name)))),
        _field(14, _utf8("")), _field(16, _utf8("012345678")),
    ]
    return tlv(0x6D, tlv(0x30, tlv(0x06, bytes.fromhex("2b0601040182f35f0d01")) + b"".join(fields)))


def dg2() -> bytes:
    return tlv(0x75, tlv(0x7F61, tlv(0x02, b"\x01") + tlv(0x7F60, b"synthetic face")))


def dg15(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> bytes:
    spki = key.public_key().public_bytes(serialization.Encoding.DER,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)
    return tlv(0x6F, spki)


def dg14(key: ec.EllipticCurvePrivateKey) -> bytes:
    spki = key.public_key().public_bytes(serialization.Encoding.DER,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)
    oid = asn1.ObjectIdentifier("0.4.0.127.0.7.2.2.1.2").dump()
    info = tlv(0x30, oid + spki)
    return tlv(0x6E, tlv(0x31, info))


def make_sod(ds: Authority, groups: dict[int, bytes], *, hash_name: str = "sha256") -> bytes:
    lso = _LdsSecurityObject({
        "version": 0, "hash_algorithm": {"algorithm": hash_name},
        "data_group_hash_values": [
            {"data_group_number": n, "data_group_hash_value": hashlib.new(hash_name, v).digest()}
            for n, v in sorted(groups.items())],
    }).dump()
    return tlv(0x77, _signed(ds, lso, "2.23.136.1.1.1", hash_name))


def make_master_list(signer: Authority, cscas: list[Authority]) -> bytes:
    """An ICAO master list (CMS SignedData of a CscaMasterList) signed by ``signer``."""
    body = _CscaMasterList({"version": 0, "cert_list": [
        asn1_x509.Certificate.load(c.cert.public_bytes(serialization.Encoding.DER))
        for c in cscas]}).dump()
    return _signed(signer, body, "2.23.136.1.1.2", "sha256")


def _signed(ds: Authority, lso: bytes, content_type: str, hash_name: str) -> bytes:
    attrs = cms.CMSAttributes([
        {"type": "content_type", "values": [content_type]},
        {"type": "signing_time", "values": [cms.Time({"utc_time": NOW})]},
        {"type": "message_digest", "values": [hashlib.new(hash_name, lso).digest()]},
    ])
    der_sig = ds.key.sign(attrs.dump(), ec.ECDSA(getattr(hashes, hash_name.upper())()))
    cert = asn1_x509.Certificate.load(ds.cert.public_bytes(serialization.Encoding.DER))
    signer = cms.SignerInfo({
        "version": "v1",
        "sid": cms.SignerIdentifier({"issuer_and_serial_number": {
            "issuer": cert.issuer, "serial_number": cert.serial_number}}),
        "digest_algorithm": {"algorithm": hash_name},
        "signed_attrs": attrs,
        "signature_algorithm": {"algorithm": f"{hash_name}_ecdsa"},
        "signature": der_sig,
    })
    signed = cms.SignedData({
        "version": "v3", "digest_algorithms": [algos.DigestAlgorithm({"algorithm": hash_name})],
        "encap_content_info": {"content_type": content_type,
                               "content": asn1.ParsableOctetString(lso)},
        "certificates": [cert], "signer_infos": [signer],
    })
    return bytes(cms.ContentInfo({"content_type": "signed_data", "content": signed}).dump())


def iso9796_2_sign(key: rsa.RSAPrivateKey, challenge: bytes, *, sha: str = "sha1") -> bytes:
    """What a chip answers to an active-authentication challenge with an RSA key."""
    k = (key.key_size + 7) // 8
    size = hashlib.new(sha).digest_size
    trailer = b"\xbc" if sha == "sha1" else {"sha256": b"\x34\xcc"}[sha]
    m1 = bytes(range(k - 1 - size - len(trailer)))
    block = b"\x6a" + m1 + hashlib.new(sha, m1 + challenge).digest() + trailer
    numbers = key.private_numbers()
    n = numbers.public_numbers.n
    s = pow(int.from_bytes(block, "big"), numbers.d, n)
    return min(s, n - s).to_bytes(k, "big")


def ecdsa_answer(key: ec.EllipticCurvePrivateKey, challenge: bytes) -> bytes:
    r, s = decode_dss_signature(key.sign(challenge, ec.ECDSA(hashes.SHA256())))
    size = (key.curve.key_size + 7) // 8
    return r.to_bytes(size, "big") + s.to_bytes(size, "big")


@dataclass
class Chip:
    """A synthetic card: its data groups, its SOD and its active-authentication key."""

    person: Person
    groups: dict[int, bytes]
    sod: bytes
    aa_key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | None
    extra: dict[str, bytes] = field(default_factory=dict)

    def answer(self, challenge: bytes) -> bytes:
        if isinstance(self.aa_key, rsa.RSAPrivateKey):
            return iso9796_2_sign(self.aa_key, challenge)
        assert isinstance(self.aa_key, ec.EllipticCurvePrivateKey)
        return ecdsa_answer(self.aa_key, challenge)


def make_chip(ds: Authority, person: Person | None = None, *, aa: str | None = "rsa",
              with_dg14: bool = False) -> Chip:
    person = person or Person()
    aa_key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | None = None
    groups = {1: dg1(person), 2: dg2(), 13: dg13(person)}
    if aa == "rsa":
        aa_key = rsa.generate_private_key(65537, 1024)
    elif aa == "ec":
        aa_key = ec.generate_private_key(ec.SECP256R1())
    if aa_key is not None:
        groups[15] = dg15(aa_key)
    if with_dg14:
        groups[14] = dg14(ec.generate_private_key(ec.SECP256R1()))
    return Chip(person, groups, make_sod(ds, groups), aa_key)


def altered(chip: Chip, number: int, content: bytes) -> Chip:
    """The same chip with one data group replaced after the SOD was signed."""
    return replace(chip, groups={**chip.groups, number: content})
