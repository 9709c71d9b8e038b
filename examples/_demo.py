"""A throw-away PKI and images for the signing examples (a real deployment uses the CA's
certificates and the officials' own scanned signature and the agency's seal)."""

from __future__ import annotations

import datetime as dt
import io
import math
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from PIL import Image, ImageDraw

from signing.ca import (
    CA_KEY_USAGES,
    CertificateSpec,
    KeyAlgorithm,
    KeyUsages,
    SubjectInfo,
    generate_private_key,
    issue_certificate,
)

FONT = Path("/usr/share/fonts/truetype/liberation2/LiberationSerif-Regular.ttf")


def _name(**attrs: str) -> x509.Name:
    oids = {"C": NameOID.COUNTRY_NAME, "O": NameOID.ORGANIZATION_NAME,
            "T": NameOID.TITLE, "CN": NameOID.COMMON_NAME}
    return x509.Name([x509.NameAttribute(oids[k], v) for k, v in attrs.items()])


@dataclass
class Party:
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
    chain: list[x509.Certificate]


@dataclass
class DemoPki:
    root: x509.Certificate
    official: Party
    agency: Party

    def write_root(self, path: Path) -> None:
        path.write_bytes(self.root.public_bytes(serialization.Encoding.PEM))


def demo_pki() -> DemoPki:
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    root_key = generate_private_key(KeyAlgorithm.EC_P256)
    root = issue_certificate(CertificateSpec(
        subject=_name(C="VN", O="Demo", CN="Demo Root CA"), not_before=now - dt.timedelta(days=1),
        not_after=now + dt.timedelta(days=3650), key_usages=CA_KEY_USAGES, is_ca=True),
        root_key.public_key(), root_key)

    def leaf(subject: x509.Name, algorithm: KeyAlgorithm) -> Party:
        key = generate_private_key(algorithm)
        cert = issue_certificate(CertificateSpec(
            subject=subject, not_before=now - dt.timedelta(hours=1),
            not_after=now + dt.timedelta(days=365),
            key_usages=KeyUsages(digital_signature=True, content_commitment=True),
            subject_info=SubjectInfo(agency_code="000.00.00.H29", province_code="79")),
            key.public_key(), root_key, root)
        return Party(key, [cert])

    official = leaf(_name(C="VN", O="UBND Thành phố Hồ Chí Minh", T="Chủ tịch",
                          CN="Nguyễn Văn An"), KeyAlgorithm.RSA_3072)
    agency = leaf(_name(C="VN", O="UBND Thành phố Hồ Chí Minh",
                        CN="Ủy ban nhân dân Thành phố Hồ Chí Minh"), KeyAlgorithm.EC_P256)
    return DemoPki(root, official, agency)


def signature_png() -> bytes:
    image = Image.new("RGBA", (600, 240), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    points = [(20 + t * 2.8, 120 + math.sin(t / 9) * 80 * math.cos(t / 31)) for t in range(201)]
    draw.line(points, fill=(20, 40, 200, 255), width=12, joint="curve")
    return _png(image)


def seal_png() -> bytes:
    image = Image.new("RGBA", (500, 500), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    red = (220, 20, 20, 255)
    draw.ellipse((8, 8, 492, 492), outline=red, width=22)
    draw.ellipse((70, 70, 430, 430), outline=red, width=10)
    star = [(250 + 83 * math.cos(math.pi / 2 + k * 4 * math.pi / 5),
             250 - 83 * math.sin(math.pi / 2 + k * 4 * math.pi / 5)) for k in range(5)]
    draw.polygon(star, fill=red)
    return _png(image)


def _png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()
