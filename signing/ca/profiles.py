"""Versioned end-entity certificate profiles, read from data (``profiles.yaml``).

A :class:`CertificateProfile` says which subject fields a certificate may and must carry, its key
usage and extended key usage, which public keys it accepts, how long it may be valid and how it may
be renewed. The profiles shipped with the package are in ``signing/ca/profiles.yaml``; a deployment
may load its own with :func:`load_profiles` (the same format). Unknown keys are errors.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from functools import cache
from importlib import resources
from typing import Any

import yaml
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID

from signing.ca.builder import KeyUsages
from signing.ca.keys import WeakKey, check_public_key
from signing.ca.oids import EKU_DOCUMENT_SIGNING, POLICY_OIDS
from signing.errors import InvalidInput, NotFound

__all__ = [
    "CertificateProfile",
    "InvalidProfile",
    "ProfileNotFound",
    "ProfileRegistry",
    "RenewalRules",
    "SubjectField",
    "SubscriberKind",
    "default_profiles",
    "load_profiles",
]


class InvalidProfile(InvalidInput):
    """A profile definition is malformed (unknown key, unknown field, impossible limits)."""

    reason = "INVALID_PROFILE"


class ProfileNotFound(NotFound):
    reason = "PROFILE_NOT_FOUND"


class SubscriberKind(StrEnum):
    """The three kinds of subscriber of Decree 68/2024."""

    INDIVIDUAL = "individual"
    ORGANISATION = "organisation"
    DEVICE = "device"


class SubjectField(StrEnum):
    """A field of a subscriber's subject a profile can require or allow."""
    FULL_NAME = "full_name"
    TITLE = "title"
    UNIT = "unit"
    PARENT_BODY = "parent_body"
    AGENCY_NAME = "agency_name"
    SYSTEM_NAME = "system_name"
    PROVINCE_CODE = "province_code"
    COMMUNE_CODE = "commune_code"
    LOCALITY = "locality"
    EMAIL = "email"
    PERSONAL_ID = "personal_id"
    AGENCY_CODE = "agency_code"
    DNS_NAMES = "dns_names"


_KEY_USAGE_NAMES = {f.name for f in dataclasses.fields(KeyUsages)}
_EKU = {
    "document_signing": EKU_DOCUMENT_SIGNING,
    "email_protection": ExtendedKeyUsageOID.EMAIL_PROTECTION,
    "client_auth": ExtendedKeyUsageOID.CLIENT_AUTH,
    "server_auth": ExtendedKeyUsageOID.SERVER_AUTH,
    "ocsp_signing": ExtendedKeyUsageOID.OCSP_SIGNING,
    "time_stamping": ExtendedKeyUsageOID.TIME_STAMPING,
    "code_signing": ExtendedKeyUsageOID.CODE_SIGNING,
}
_KEY_TYPES = {"rsa", "ec", "ed25519"}
_DAY = dt.timedelta(days=1)


@dataclass(frozen=True, slots=True)
class RenewalRules:
    """How often and when a certificate may be renewed (same key, later notAfter).

    ``min_remaining_days``: a renewal must be requested while at least this many days of validity
    remain; ``max_extension_days``: how far beyond the old notAfter the new one may reach.
    """

    max_renewals: int = 1
    min_remaining_days: int = 60
    max_extension_days: int = 1095

    def __post_init__(self) -> None:
        if self.max_renewals < 0 or self.min_remaining_days < 0 or self.max_extension_days < 0:
            raise InvalidProfile("renewal limits must not be negative")
        if self.max_extension_days > 1096:
            raise InvalidProfile("a renewal may extend a certificate by at most 3 years")

    @classmethod
    def from_config(cls, data: Mapping[str, Any]) -> RenewalRules:
        rules: RenewalRules = _build(cls, data, "renewal")
        return rules


