"""Rows of the CA tables as domain views, and the queries the service and the servicer share."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from sqlalchemy import ColumnElement, and_, or_

from server.auth.caller import ALL_PROVINCES, Caller
from server.storage.ca import CaCertificateRow, CaRequestRow
from signing.ca import (
    CertificateStatus,
    RequestKind,
    RequestState,
    RevocationReason,
    SubjectData,
    Timeline,
    is_parent_or_same,
)
from signing.ca.profiles import ProfileRegistry
from signing.ca.reorganisation import CertificateFacts
from vnid.agency import AgencyCodeForm, agency_code_form
from vnid.errors import VnidError

__all__ = [
    "OPERATOR_SCOPE",
    "Actor",
    "CertificateView",
    "RequestView",
    "certificate_view",
    "public_key_sha256",
    "request_view",
    "serial_hex",
    "visibility_clause",
]

OPERATOR_SCOPE = "signing.admin"


def serial_hex(serial: int) -> str:
    return format(serial, "x")


def public_key_sha256(cert_or_key: x509.Certificate | Any) -> str:
    key = cert_or_key.public_key() if isinstance(cert_or_key, x509.Certificate) else cert_or_key
    spki = key.public_bytes(serialization.Encoding.DER,
                            serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(spki).hexdigest()


@dataclass(frozen=True, slots=True)
class Actor:
    """Who asks: an authenticated gRPC caller, or the operator at the command line."""

    name: str  # for the audit log: "{agency}/{system}"
    agency_code: str
    provinces: frozenset[str]
    operator: bool  # holds signing.admin: may act for any managing body in its provinces
    request_id: str = ""

    @classmethod
    def from_caller(cls, caller: Caller, request_id: str) -> Actor:
        return cls(caller.audit_name, caller.agency_code, caller.provinces,
                   OPERATOR_SCOPE in caller.scopes, request_id)

    @classmethod
    def command_line(cls, request_id: str, user: str = "operator") -> Actor:
        return cls(f"cli/{user}", "", frozenset({ALL_PROVINCES}), True, request_id)

    @property
    def national(self) -> bool:
        return ALL_PROVINCES in self.provinces

    def may_act_in(self, province_code: str) -> bool:
        return not province_code or self.national or province_code in self.provinces

    def may_manage(self, managing_body: str, province_code: str) -> bool:
        if not self.may_act_in(province_code):
            return False
        return self.operator or is_parent_or_same(self.agency_code, managing_body)


@dataclass(frozen=True)
class CertificateView:
    id: int
    serial_number: int
    issuer_key_id: str
    profile: str
    subject: SubjectData
    subject_dn: str
    managing_body: str
    status: CertificateStatus
    not_before: dt.datetime
    not_after: dt.datetime
    revoked_at: dt.datetime | None
    revocation_reason: RevocationReason | None
    renewal_count: int
    predecessor_id: int | None
    superseded_by_id: int | None
    held_with_id: int | None
    request_id: int | None
    created_at: dt.datetime
    der: bytes = field(repr=False)

    @property
    def name(self) -> str:
        return f"certificates/{self.id}"

    @property
    def province_code(self) -> str:
        return self.subject.province_code

    def expired(self, now: dt.datetime) -> bool:
        return now >= self.not_after

    def certificate(self) -> x509.Certificate:
        return x509.load_der_x509_certificate(self.der)

    def facts(self, profiles: ProfileRegistry, at: dt.datetime) -> CertificateFacts:
        return CertificateFacts(self.id, profiles.by_key(self.profile), self.subject,
                                self.managing_body,
                                self.status is CertificateStatus.VALID and at < self.not_after,
                                replaced=self.superseded_by_id is not None,
                                on_hold=self.status is CertificateStatus.ON_HOLD
                                and at < self.not_after)


def certificate_view(row: CaCertificateRow) -> CertificateView:
    return CertificateView(
        id=row.id, serial_number=int(row.serial_number, 16), issuer_key_id=row.issuer_key_id,
        profile=row.profile, subject=SubjectData.from_dict(json.loads(row.subject_json)),
        subject_dn=row.subject_dn, managing_body=row.managing_body,
        status=CertificateStatus(row.status), not_before=row.not_before,
        not_after=row.not_after, revoked_at=row.revoked_at,
        revocation_reason=RevocationReason(row.revocation_reason) if row.revocation_reason
        else None, renewal_count=row.renewal_count, predecessor_id=row.predecessor_id,
        superseded_by_id=row.superseded_by_id, held_with_id=row.held_with_id,
        request_id=row.request_id,
        created_at=row.created_at, der=row.der)


@dataclass(frozen=True)
class RequestView:
    id: int
    kind: RequestKind
    state: RequestState
    profile: str
    certificate_id: int | None
    result_certificate_id: int | None
    managing_body: str
    province_code: str
    subject: SubjectData | None
    parameters: Mapping[str, Any]
    requested_by: str
    client_request_id: str
    timeline: Timeline
    decided_by: str
    rejection_reason: str
    rejection_message: str

    @property
    def name(self) -> str:
        return f"certificateRequests/{self.id}"


def request_view(row: CaRequestRow) -> RequestView:
    return RequestView(
        id=row.id, kind=RequestKind(row.kind), state=RequestState(row.state),
        profile=row.profile, certificate_id=row.certificate_id,
        result_certificate_id=row.result_certificate_id, managing_body=row.managing_body,
        province_code=row.province_code,
        subject=SubjectData.from_dict(json.loads(row.subject_json)) if row.subject_json else None,
        parameters=json.loads(row.parameters or "{}"), requested_by=row.requested_by,
        client_request_id=row.client_request_id or "",
        timeline=Timeline(row.submitted_at, row.approved_at, row.completed_at, row.rejected_at),
        decided_by=row.decided_by, rejection_reason=row.rejection_reason,
        rejection_message=row.rejection_message)


def _body_clause(column: Any, agency: str) -> ColumnElement[bool]:
    """SQL pre-filter for "managed by ``agency`` or one of its sub-bodies" (exactness is checked
    again in Python with :func:`is_parent_or_same`)."""
    try:
        form = agency_code_form(agency)
    except VnidError:
        exact: ColumnElement[bool] = column == agency
        return exact
    if form is AgencyCodeForm.QD20:
        return or_(column == agency, column.like(agency.replace("_", r"\_") + ".%",
                                                 escape="\\"))
    groups = agency.split(".")
    i = 0
    while i < 3 and set(groups[i]) == {"0"}:
        i += 1
    clause: ColumnElement[bool] = or_(column == agency,
                                      column.like("%." + ".".join(groups[i:])))
    return clause


def visibility_clause(actor: Actor, body_column: Any,
                      province_column: Any) -> ColumnElement[bool] | None:
    """What ``actor`` may see, as a SQL condition (None: everything)."""
    parts: list[ColumnElement[bool]] = []
    if not actor.national:
        parts.append(or_(province_column == "", province_column.in_(sorted(actor.provinces))))
    if not actor.operator:
        parts.append(_body_clause(body_column, actor.agency_code))
    if not parts:
        return None
    return and_(*parts)


def statuses_for(values: Collection[str]) -> list[str]:
    return [CertificateStatus(v).value for v in values]
