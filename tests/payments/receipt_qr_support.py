"""Seals for receipt QR tests: a PKI frozen at the receipts' issue time, EC and RSA seals that name
their body (agency code extension, ``UID=MST:`` tax code), a second body's seal, a foreign CA."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from payments.receipts.qr_jws import QrSeal
from signing.ca import CertificateSpec, KeyUsages, SubjectInfo, issue_certificate
from tests.payments.support import HCM, ORGANISATIONS, T0, WARD
from tests.support.pki import Authority

__all__ = ["QrPki", "seal_subject"]


def seal_subject(name: str, tax_code: str | None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COUNTRY_NAME, "VN"),
             x509.NameAttribute(NameOID.ORGANIZATION_NAME, name),
             x509.NameAttribute(NameOID.COMMON_NAME, name)]
    if tax_code:
        attrs.append(x509.NameAttribute(NameOID.USER_ID, f"MST:{tax_code}"))
    return x509.Name(attrs)


@dataclass
class QrPki:
    root: Authority
    issuing: Authority
    foreign_root: Authority

    @classmethod
    def create(cls, now: dt.datetime = T0) -> QrPki:
        root = Authority("Root CA chuyên dùng (test)", now - dt.timedelta(days=30))
        issuing = Authority("CA phục vụ các cơ quan Nhà nước (test)", now - dt.timedelta(days=30),
                            root)
        foreign = Authority("Foreign Root CA", now - dt.timedelta(days=30), org="elsewhere")
        return cls(root, issuing, foreign)

    def seal(self, agency: str = HCM, *, kind: str = "ec", tax_code: str | None = "",
             issuer: Authority | None = None, not_after: dt.datetime | None = None) -> QrSeal:
        """A seal for ``agency``; ``tax_code`` "" means the organisation's own, None none."""
        org = ORGANISATIONS[agency]
        tax = org.tax_code if tax_code == "" else tax_code
        key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey = (
            ec.generate_private_key(ec.SECP256R1()) if kind == "ec"
            else rsa.generate_private_key(public_exponent=65537, key_size=2048))
        ca = issuer or self.issuing
        cert = issue_certificate(CertificateSpec(
            subject=seal_subject(org.name, tax), not_before=T0 - dt.timedelta(days=10),
            not_after=not_after or T0 + dt.timedelta(days=5 * 365),
            key_usages=KeyUsages(digital_signature=True, content_commitment=True),
            extended_key_usages=(ExtendedKeyUsageOID.EMAIL_PROTECTION,),
            subject_info=SubjectInfo(agency_code=agency)), key.public_key(), ca.key, ca.cert)
        return QrSeal(key, cert)

    def bundle(self, *seals: QrSeal) -> list[x509.Certificate]:
        return [s.certificate for s in seals] + [self.issuing.cert]


_ = WARD