@dataclass(frozen=True, slots=True)
class CertificateProfile:
    """A certificate profile: the kind of subscriber, the subject fields required and allowed, the key usages,
    validity and renewal limits."""
    id: str
    version: int
    kind: SubscriberKind
    description: str
    required: frozenset[SubjectField]
    optional: frozenset[SubjectField]
    key_usages: KeyUsages
    extended_key_usages: tuple[x509.ObjectIdentifier, ...]
    extended_key_usage_critical: bool
    ocsp_nocheck: bool
    key_types: frozenset[str]
    default_validity_days: int
    max_validity_days: int
    renewal: RenewalRules
    policy_oid: x509.ObjectIdentifier

    @property
    def key(self) -> str:
        """``id@version``, as certificates and requests record it."""
        return f"{self.id}@{self.version}"

    @property
    def allowed(self) -> frozenset[SubjectField]:
        return self.required | self.optional

    @property
    def max_validity(self) -> dt.timedelta:
        return self.max_validity_days * _DAY

    def check_public_key(self, key: CertificatePublicKeyTypes) -> None:
        """The global key policy (:func:`signing.ca.keys.check_public_key`) plus this profile's
        list of key types."""
        check_public_key(key)
        kind = ("rsa" if isinstance(key, rsa.RSAPublicKey)
                else "ec" if isinstance(key, ec.EllipticCurvePublicKey) else "ed25519")
        if kind not in self.key_types:
            raise WeakKey(f"profile {self.id} does not accept {kind.upper()} keys "
                          f"(accepted: {', '.join(sorted(self.key_types))})",
                          metadata={"profile": self.id, "key_type": kind})

    def with_renewal(self, renewal: RenewalRules) -> CertificateProfile:
        return dataclasses.replace(self, renewal=renewal)


def _build(cls: Any, data: Mapping[str, Any], where: str) -> Any:
    if not isinstance(data, Mapping):
        raise InvalidProfile(f"{where} must be a mapping")
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise InvalidProfile(f"unknown key '{unknown[0]}' in {where}")
    try:
        return cls(**data)
    except TypeError as exc:
        raise InvalidProfile(f"{where}: {exc}") from None


_PROFILE_KEYS = {"id", "version", "kind", "description", "subject", "key_usage",
                 "extended_key_usage", "extended_key_usage_critical", "ocsp_nocheck", "key_types",
                 "validity_days", "renewal", "policy"}


def _fields(values: Any, where: str) -> frozenset[SubjectField]:
    if not isinstance(values, list):
        raise InvalidProfile(f"{where} must be a list")
    try:
        return frozenset(SubjectField(v) for v in values)
    except ValueError:
        bad = next(v for v in values if v not in {f.value for f in SubjectField})
        raise InvalidProfile(f"unknown subject field '{bad}' in {where}") from None


def _profile(data: Mapping[str, Any]) -> CertificateProfile:
    if not isinstance(data, Mapping):
        raise InvalidProfile("each profile must be a mapping")
    pid = str(data.get("id", ""))
    where = f"profile {pid or '?'}"
    unknown = sorted(set(data) - _PROFILE_KEYS)
    if unknown:
        raise InvalidProfile(f"unknown key '{unknown[0]}' in {where}")
    for key in ("id", "version", "kind", "subject", "key_usage", "validity_days", "policy"):
        if key not in data:
            raise InvalidProfile(f"{where} lacks '{key}'")
    subject = data["subject"]
    if not isinstance(subject, Mapping) or set(subject) - {"required", "optional"}:
        raise InvalidProfile(f"{where}: subject has only 'required' and 'optional' lists")
    required = _fields(subject.get("required", []), f"{where} subject.required")
    optional = _fields(subject.get("optional", []), f"{where} subject.optional")
    usages = data["key_usage"]
    if not isinstance(usages, list) or set(usages) - _KEY_USAGE_NAMES:
        raise InvalidProfile(f"{where}: key_usage must list names from {sorted(_KEY_USAGE_NAMES)}")
    if {"key_cert_sign", "crl_sign"} & set(usages):
        raise InvalidProfile(f"{where}: an end-entity profile cannot sign certificates or CRLs")
    ekus = data.get("extended_key_usage", [])
    if not isinstance(ekus, list) or set(ekus) - set(_EKU):
        raise InvalidProfile(f"{where}: extended_key_usage must list names from {sorted(_EKU)}")
    key_types = frozenset(data.get("key_types", ["rsa", "ec"]))
    if not key_types or key_types - _KEY_TYPES:
        raise InvalidProfile(f"{where}: key_types must list names from {sorted(_KEY_TYPES)}")
    validity = data["validity_days"]
    if not isinstance(validity, Mapping) or set(validity) != {"default", "max"}:
        raise InvalidProfile(f"{where}: validity_days needs exactly 'default' and 'max'")
    default_days, max_days = int(validity["default"]), int(validity["max"])
    if not 0 < default_days <= max_days <= 1827:
        raise InvalidProfile(f"{where}: validity must be positive and at most 5 years")
    try:
        kind = SubscriberKind(data["kind"])
    except ValueError:
        raise InvalidProfile(f"{where}: unknown kind {data['kind']!r}") from None
    policy = data["policy"]
    if policy not in POLICY_OIDS:
        raise InvalidProfile(f"{where}: unknown policy {policy!r}")
    version = data["version"]
    if not isinstance(version, int) or version < 1:
        raise InvalidProfile(f"{where}: version must be a positive integer")
    if not (SubjectField.FULL_NAME in required or SubjectField.AGENCY_NAME in required
            or SubjectField.SYSTEM_NAME in required):
        raise InvalidProfile(f"{where}: one of full_name, agency_name, system_name must be "
                             "required (it becomes the common name)")
    return CertificateProfile(
        id=pid, version=version, kind=kind, description=str(data.get("description", "")),
        required=required, optional=optional - required,
        key_usages=KeyUsages(**{u: True for u in usages}),
        extended_key_usages=tuple(_EKU[e] for e in ekus),
        extended_key_usage_critical=bool(data.get("extended_key_usage_critical", False)),
        ocsp_nocheck=bool(data.get("ocsp_nocheck", False)),
        key_types=key_types, default_validity_days=default_days, max_validity_days=max_days,
        renewal=RenewalRules.from_config(data.get("renewal", {})),
        policy_oid=POLICY_OIDS[policy],
    )


