"""Shared test helpers for the payments domain: a sample catalogue, organisations with test
certificates, and the XML signer (signing.sign.xmldsig)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import rsa

from payments.accounts import CollectionAccount
from payments.fees import FeeCatalogue, load_catalogue_yaml
from payments.receipts import Organisation
from signing.sign.xmldsig import XmlDsigSigner
from tests.support.pki import Issued, TestPki

ROOT = Path(__file__).resolve().parents[3]
SAMPLE_CATALOGUE = ROOT / "payments" / "fees" / "data" / "sample.yaml"
HCM = "000.00.00.H29"
WARD = "000.00.13.H29"
T0 = dt.datetime(2025, 8, 1, 2, 0, tzinfo=dt.UTC)  # 09:00 in Vietnam


def catalogue() -> FeeCatalogue:
    return load_catalogue_yaml(SAMPLE_CATALOGUE.read_bytes())


ORGANISATIONS = {
    HCM: Organisation(HCM, "Ủy ban nhân dân Thành phố Hồ Chí Minh", "0301234567",
                      "86 Lê Thánh Tôn, Phường Sài Gòn, TP. Hồ Chí Minh", "1051234"),
    WARD: Organisation(WARD, "Ủy ban nhân dân Phường Bến Thành", "0309876543",
                       "92 Nguyễn Trãi, Phường Bến Thành, TP. Hồ Chí Minh"),
}
ACCOUNTS = {
    HCM: CollectionAccount(HCM, "970415", "113000012345", "UBND TP Hồ Chí Minh"),
}


@dataclass
class Signers:
    pki: TestPki
    issued: dict[str, Issued]

    def signer_for(self, agency: str) -> XmlDsigSigner:
        i = self.issued[agency]
        return XmlDsigSigner(i.key, [i.cert, self.pki.issuing.cert])


def signers(pki: TestPki) -> Signers:
    return Signers(pki, {code: pki.issuing.issue(org.name, agency_code=code, org=org.name)
                         for code, org in ORGANISATIONS.items()})


def rsa_signer(pki: TestPki) -> XmlDsigSigner:
    """An RSA-2048 organisation key (as the benchmark uses)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "VN"),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Ủy ban nhân dân"),
                      x509.NameAttribute(NameOID.COMMON_NAME, "UBND TP Ho Chi Minh")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(pki.issuing.cert.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=365))
            .sign(pki.issuing.key, hashes.SHA256()))
    return XmlDsigSigner(key, [cert, pki.issuing.cert])
