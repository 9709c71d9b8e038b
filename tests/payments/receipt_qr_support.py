"""Seals for receipt QR tests: a PKI frozen at the receipts' issue time, EC and RSA seals that name
their body (agency code extension, ``UID=MST:`` tax code), a second body's seal, a foreign CA."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from payments.receipts.qr_jws import QrSeal
from signing.ca import CertificateSpec, KeyUsages, SubjectInfo, issue_certificate
from tests.payments.support import HCM, ORGANISATIONS, T0
from tests.support.pki import Authority

__all__ = ["QrPki", "printed_receipt_photo", "seal_subject"]


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
             issuer: Authority | None = None, not_after: dt.datetime | None = None,
             key: Any = None) -> QrSeal:
        """A seal for ``agency``; ``tax_code`` "" means the organisation's own, None none;
        ``key`` an existing private key (a PKCS#11 token key), else a new one of ``kind``."""
        org = ORGANISATIONS[agency]
        tax = org.tax_code if tax_code == "" else tax_code
        if key is None:
            key = ec.generate_private_key(ec.SECP256R1()) if kind == "ec" \
                else rsa.generate_private_key(public_exponent=65537, key_size=2048)
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



def printed_receipt_photo(pdf: bytes, directory: Path, *, angle: float = 4.0,
                          scale: float = 0.55) -> Path:
    """A photo-like JPEG of the printed receipt: the page rendered at 300 dpi as a printer
    would, then scaled down, rotated a little on a grey desk, blurred, unevenly lit and
    compressed, as a phone camera delivers it."""
    import subprocess

    from PIL import Image, ImageFilter

    (directory / "receipt.pdf").write_bytes(pdf)
    subprocess.run(["pdftoppm", "-r", "300", "-png", "-singlefile", str(directory / "receipt.pdf"),
                    str(directory / "printed")], check=True, timeout=60)
    page = Image.open(directory / "printed.png").convert("RGB")
    page = page.resize((int(page.width * scale), int(page.height * scale)), Image.BILINEAR)
    desk = Image.new("RGB", (page.width + 240, page.height + 240), (118, 112, 104))
    desk.paste(page, (120, 120))
    photo = desk.rotate(angle, resample=Image.BICUBIC, expand=True, fillcolor=(118, 112, 104))
    photo = photo.filter(ImageFilter.GaussianBlur(0.8))
    light = Image.linear_gradient("L").resize(photo.size).point(lambda v: 150 + v * 105 // 255)
    photo = Image.composite(photo, Image.new("RGB", photo.size, (40, 36, 30)), light)
    path = directory / "photo.jpg"
    photo.save(path, quality=72)
    return path
