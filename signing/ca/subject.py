"""Subscriber data and how a profile turns it into a certificate's subject.

:class:`SubjectData` holds what a request says about the subscriber. :func:`build_subject` checks it
against the profile (required fields present, nothing the profile does not allow) and lays it out:

=================  ===========================================================================
field              where it goes
=================  ===========================================================================
full_name          CN (individual)
agency_name        CN (organisation)
system_name        CN (device, service, responder)
title              title (2.5.4.12)
unit               OU
parent_body        O
locality           L
province_code      ST = the province's name (Decision 19/2025) and ``subjectInfo.provinceCode``
commune_code       ``subjectInfo.communeCode``
agency_code        ``subjectInfo.agencyCode``
personal_id        ``subjectInfo.personalId``
email              subjectAltName rfc822Name
dns_names          subjectAltName dNSName
=================  ===========================================================================

C is always ``VN``. The machine-readable codes live in the ``VnegovSubjectInfo`` extension
(:mod:`signing.ca.extensions`); people read the names.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.x509.oid import NameOID

from signing.ca.extensions import SubjectInfo
from signing.ca.profiles import CertificateProfile, SubjectField
from signing.errors import InvalidInput
from vnid.agency import agency_code_form
from vnid.errors import VnidError
from vnid.units import PROVINCES

__all__ = [
    "SubjectData",
    "SubjectLayout",
    "SubjectNotAllowed",
    "build_subject",
    "subject_data_from_certificate",
]


class SubjectNotAllowed(InvalidInput):
    """The subject fields do not fit the profile (missing, not allowed, or malformed)."""

    reason = "SUBJECT_NOT_ALLOWED"


_MAX_LEN = {  # RFC 5280 upper bounds (ub-common-name 64, ub-organization-name 64, ...)
    SubjectField.FULL_NAME: 64, SubjectField.AGENCY_NAME: 64, SubjectField.SYSTEM_NAME: 64,
    SubjectField.TITLE: 64, SubjectField.UNIT: 64, SubjectField.PARENT_BODY: 64,
    SubjectField.LOCALITY: 128,
}
_EMAIL = re.compile(r"^[A-Za-z0-9._%+\-]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9\-]{0,62}[A-Za-z0-9])?"
                    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9\-]{0,62}[A-Za-z0-9])?)+$")
_DNS = re.compile(r"^(?=.{1,253}$)(?:[a-z0-9](?:[a-z0-9\-]{0,61}[a-z0-9])?\.)*"
                  r"[a-z0-9](?:[a-z0-9\-]{0,61}[a-z0-9])?$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True, slots=True)
class SubjectData:
    """What a request says about the subscriber. Empty strings mean "not given"."""

    full_name: str = ""
    title: str = ""
    unit: str = ""
    parent_body: str = ""
    agency_name: str = ""
    system_name: str = ""
    province_code: str = ""
    commune_code: str = ""
    locality: str = ""
    email: str = ""
    personal_id: str = ""
    agency_code: str = ""
    dns_names: tuple[str, ...] = ()

    def given(self) -> frozenset[SubjectField]:
        return frozenset(f for f in SubjectField if getattr(self, f.value))

    def replace(self, **changes: Any) -> SubjectData:
        return dataclasses.replace(self, **changes)

    def as_dict(self) -> dict[str, Any]:
        """The non-empty fields (for storage and audit-free display)."""
        out: dict[str, Any] = {}
        for f in SubjectField:
            value = getattr(self, f.value)
            if value:
                out[f.value] = list(value) if isinstance(value, tuple) else value
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SubjectData:
        unknown = sorted(set(data) - {f.value for f in SubjectField})
        if unknown:
            raise SubjectNotAllowed(f"unknown subject field {unknown[0]!r}",
                                    metadata={"field": unknown[0]})
        values = dict(data)
        if "dns_names" in values:
            values["dns_names"] = tuple(values["dns_names"])
        return cls(**values)

    @property
    def common_name(self) -> str:
        return self.full_name or self.agency_name or self.system_name


def _check_text(name: SubjectField, value: str) -> None:
    limit = _MAX_LEN.get(name)
    if value != value.strip() or _CONTROL.search(value):
        raise SubjectNotAllowed(f"{name.value} has leading/trailing spaces or control characters",
                                metadata={"field": name.value})
    if limit is not None and len(value) > limit:
        raise SubjectNotAllowed(f"{name.value} is longer than {limit} characters",
                                metadata={"field": name.value})


def _validate(data: SubjectData) -> None:
    for f in (SubjectField.FULL_NAME, SubjectField.AGENCY_NAME, SubjectField.SYSTEM_NAME,
              SubjectField.TITLE, SubjectField.UNIT, SubjectField.PARENT_BODY,
              SubjectField.LOCALITY):
        value = getattr(data, f.value)
        if value:
            _check_text(f, value)
    if data.province_code and data.province_code not in PROVINCES:
        raise SubjectNotAllowed("province_code must be one of the 34 codes of Decision 19/2025",
                                metadata={"field": "province_code"})
    if data.agency_code:
        try:
            agency_code_form(data.agency_code)
        except VnidError:
            raise SubjectNotAllowed("agency_code is not a QCVN 102 or Decision 20/2020 code",
                                    metadata={"field": "agency_code"}) from None
    if data.email and not _EMAIL.fullmatch(data.email):
        raise SubjectNotAllowed("email is not an ASCII e-mail address",
                                metadata={"field": "email"})
    for host in data.dns_names:
        if not _DNS.fullmatch(host):
            raise SubjectNotAllowed("dns_names must be lower-case ASCII host names",
                                    metadata={"field": "dns_names"})
    try:
        _info(data)
    except InvalidInput as exc:
        raise SubjectNotAllowed(exc.message, metadata={"field": "subject"}) from None


def _info(data: SubjectData) -> SubjectInfo | None:
    if not (data.agency_code or data.province_code or data.commune_code or data.personal_id):
        return None
    return SubjectInfo(agency_code=data.agency_code or None,
                       province_code=data.province_code or None,
                       commune_code=data.commune_code or None,
                       personal_id=data.personal_id or None)


# The subject name, the subject-information extension, the subjectAltNames.
SubjectLayout = tuple[x509.Name, SubjectInfo | None, list[x509.GeneralName]]


def build_subject(profile: CertificateProfile, data: SubjectData) -> SubjectLayout:
    """The subject name, subject-information extension and subjectAltNames for ``data``.

    Raises :class:`SubjectNotAllowed` naming the first field that is missing, not allowed by the
    profile, or malformed.
    """
    given = data.given()
    missing = sorted(f.value for f in profile.required - given)
    if missing:
        raise SubjectNotAllowed(f"profile {profile.id} requires {', '.join(missing)}",
                                metadata={"field": missing[0], "profile": profile.id})
    extra = sorted(f.value for f in given - profile.allowed)
    if extra:
        raise SubjectNotAllowed(f"profile {profile.id} does not allow {', '.join(extra)}",
                                metadata={"field": extra[0], "profile": profile.id})
    _validate(data)
    attrs = [x509.NameAttribute(NameOID.COUNTRY_NAME, "VN")]
    if data.province_code:
        attrs.append(x509.NameAttribute(NameOID.STATE_OR_PROVINCE_NAME,
                                        PROVINCES[data.province_code].name))
    if data.locality:
        attrs.append(x509.NameAttribute(NameOID.LOCALITY_NAME, data.locality))
    if data.parent_body:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, data.parent_body))
    if data.unit:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, data.unit))
    if data.title:
        attrs.append(x509.NameAttribute(NameOID.TITLE, data.title))
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, data.common_name))
    sans: list[x509.GeneralName] = []
    if data.email:
        sans.append(x509.RFC822Name(data.email))
    sans.extend(x509.DNSName(h) for h in data.dns_names)
    return x509.Name(attrs), _info(data), sans


def subject_data_from_certificate(certificate: x509.Certificate,
                                  profile: CertificateProfile) -> SubjectData:
    """Read back the subscriber data of a certificate issued under ``profile`` (for importing
    certificates issued elsewhere, such as the development PKI's). Fields the profile does not
    allow are dropped."""
    from signing.ca.extensions import read_subject_info

    def first(oid: x509.ObjectIdentifier) -> str:
        values = certificate.subject.get_attributes_for_oid(oid)
        return str(values[0].value) if values else ""

    info = read_subject_info(certificate) or SubjectInfo()
    emails: list[str] = []
    hosts: list[str] = []
    try:
        san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        emails = san.get_values_for_type(x509.RFC822Name)
        hosts = san.get_values_for_type(x509.DNSName)
    except x509.ExtensionNotFound:
        pass
    cn = first(NameOID.COMMON_NAME)
    cn_field = next(f for f in (SubjectField.FULL_NAME, SubjectField.AGENCY_NAME,
                                SubjectField.SYSTEM_NAME) if f in profile.required)
    data = SubjectData(
        title=first(NameOID.TITLE), unit=first(NameOID.ORGANIZATIONAL_UNIT_NAME),
        parent_body=first(NameOID.ORGANIZATION_NAME), locality=first(NameOID.LOCALITY_NAME),
        province_code=info.province_code or "", commune_code=info.commune_code or "",
        personal_id=info.personal_id or "", agency_code=info.agency_code or "",
        email=emails[0] if emails else "", dns_names=tuple(hosts),
    ).replace(**{cn_field.value: cn})
    allowed = profile.allowed
    return data.replace(**{f.value: ((), "")[f is not SubjectField.DNS_NAMES]
                           for f in SubjectField if f not in allowed})
