"""Bulk re-issuance after a reorganisation of administrative units.

After 63 provinces became 34 and the district level was abolished (Resolution 202/2025/QH15, in
force 1 July 2025), units got new codes, names and parent bodies. A :class:`Reorganisation` maps
old units to new ones; :func:`plan` lists, for a set of certificates, what must change:

* ``reissue``: the certificate names the old unit (its agency code is an old code): a new
  certificate with the new code and names is issued for the same key and the same notAfter, and
  only then is the old one revoked (affiliationChanged);
* ``reassign``: only the managing body changes (it is not written in the certificate): the record
  moves to the new managing body and the certificate stays.

Which subject field receives a unit's new name depends on the profile kind: an organisation's
``agency_name``, an individual's ``unit``, a device's ``unit`` when its profile allows one.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import yaml

from signing.ca.profiles import CertificateProfile, SubjectField, SubscriberKind
from signing.ca.subject import SubjectData
from signing.errors import InvalidInput
from vnid.agency import agency_code_form
from vnid.errors import VnidError
from vnid.units import PROVINCES

__all__ = [
    "CertificateFacts",
    "InvalidReorganisation",
    "PlanAction",
    "PlannedChange",
    "Reorganisation",
    "UnitChange",
    "load_reorganisation",
    "plan",
]


class InvalidReorganisation(InvalidInput):
    reason = "INVALID_REORGANISATION"


@dataclass(frozen=True, slots=True)
class UnitChange:
    """One old unit and what it became. Empty values mean "unchanged"."""

    old_agency_code: str
    new_agency_code: str
    new_name: str = ""
    new_parent_body: str = ""
    new_province_code: str = ""
    new_commune_code: str = ""

    def __post_init__(self) -> None:
        for code in (self.old_agency_code, self.new_agency_code):
            try:
                agency_code_form(code)
            except VnidError:
                raise InvalidReorganisation(f"{code!r} is not an agency code") from None
        if self.new_province_code and self.new_province_code not in PROVINCES:
            raise InvalidReorganisation(f"{self.new_province_code!r} is not a province code of "
                                        "Decision 19/2025")
        if self.new_commune_code and not (len(self.new_commune_code) == 5
                                          and self.new_commune_code.isdigit()):
            raise InvalidReorganisation("commune codes have 5 digits")
        for text in (self.new_name, self.new_parent_body):
            if len(text) > 64:
                raise InvalidReorganisation("names are at most 64 characters")


@dataclass(frozen=True, slots=True)
class Reorganisation:
    """An administrative reorganisation (merged or renamed units, by a legal act in force from a date) whose
    certificates are re-issued in bulk."""
    reference: str  # the legal act, e.g. "Nghị quyết 202/2025/QH15"
    effective_date: dt.date
    changes: tuple[UnitChange, ...]

    def __post_init__(self) -> None:
        if not self.changes:
            raise InvalidReorganisation("a reorganisation maps at least one unit")
        olds = [c.old_agency_code for c in self.changes]
        if len(set(olds)) != len(olds):
            raise InvalidReorganisation("an old unit is mapped twice")
        if set(olds) & {c.new_agency_code for c in self.changes if c.new_agency_code
                        != c.old_agency_code}:
            raise InvalidReorganisation("a new code is also an old code: chains of mappings "
                                        "must be resolved into one step")

    def by_old_code(self) -> dict[str, UnitChange]:
        return {c.old_agency_code: c for c in self.changes}

    def to_dict(self) -> dict[str, Any]:
        return {
            "reference": self.reference,
            "effective_date": self.effective_date.isoformat(),
            "changes": [{k: v for k, v in (
                ("old_agency_code", c.old_agency_code), ("new_agency_code", c.new_agency_code),
                ("new_name", c.new_name), ("new_parent_body", c.new_parent_body),
                ("new_province_code", c.new_province_code),
                ("new_commune_code", c.new_commune_code)) if v} for c in self.changes],
        }

    @classmethod
    def from_config(cls, data: Mapping[str, Any]) -> Reorganisation:
        if not isinstance(data, Mapping):
            raise InvalidReorganisation("a reorganisation is a mapping")
        unknown = sorted(set(data) - {"reference", "effective_date", "changes"})
        if unknown:
            raise InvalidReorganisation(f"unknown key '{unknown[0]}'")
        effective = data.get("effective_date")
        if isinstance(effective, str):
            try:
                effective = dt.date.fromisoformat(effective)
            except ValueError:
                raise InvalidReorganisation("effective_date must be YYYY-MM-DD") from None
        if not isinstance(effective, dt.date):
            raise InvalidReorganisation("effective_date is required (YYYY-MM-DD)")
        changes = []
        fields = set(UnitChange.__dataclass_fields__)
        for i, item in enumerate(data.get("changes") or []):
            if not isinstance(item, Mapping):
                raise InvalidReorganisation(f"changes[{i}] must be a mapping")
            bad = sorted(set(item) - fields)
            if bad:
                raise InvalidReorganisation(f"unknown key '{bad[0]}' in changes[{i}]")
            try:
                changes.append(UnitChange(**{k: str(v) for k, v in item.items()}))
            except TypeError as exc:
                raise InvalidReorganisation(f"changes[{i}]: {exc}") from None
        return cls(str(data.get("reference", "")), effective, tuple(changes))

    def digest(self) -> str:
        """A stable identifier of the mapping (running the same mapping twice is one run)."""
        text = json.dumps(self.to_dict(), sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(text.encode()).hexdigest()


def load_reorganisation(data: bytes) -> Reorganisation:
    """A reorganisation from YAML or JSON text (``reference``, ``effective_date``, ``changes``)."""
    try:
        doc = yaml.safe_load(data)
    except yaml.YAMLError as exc:
        raise InvalidReorganisation(f"the mapping is not valid YAML or JSON: {exc}") from None
    return Reorganisation.from_config(doc)


class PlanAction(StrEnum):
    """What a reorganisation does to a certificate: re-issue it with the new subject, or reassign its managing
    body."""
    REISSUE = "reissue"
    REASSIGN = "reassign"


@dataclass(frozen=True, slots=True)
class CertificateFacts:
    """What planning needs to know about one certificate."""

    certificate_id: int
    profile: CertificateProfile
    subject: SubjectData
    managing_body: str
    usable: bool  # neither revoked nor on hold nor expired at the effective date
    # Renewed (a renewal leaves the old certificate valid): its renewal is planned instead, and
    # retiring that renewal retires this one with it.
    replaced: bool = False
    # On hold and unexpired: it can be released back to validity, so it is planned too (its
    # replacement is issued on hold).
    on_hold: bool = False


@dataclass(frozen=True, slots=True)
class PlannedChange:
    """One certificate's change in a reorganisation plan."""
    certificate_id: int
    action: PlanAction
    old_subject: SubjectData
    new_subject: SubjectData
    old_managing_body: str
    new_managing_body: str
    on_hold: bool = False  # the certificate is on hold: a re-issue is held in its turn

    def changed_fields(self) -> list[str]:
        out = [f.value for f in SubjectField
               if getattr(self.old_subject, f.value) != getattr(self.new_subject, f.value)]
        if self.old_managing_body != self.new_managing_body:
            out.append("managing_body")
        return out


