"""A small CA hierarchy for tests: root -> issuing CA -> OCSP responder, TSA and subscribers, built
with the library's own profiles (so what the tests check is what the CA issues)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes
from cryptography.x509.oid import NameOID

from signing.ca import (
    CA_KEY_USAGES,
    AuthorityUrls,
    CertificateSpec,
    IssuingAuthority,
    SubjectData,
    default_profiles,
    issue_certificate,
    new_validity,
)

BASE_URL = "http://127.0.0.1:8080"

SUBJECTS = {
    "individual": SubjectData(
        full_name="Nguyễn Văn An", title="Chuyên viên", unit="Phòng Văn hóa - Xã hội",
        parent_body="UBND Phường Sài Gòn", agency_code="000.31.01.H29", province_code="79",
        personal_id="079084000999", email="nvan@hochiminhcity.gov.vn"),
    "organisation": SubjectData(
        agency_name="Sở Tư pháp", parent_body="UBND Thành phố Hồ Chí Minh",
        agency_code="000.00.12.H29", province_code="79"),
    "device": SubjectData(
        system_name="dvc-hcm", parent_body="UBND Thành phố Hồ Chí Minh",
        agency_code="000.00.00.H29", province_code="79",
        dns_names=("dichvucong.hochiminhcity.gov.vn",)),
    "ocsp-responder": SubjectData(system_name="vnegov OCSP Responder", parent_body="vnegov tests"),
    "timestamping": SubjectData(system_name="vnegov Time-Stamping Unit",
                                parent_body="vnegov tests"),
}


def ca_name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "VN"),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Ban Cơ yếu Chính phủ (thử)"),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def pem(*certs: x509.Certificate) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


def urls_for(base: str, name: str = "issuing-ca") -> AuthorityUrls:
    return AuthorityUrls(crl=f"{base}/pki/crl/{name}.crl", delta_crl=f"{base}/pki/crl/{name}-delta.crl",
                         ocsp=f"{base}/pki/ocsp", ca_issuers=f"{base}/pki/certs/{name}.cer")


@dataclass
class Hierarchy:
    now: dt.datetime
    root: x509.Certificate
    root_key: CertificateIssuerPrivateKeyTypes
    authority: IssuingAuthority
    ocsp: x509.Certificate
    ocsp_key: CertificateIssuerPrivateKeyTypes
    tsa: x509.Certificate
    tsa_key: CertificateIssuerPrivateKeyTypes
    files: dict[str, Path] = field(default_factory=dict)

    @property
    def issuing(self) -> x509.Certificate:
        return self.authority.certificate

    @property
    def issuing_key(self) -> CertificateIssuerPrivateKeyTypes:
        return self.authority.key

    def issue(self, profile_id: str, subject: SubjectData | None = None,
              key: ec.EllipticCurvePrivateKey | None = None, days: int | None = None
              ) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        key = key or ec.generate_private_key(ec.SECP256R1())
        profile = default_profiles().get(profile_id)
        validity = new_validity(profile, now=self.now, days=days,
                                issuer_not_after=self.issuing.not_valid_after_utc)
        cert = self.authority.issue(profile, subject or SUBJECTS[profile_id], key.public_key(),
                                    validity)
        return cert, key

    def write(self, directory: Path) -> dict[str, Path]:
        directory.mkdir(parents=True, exist_ok=True)
        files = {"root": directory / "root.pem", "issuing": directory / "issuing.pem",
                 "chain": directory / "chain.pem"}
        files["root"].write_bytes(pem(self.root))
        files["issuing"].write_bytes(pem(self.issuing))
        files["chain"].write_bytes(pem(self.issuing, self.root))
        self.files = files
        return files


def make_hierarchy(now: dt.datetime | None = None, *, base_url: str = BASE_URL,
                   issuing_key: CertificateIssuerPrivateKeyTypes | None = None) -> Hierarchy:
    now = (now or dt.datetime.now(dt.UTC)).replace(microsecond=0)
    start = now - dt.timedelta(hours=1)
    root_key = ec.generate_private_key(ec.SECP384R1())
    root = issue_certificate(CertificateSpec(
        subject=ca_name("vnegov Test Root CA G2"), not_before=start,
        not_after=start + dt.timedelta(days=365 * 20), key_usages=CA_KEY_USAGES, is_ca=True,
    ), root_key.public_key(), root_key)
    ikey = issuing_key or ec.generate_private_key(ec.SECP256R1())
    issuing = issue_certificate(CertificateSpec(
        subject=ca_name("vnegov Test Issuing CA G2"), not_before=start,
        not_after=start + dt.timedelta(days=365 * 10), key_usages=CA_KEY_USAGES, is_ca=True,
        path_length=0, crl_urls=(f"{base_url}/pki/crl/root-ca.crl",),
        ca_issuers_urls=(f"{base_url}/pki/certs/root-ca.cer",),
    ), ikey.public_key(), root_key, root)
    authority = IssuingAuthority("issuing-ca", issuing, ikey, urls_for(base_url),
                                 chain=(issuing,))
    h = Hierarchy(now, root, root_key, authority, None, None, None, None)  # type: ignore[arg-type]
    h.ocsp, h.ocsp_key = h.issue("ocsp-responder")
    h.tsa, h.tsa_key = h.issue("timestamping")
    return h
