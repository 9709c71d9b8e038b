"""The machine-readable subject information extension carried by this CA's certificates.

No standard X.509 extension carries a Vietnamese agency e-ID code, a province code or a personal ID
number, so this CA defines one under its own OID arc::

    id-vnegov                 OBJECT IDENTIFIER ::= { 1 3 6 1 4 1 32473 704 }
    id-vnegov-ce              OBJECT IDENTIFIER ::= { id-vnegov 1 }
    id-vnegov-ce-subjectInfo  OBJECT IDENTIFIER ::= { id-vnegov-ce 1 }

    VnegovSubjectInfo ::= SEQUENCE {
        agencyCode    [0] IMPLICIT UTF8String      OPTIONAL, -- QCVN 102 or Decision 20/2020 form
        provinceCode  [1] IMPLICIT PrintableString OPTIONAL, -- 2 digits, Decision 19/2025
        communeCode   [2] IMPLICIT PrintableString OPTIONAL, -- 5 digits, Decision 19/2025
        personalId    [3] IMPLICIT PrintableString OPTIONAL  -- 12-digit personal ID number
    }

``1.3.6.1.4.1.32473`` is the private enterprise number IANA reserves for documentation (RFC 5612):
a production CA replaces ``OID_VNEGOV`` with an arc it has been assigned (an enterprise number, or an
arc of the Government Cipher Committee). Every arc stays below 2^32: many X.509 parsers, pkilint's
among them, refuse larger arcs, which rules out a UUID arc under ``2.25``.

The extension is never critical: software that does not know it still accepts the certificate. The
same values also appear in human-readable subject attributes (O, OU, ST); relying software reads the
extension, people read the subject. See ``docs/certificate-authority.md``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from asn1crypto import core
from cryptography import x509

from signing.errors import InvalidInput

__all__ = [
    "OID_VNEGOV",
    "OID_VNEGOV_SUBJECT_INFO",
    "SubjectInfo",
    "read_subject_info",
]

OID_VNEGOV = "1.3.6.1.4.1.32473.704"
OID_VNEGOV_SUBJECT_INFO = x509.ObjectIdentifier(OID_VNEGOV + ".1.1")


class _SubjectInfoAsn1(core.Sequence):  # type: ignore[misc]
    _fields = [
        ("agency_code", core.UTF8String, {"implicit": 0, "optional": True}),
        ("province_code", core.PrintableString, {"implicit": 1, "optional": True}),
        ("commune_code", core.PrintableString, {"implicit": 2, "optional": True}),
        ("personal_id", core.PrintableString, {"implicit": 3, "optional": True}),
    ]


_PROVINCE = re.compile(r"^\d{2}$")
_COMMUNE = re.compile(r"^\d{5}$")
_PERSONAL_ID = re.compile(r"^\d{12}$")
_AGENCY = re.compile(r"^[A-Z0-9.]{1,35}$")


@dataclass(frozen=True, slots=True)
class SubjectInfo:
    """Values of the ``VnegovSubjectInfo`` extension. Syntax is checked here; whether a province or
    agency code exists is the caller's business (it depends on the date and the reference data)."""

    agency_code: str | None = None
    province_code: str | None = None
    commune_code: str | None = None
    personal_id: str | None = None

    def __post_init__(self) -> None:
        for value, pattern, what in (
            (self.agency_code, _AGENCY, "agency code"),
            (self.province_code, _PROVINCE, "province code"),
            (self.commune_code, _COMMUNE, "commune code"),
            (self.personal_id, _PERSONAL_ID, "personal ID number"),
        ):
            if value is not None and not pattern.fullmatch(value):
                raise InvalidInput(f"malformed {what} in subject information",
                                   reason="INVALID_SUBJECT_INFO")

    def to_der(self) -> bytes:
        # Encoded directly (it is written for every certificate); read back with asn1crypto.
        from signing.ca import der

        parts = [der.tlv(0x80 | tag, value.encode("utf-8")) for tag, value in enumerate((
            self.agency_code, self.province_code, self.commune_code, self.personal_id))
            if value is not None]
        return der.sequence(*parts)

    def to_extension(self) -> x509.UnrecognizedExtension:
        return x509.UnrecognizedExtension(OID_VNEGOV_SUBJECT_INFO, self.to_der())

    @classmethod
    def from_der(cls, der: bytes) -> SubjectInfo:
        try:
            parsed = _SubjectInfoAsn1.load(der, strict=True)
            values = {
                name: parsed[name].native if parsed[name].native is not None else None
                for name in ("agency_code", "province_code", "commune_code", "personal_id")
            }
        except (ValueError, TypeError) as exc:
            raise InvalidInput("malformed subject information extension",
                               reason="INVALID_SUBJECT_INFO") from exc
        return cls(**values)


def read_subject_info(certificate: x509.Certificate) -> SubjectInfo | None:
    """The certificate's ``VnegovSubjectInfo``, or ``None`` when it has none."""
    try:
        ext = certificate.extensions.get_extension_for_oid(OID_VNEGOV_SUBJECT_INFO)
    except x509.ExtensionNotFound:
        return None
    value = ext.value
    if not isinstance(value, x509.UnrecognizedExtension):  # pragma: no cover - cryptography parses
        raise InvalidInput("unexpected subject information extension", reason="INVALID_SUBJECT_INFO")
    return SubjectInfo.from_der(value.value)