def _name_field(profile: CertificateProfile) -> SubjectField | None:
    if profile.kind is SubscriberKind.ORGANISATION:
        return SubjectField.AGENCY_NAME
    if SubjectField.UNIT in profile.allowed:
        return SubjectField.UNIT
    return None


def _new_subject(profile: CertificateProfile, subject: SubjectData,
                 change: UnitChange) -> SubjectData:
    values: dict[str, Any] = {"agency_code": change.new_agency_code}
    name_field = _name_field(profile)
    if change.new_name and name_field is not None:
        values[name_field.value] = change.new_name
    if change.new_parent_body and SubjectField.PARENT_BODY in profile.allowed:
        values["parent_body"] = change.new_parent_body
    if change.new_province_code and SubjectField.PROVINCE_CODE in profile.allowed:
        values["province_code"] = change.new_province_code
    if SubjectField.COMMUNE_CODE in profile.allowed:
        if change.new_commune_code:
            values["commune_code"] = change.new_commune_code
        elif subject.commune_code and change.new_province_code:
            values["commune_code"] = ""  # the old commune code means nothing in the new province
    return subject.replace(**values)


def plan(reorganisation: Reorganisation, certificates: Iterable[CertificateFacts]
         ) -> list[PlannedChange]:
    """Every change the reorganisation requires, in certificate-id order. Revoked and expired
    certificates are left alone: nobody relies on them. A certificate on hold is planned like a
    valid one, since releasing it would bring the old unit back (its re-issue is held in its
    turn). A certificate that was renewed is not planned on its own: one change per subscriber,
    on the newest certificate, whose execution also revokes the ones it renewed."""
    mapping = reorganisation.by_old_code()
    out = []
    for facts in sorted(certificates, key=lambda f: f.certificate_id):
        if not (facts.usable or facts.on_hold) or facts.replaced:
            continue
        change = mapping.get(facts.subject.agency_code)
        body_change = mapping.get(facts.managing_body)
        new_body = body_change.new_agency_code if body_change else facts.managing_body
        if change is not None:
            new_subject = _new_subject(facts.profile, facts.subject, change)
            if new_subject != facts.subject:
                out.append(PlannedChange(facts.certificate_id, PlanAction.REISSUE, facts.subject,
                                         new_subject, facts.managing_body, new_body,
                                         facts.on_hold))
                continue
        if new_body != facts.managing_body:
            out.append(PlannedChange(facts.certificate_id, PlanAction.REASSIGN, facts.subject,
                                     facts.subject, facts.managing_body, new_body,
                                     facts.on_hold))
    return out
