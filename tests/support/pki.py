"""The test PKI, declared once and reused: a root and an issuing CA with the server certificate and
client certificates for sample callers, plus the odd ones attacks need (expired, foreign CA, no
agency code). Everything is issued with :mod:`signing.ca`.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from signing.ca import (
    CA_KEY_USAGES,
    CertificateSpec,
    KeyUsages,
    SubjectInfo,
    dump_encrypted_private_key,
    issue_certificate,
)

PASSPHRASE = b"test-passphrase-not-secret"


def name(cn: str, org: str = "vnegov tests") -> x509.Name:
    return x509.Name([
        x509.NameAttribute(NameOID.COUNTRY_NAME, "VN"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, org),
        x509.NameAttribute(NameOID.COMMON_NAME, cn),
    ])


def pem(*certs: x509.Certificate) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


def key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


@dataclass
class Issued:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey
    chain: list[x509.Certificate] = field(default_factory=list)

    @property
    def chain_pem(self) -> bytes:
        return pem(self.cert, *self.chain)

    @property
    def key_pem(self) -> bytes:
        return key_pem(self.key)


class Authority:
    """A CA that issues test certificates."""

    def __init__(self, cn: str, now: dt.datetime, parent: Authority | None = None,
                 org: str = "vnegov tests") -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.parent = parent
        spec = CertificateSpec(subject=name(cn, org), not_before=now - dt.timedelta(days=1),
                               not_after=now + dt.timedelta(days=3650),
                               key_usages=CA_KEY_USAGES, is_ca=True,
                               path_length=None if parent is None else 0)
        if parent is None:
            self.cert = issue_certificate(spec, self.key.public_key(), self.key)
        else:
            self.cert = issue_certificate(spec, self.key.public_key(), parent.key, parent.cert)
        self.now = now

    @property
    def chain(self) -> list[x509.Certificate]:
        out, ca = [], self
        while ca.parent is not None:
            out.append(ca.cert)
            ca = ca.parent
        return out

    def issue(self, cn: str, *, eku: x509.ObjectIdentifier = ExtendedKeyUsageOID.CLIENT_AUTH,
              agency_code: str | None = None, province_code: str | None = None,
              not_before: dt.datetime | None = None, not_after: dt.datetime | None = None,
              sans: tuple[x509.GeneralName, ...] = (), org: str = "vnegov tests") -> Issued:
        key = ec.generate_private_key(ec.SECP256R1())
        info = None
        if agency_code or province_code:
            info = SubjectInfo(agency_code=agency_code, province_code=province_code)
        cert = issue_certificate(CertificateSpec(
            subject=name(cn, org),
            not_before=not_before or self.now - dt.timedelta(hours=1),
            not_after=not_after or self.now + dt.timedelta(days=365),
            key_usages=KeyUsages(digital_signature=True), extended_key_usages=(eku,),
            subject_alt_names=sans, subject_info=info,
        ), key.public_key(), self.key, self.cert)
        chain = [self.cert] if self.parent is not None else []
        return Issued(cert, key, chain)


class TestPki:
    """Root -> issuing CA -> {server, sample callers, odd certificates}; plus a foreign root."""

    __test__ = False  # not a test class

    def __init__(self, now: dt.datetime | None = None) -> None:
        now = (now or dt.datetime.now(dt.UTC)).replace(microsecond=0)
        self.now = now
        self.root = Authority("vnegov Test Root CA", now)
        self.issuing = Authority("vnegov Test Issuing CA", now, self.root)
        self.server = self.issuing.issue(
            "localhost", eku=ExtendedKeyUsageOID.SERVER_AUTH,
            sans=(x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))))
        self.hcm = self.issuing.issue("dvc-hcm", agency_code="000.00.00.H29", province_code="79")
        self.hanoi = self.issuing.issue("dvc-hanoi", agency_code="000.00.00.H26",
                                        province_code="01")
        self.portal = self.issuing.issue("dichvucong-quocgia", agency_code="000.00.00.G22")
        self.expired = self.issuing.issue(
            "dvc-hcm-old", agency_code="000.00.00.H29", province_code="79",
            not_before=now - dt.timedelta(days=400), not_after=now - dt.timedelta(days=1))
        self.no_agency = self.issuing.issue("no-agency")
        self.foreign_root = Authority("Foreign Root CA", now, org="somewhere else")
        self.foreign = self.foreign_root.issue("dvc-hcm", agency_code="000.00.00.H29",
                                               province_code="79", org="somewhere else")

    def write(self, directory: Path) -> dict[str, Path]:
        """Write the files a server configuration names; returns their paths."""
        directory.mkdir(parents=True, exist_ok=True)
        files = {
            "root": directory / "root.pem",
            "issuing": directory / "issuing.pem",
            "server_chain": directory / "server.pem",
            "server_key": directory / "server.key.pem",
            "passphrase": directory / "passphrase",
        }
        files["root"].write_bytes(pem(self.root.cert))
        files["issuing"].write_bytes(pem(self.issuing.cert))
        files["server_chain"].write_bytes(self.server.chain_pem)
        files["server_key"].write_bytes(dump_encrypted_private_key(self.server.key, PASSPHRASE))
        files["passphrase"].write_bytes(PASSPHRASE)
        return files
