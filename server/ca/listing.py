"""Listing certificates and requests: AIP-160 filter conditions to SQL, keyset paging by id, and
only what the actor may see."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import ColumnElement, and_, func, select

from server.ca.records import (
    Actor,
    CertificateView,
    RequestView,
    certificate_view,
    request_view,
    visibility_clause,
)
from server.errors import InvalidArgument
from server.rpc.filtering import Condition
from server.storage.ca import CaCertificateRow, CaRequestRow
from server.storage.db import Database
from signing.ca import CertificateStatus, RequestKind, RequestState

__all__ = [
    "CERTIFICATE_FILTER_FIELDS",
    "REQUEST_FILTER_FIELDS",
    "list_certificates",
    "list_requests",
]

CERTIFICATE_FILTER_FIELDS = ("agency", "province", "subject", "common_name", "status",
                             "not_after", "managing_body", "profile", "serial_number")
REQUEST_FILTER_FIELDS = ("state", "kind", "managing_body", "province", "submit_time",
                         "certificate")

_OPS: dict[str, Callable[[Any, Any], ColumnElement[bool]]] = {
    "=": lambda c, v: c == v, "!=": lambda c, v: c != v, "<": lambda c, v: c < v,
    "<=": lambda c, v: c <= v, ">": lambda c, v: c > v, ">=": lambda c, v: c >= v,
}


def _bad(message: str) -> InvalidArgument:
    return InvalidArgument(message, reason="INVALID_FILTER", metadata={"field": "filter"})


def _time(value: str) -> dt.datetime:
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise _bad("time values must be RFC 3339, e.g. 2026-01-01T00:00:00Z") from None
    if parsed.tzinfo is None:
        raise _bad("time values need a UTC offset")
    return parsed


def _equality(cond: Condition) -> None:
    if cond.op not in ("=", "!="):
        raise _bad(f"{cond.field} supports only = and !=")


def _certificate_condition(cond: Condition, now: dt.datetime) -> ColumnElement[bool]:
    c = CaCertificateRow
    simple = {"agency": c.agency_code, "province": c.province_code, "common_name": c.common_name,
              "managing_body": c.managing_body, "profile": c.profile}
    if cond.field in simple:
        _equality(cond)
        return _OPS[cond.op](simple[cond.field], cond.value)
    if cond.field == "serial_number":
        _equality(cond)
        return _OPS[cond.op](c.serial_number, cond.value.lower().lstrip("0") or "0")
    if cond.field == "subject":
        _equality(cond)
        pattern = "%" + cond.value.lower().replace("%", r"\%").replace("_", r"\_") + "%"
        match = func.lower(c.subject_dn).like(pattern, escape="\\")
        return match if cond.op == "=" else ~match
    if cond.field == "not_after":
        return _OPS[cond.op](c.not_after, _time(cond.value))
    _equality(cond)
    status = cond.value.lower()
    if status == "expired":
        clause = and_(c.status == CertificateStatus.VALID.value, c.not_after <= now)
    elif status == CertificateStatus.VALID.value:
        clause = and_(c.status == status, c.not_after > now)
    elif status in (CertificateStatus.REVOKED.value, CertificateStatus.ON_HOLD.value):
        clause = c.status == status
    else:
        raise _bad("status is one of valid, on_hold, revoked, expired")
    return clause if cond.op == "=" else ~clause


def list_certificates(db: Database, actor: Actor, conditions: Sequence[Condition], *,
                      after_id: int, size: int, now: dt.datetime) -> list[CertificateView]:
    """Up to ``size + 1`` certificates with id > ``after_id`` (the extra one says "more")."""
    where = [_certificate_condition(c, now) for c in conditions]
    visible = visibility_clause(actor, CaCertificateRow.managing_body,
                                CaCertificateRow.province_code)
    if visible is not None:
        where.append(visible)
    out: list[CertificateView] = []
    cursor = after_id
    while len(out) <= size:
        with db.read() as s:
            rows = s.execute(select(CaCertificateRow).where(*where, CaCertificateRow.id > cursor)
                             .order_by(CaCertificateRow.id).limit(size + 1)).scalars().all()
        if not rows:
            break
        for row in rows:
            if actor.may_manage(row.managing_body, row.province_code):
                out.append(certificate_view(row))
        cursor = rows[-1].id
        if len(rows) <= size:
            break
    return out[:size + 1]


def _request_condition(cond: Condition) -> ColumnElement[bool]:
    r = CaRequestRow
    if cond.field == "state":
        _equality(cond)
        try:
            return _OPS[cond.op](r.state, RequestState(cond.value.lower()).value)
        except ValueError:
            raise _bad("state is one of submitted, approved, completed, rejected") from None
    if cond.field == "kind":
        _equality(cond)
        try:
            return _OPS[cond.op](r.kind, RequestKind(cond.value.lower()).value)
        except ValueError:
            raise _bad("kind is one of " + ", ".join(k.value for k in RequestKind)) from None
    if cond.field == "managing_body":
        _equality(cond)
        return _OPS[cond.op](r.managing_body, cond.value)
    if cond.field == "province":
        _equality(cond)
        return _OPS[cond.op](r.province_code, cond.value)
    if cond.field == "certificate":
        _equality(cond)
        try:
            cid = int(cond.value.removeprefix("certificates/"))
        except ValueError:
            raise _bad("certificate values are certificates/{id}") from None
        return _OPS[cond.op](r.certificate_id, cid)
    return _OPS[cond.op](r.submitted_at, _time(cond.value))


def list_requests(db: Database, actor: Actor, conditions: Sequence[Condition], *,
                  after_id: int, size: int) -> list[RequestView]:
    where = [_request_condition(c) for c in conditions]
    visible = visibility_clause(actor, CaRequestRow.managing_body, CaRequestRow.province_code)
    if visible is not None:
        where.append(visible)
    out: list[RequestView] = []
    cursor = after_id
    while len(out) <= size:
        with db.read() as s:
            rows = s.execute(select(CaRequestRow).where(*where, CaRequestRow.id > cursor)
                             .order_by(CaRequestRow.id).limit(size + 1)).scalars().all()
        if not rows:
            break
        out.extend(request_view(r) for r in rows
                   if actor.may_manage(r.managing_body, r.province_code))
        cursor = rows[-1].id
        if len(rows) <= size:
            break
    return out[:size + 1]
