"""``vnegov.admin.v1.AdminService``: who the caller is, and the audit log."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any, TypeVar

import grpc
from google.protobuf import timestamp_pb2
from sqlalchemy import ColumnElement, select

from server.audit import StoredAuditEvent, to_stored
from server.errors import InvalidArgument
from server.rpc.filtering import Condition, parse_filter
from server.rpc.paging import decode_page_token, encode_page_token, page_size, query_digest
from server.rpc.state import current_caller
from server.storage.audit import AuditEventRow
from server.storage.db import Database
from vnegov.admin.v1 import admin_pb2, admin_pb2_grpc

__all__ = ["AdminService"]

T = TypeVar("T")

_METHOD = "/vnegov.admin.v1.AdminService/ListAuditEvents"
_FILTER_FIELDS = {
    "caller": AuditEventRow.caller, "kind": AuditEventRow.kind, "action": AuditEventRow.action,
    "outcome": AuditEventRow.outcome, "reason": AuditEventRow.reason,
    "request_id": AuditEventRow.request_id, "time": AuditEventRow.at,
    "sequence": AuditEventRow.seq,
}
_AUTH_METHODS = {
    "mtls": admin_pb2.Caller.MUTUAL_TLS,
    "bearer": admin_pb2.Caller.BEARER_TOKEN,
    "plaintext-dev": admin_pb2.Caller.PLAINTEXT_DEVELOPMENT,
}


def _timestamp(value: dt.datetime) -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.FromDatetime(value.astimezone(dt.UTC))
    return ts


def _condition(cond: Condition) -> ColumnElement[bool]:
    column: Any = _FILTER_FIELDS[cond.field]
    value: Any = cond.value
    if cond.field == "time":
        try:
            value = dt.datetime.fromisoformat(cond.value.replace("Z", "+00:00"))
        except ValueError:
            raise InvalidArgument("time values must be RFC 3339", reason="INVALID_FILTER",
                                  metadata={"field": "filter"}) from None
        if value.tzinfo is None:
            raise InvalidArgument("time values need a UTC offset", reason="INVALID_FILTER",
                                  metadata={"field": "filter"})
    elif cond.field == "sequence":
        try:
            value = int(cond.value)
        except ValueError:
            raise InvalidArgument("sequence values must be integers", reason="INVALID_FILTER",
                                  metadata={"field": "filter"}) from None
    ops: dict[str, Callable[[Any, Any], ColumnElement[bool]]] = {
        "=": lambda c, v: c == v, "!=": lambda c, v: c != v, "<": lambda c, v: c < v,
        "<=": lambda c, v: c <= v, ">": lambda c, v: c > v, ">=": lambda c, v: c >= v,
    }
    return ops[cond.op](column, value)


class AdminService(admin_pb2_grpc.AdminServiceServicer):
    def __init__(self, db: Database, run: Callable[..., Any]) -> None:
        self._db = db
        self._run = run  # runs blocking work off the event loop

    async def GetCaller(self, request: admin_pb2.GetCallerRequest,
                        context: grpc.aio.ServicerContext) -> admin_pb2.Caller:
        caller = current_caller()
        message = admin_pb2.Caller(
            display_name=caller.display_name,
            agency_code=caller.agency_code,
            province_code=caller.province_code,
            scopes=sorted(caller.scopes),
            provinces=sorted(caller.provinces),
            authentication_method=_AUTH_METHODS[caller.method.value],
            certificate_subject=caller.certificate_subject,
            certificate_sha256=caller.certificate_sha256,
        )
        if caller.certificate_not_after is not None:
            message.certificate_not_after.CopyFrom(_timestamp(caller.certificate_not_after))
        return message

    async def ListAuditEvents(self, request: admin_pb2.ListAuditEventsRequest,
                              context: grpc.aio.ServicerContext
                              ) -> admin_pb2.ListAuditEventsResponse:
        size = page_size(request.page_size)
        conditions = [_condition(c) for c in parse_filter(request.filter, _FILTER_FIELDS)]
        digest = query_digest(_METHOD, request.filter)
        cursor = decode_page_token(request.page_token, digest)
        after = int.from_bytes(cursor, "big") if cursor else 0

        def query() -> list[StoredAuditEvent]:
            with self._db.read() as session:
                stmt = (select(AuditEventRow).where(AuditEventRow.seq > after, *conditions)
                        .order_by(AuditEventRow.seq).limit(size + 1))
                return [to_stored(row) for row in session.execute(stmt).scalars()]

        events = await self._run(query)
        response = admin_pb2.ListAuditEventsResponse()
        for event in events[:size]:
            response.audit_events.append(admin_pb2.AuditEvent(
                name=f"auditEvents/{event.seq}", sequence=event.seq, time=_timestamp(event.at),
                request_id=event.request_id, caller=event.caller, kind=event.kind,
                action=event.action, outcome=event.outcome, reason=event.reason,
                details={k: "" if v is None else str(v) for k, v in event.details.items()},
                hash=event.hash, previous_hash=event.prev_hash,
            ))
        if len(events) > size:
            last = events[size - 1].seq
            response.next_page_token = encode_page_token(last.to_bytes(8, "big"), digest)
        return response