class ProfileRegistry:
    """Every version of every profile; ``get(id)`` is the newest version."""

    def __init__(self, profiles: Iterable[CertificateProfile]) -> None:
        self._by_key: dict[tuple[str, int], CertificateProfile] = {}
        for profile in profiles:
            k = (profile.id, profile.version)
            if k in self._by_key:
                raise InvalidProfile(f"profile {profile.key} is defined twice")
            self._by_key[k] = profile
        self._latest = {}
        for (pid, _), profile in sorted(self._by_key.items()):
            self._latest[pid] = profile

    def get(self, profile_id: str, version: int | None = None) -> CertificateProfile:
        if version is None:
            found = self._latest.get(profile_id)
        else:
            found = self._by_key.get((profile_id, version))
        if found is None:
            raise ProfileNotFound(f"no certificate profile {profile_id!r}"
                                  + (f" version {version}" if version is not None else ""),
                                  metadata={"profile": profile_id})
        return found

    def by_key(self, key: str) -> CertificateProfile:
        """The profile recorded as ``id@version``."""
        pid, _, version = key.partition("@")
        return self.get(pid, int(version) if version.isdigit() else None)

    def latest(self) -> list[CertificateProfile]:
        return list(self._latest.values())

    def all(self) -> list[CertificateProfile]:
        return [self._by_key[k] for k in sorted(self._by_key)]

    def with_renewal(self, overrides: Mapping[str, RenewalRules]) -> ProfileRegistry:
        """A copy whose profiles named in ``overrides`` (``"*"`` for all) use other rules."""
        out = []
        for profile in self.all():
            rules = overrides.get(profile.id) or overrides.get("*")
            out.append(profile.with_renewal(rules) if rules is not None
                       and profile.renewal.max_renewals > 0 else profile)
        return ProfileRegistry(out)


def load_profiles(data: bytes) -> ProfileRegistry:
    """Profiles from YAML text in the format of ``signing/ca/profiles.yaml``."""
    try:
        doc = yaml.safe_load(data)
    except yaml.YAMLError as exc:
        raise InvalidProfile(f"profiles are not valid YAML: {exc}") from None
    if not isinstance(doc, Mapping) or set(doc) != {"profiles"} or not isinstance(
            doc["profiles"], list):
        raise InvalidProfile("the profiles document must be a mapping with one 'profiles' list")
    return ProfileRegistry(_profile(p) for p in doc["profiles"])


@cache
def default_profiles() -> ProfileRegistry:
    """The profiles shipped with the package."""
    return load_profiles(resources.files("signing.ca").joinpath("profiles.yaml").read_bytes())
