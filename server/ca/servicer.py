"""``vnegov.signing.v1.CertificateAuthorityService``: proto <-> domain, then the CA service."""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from cryptography.hazmat.primitives import serialization
from google.protobuf import timestamp_pb2

from server.ca.issuance import IssueQueue, PreparedIssue
from server.ca.listing import (
    CERTIFICATE_FILTER_FIELDS,
    REQUEST_FILTER_FIELDS,
    list_certificates,
    list_requests,
)
from server.ca.records import Actor, CertificateView, RequestView
from server.ca.reorg import ReorganisationRunner, RunStatus
from server.ca.service import CaService
from server.errors import InvalidArgument
from server.rpc.filtering import parse_filter
from server.rpc.paging import decode_page_token, encode_page_token, page_size, query_digest
from server.rpc.state import current_call, current_caller
from signing.ca import (
    CertificateStatus,
    PlanAction,
    PlannedChange,
    Reorganisation,
    RequestKind,
    RequestState,
    RevocationReason,
    SubjectData,
    SubjectField,
)
from signing.errors import SigningError
from vnegov.signing.v1 import certificate_authority_pb2 as pb
from vnegov.signing.v1 import certificate_authority_pb2_grpc as pb_grpc

__all__ = ["CertificateAuthorityServicer"]

Run = Callable[..., Awaitable[Any]]

_KINDS = {k: getattr(pb.CertificateRequest.Kind, k.name) for k in RequestKind}
_STATES = {s: getattr(pb.CertificateRequest.State, s.name) for s in RequestState}
_REASONS = {r: getattr(pb.RevocationReason.Reason, r.name) for r in RevocationReason}
_REASONS_BACK = {v: k for k, v in _REASONS.items()}
_CERT_STATUS = {CertificateStatus.VALID: pb.Certificate.VALID,
                CertificateStatus.ON_HOLD: pb.Certificate.ON_HOLD,
                CertificateStatus.REVOKED: pb.Certificate.REVOKED}
_ACTIONS = {PlanAction.REISSUE: pb.PlannedCertificateChange.REISSUE,
            PlanAction.REASSIGN: pb.PlannedCertificateChange.REASSIGN}
_RUN_STATES = {"running": pb.ReorganizationOperation.RUNNING,
               "succeeded": pb.ReorganizationOperation.SUCCEEDED,
               "failed": pb.ReorganizationOperation.FAILED}
_ITEM_STATES = {"pending": pb.ReorganizationItem.PENDING, "done": pb.ReorganizationItem.DONE,
                "failed": pb.ReorganizationItem.FAILED}


def _ts(value: dt.datetime | None) -> timestamp_pb2.Timestamp | None:
    if value is None:
        return None
    ts = timestamp_pb2.Timestamp()
    ts.FromDatetime(value.astimezone(dt.UTC))
    return ts


def _id(name: str, collection: str, field: str = "name") -> int:
    prefix = collection + "/"
    tail = name.removeprefix(prefix)
    if not name.startswith(prefix) or not tail.isdigit() or len(tail) > 18:
        raise InvalidArgument(f"{field} must be {collection}/{{id}}", metadata={"field": field})
    return int(tail)


def subject_from_proto(msg: pb.CertificateSubject) -> SubjectData:
    values: dict[str, Any] = {f.value: getattr(msg, f.value) for f in SubjectField
                              if f is not SubjectField.DNS_NAMES}
    return SubjectData(**values, dns_names=tuple(msg.dns_names))


def subject_to_proto(data: SubjectData) -> pb.CertificateSubject:
    msg = pb.CertificateSubject(**{f.value: getattr(data, f.value) for f in SubjectField
                                   if f is not SubjectField.DNS_NAMES})
    msg.dns_names.extend(data.dns_names)
    return msg


def _reason(value: int, field: str) -> RevocationReason:
    try:
        return _REASONS_BACK[value]
    except KeyError:
        raise InvalidArgument("unknown revocation reason", metadata={"field": field}) from None


def _reorganisation(msg: pb.Reorganization) -> Reorganisation:
    return Reorganisation.from_config({
        "reference": msg.reference, "effective_date": msg.effective_date,
        "changes": [{k: v for k, v in (
            ("old_agency_code", c.old_agency_code), ("new_agency_code", c.new_agency_code),
            ("new_name", c.new_name), ("new_parent_body", c.new_parent_body),
            ("new_province_code", c.new_province_code),
            ("new_commune_code", c.new_commune_code)) if v} for c in msg.changes],
    })


class CertificateAuthorityServicer(pb_grpc.CertificateAuthorityServiceServicer):
    def __init__(self, service: CaService, runner: ReorganisationRunner, run: Run,
                 start_run: Callable[[Actor, int], None]) -> None:
        self.service = service
        self.runner = runner
        self.run = run
        self.start_run = start_run
        self.issue_queue = IssueQueue(service.writer, run)
        self._chain_pem = "".join(c.public_bytes(serialization.Encoding.PEM).decode()
                                  for c in service.rt.authority.chain)

    # ------------------------------------------------------------------ conversions
    def _actor(self) -> Actor:
        return Actor.from_caller(current_caller(), current_call().request_id)

    def _certificate(self, view: CertificateView) -> pb.Certificate:
        now = self.service.clock()
        status = _CERT_STATUS[view.status]
        if view.status is CertificateStatus.VALID and view.expired(now):
            status = pb.Certificate.EXPIRED
        cert = view.certificate()
        msg = pb.Certificate(
            name=view.name, serial_number=format(view.serial_number, "x"),
            issuer=cert.issuer.rfc4514_string(), subject_dn=view.subject_dn,
            profile=view.profile, subject=subject_to_proto(view.subject),
            managing_body=view.managing_body, status=status,
            not_before=_ts(view.not_before), not_after=_ts(view.not_after),
            revoke_time=_ts(view.revoked_at),
            revocation_reason=_REASONS[view.revocation_reason] if view.revocation_reason
            else pb.RevocationReason.UNSPECIFIED,
            renewal_count=view.renewal_count,
            predecessor=f"certificates/{view.predecessor_id}" if view.predecessor_id else "",
            superseded_by=f"certificates/{view.superseded_by_id}" if view.superseded_by_id
            else "",
            certificate_request=f"certificateRequests/{view.request_id}" if view.request_id
            else "", create_time=_ts(view.created_at), der=view.der,
            chain_pem=self._chain_pem)
        return msg

    def _request(self, view: RequestView) -> pb.CertificateRequest:
        rt = self.service.rt
        now = self.service.clock()
        days = view.timeline.working_days(rt.holidays, now) or 0.0
        reason = view.parameters.get("reason")
        return pb.CertificateRequest(
            name=view.name, kind=_KINDS[view.kind], state=_STATES[view.state],
            profile=view.profile,
            certificate=f"certificates/{view.certificate_id}" if view.certificate_id else "",
            result_certificate=f"certificates/{view.result_certificate_id}"
            if view.result_certificate_id else "",
            managing_body=view.managing_body,
            subject=subject_to_proto(view.subject) if view.subject else None,
            requested_by=view.requested_by, request_id=view.client_request_id,
            submit_time=_ts(view.timeline.submitted_at),
            approve_time=_ts(view.timeline.approved_at),
            complete_time=_ts(view.timeline.completed_at),
            reject_time=_ts(view.timeline.rejected_at), rejection_reason=view.rejection_reason,
            rejection_message=view.rejection_message, working_days=round(days, 3),
            within_service_target=days <= rt.settings.service_target_working_days,
            revocation_reason=_REASONS[RevocationReason(reason)] if reason
            else pb.RevocationReason.UNSPECIFIED)

    def _operation(self, status: RunStatus) -> pb.ReorganizationOperation:
        return pb.ReorganizationOperation(
            name=status.name, done=status.finished, state=_RUN_STATES[status.state],
            total=status.total, completed=status.done, failed=status.failed,
            reference=status.reference, create_time=_ts(status.created_at),
            finish_time=_ts(status.finished_at))

    # ------------------------------------------------------------------ requests
    async def CreateCertificateRequest(self, request: pb.CreateCertificateRequestRequest,
                                       context: grpc.aio.ServicerContext) -> pb.CertificateRequest:
        if not request.csr:
            raise InvalidArgument("csr is required", metadata={"field": "csr"})
        if not request.profile:
            raise InvalidArgument("profile is required", metadata={"field": "profile"})
        async with self.issue_queue.preparing():
            prepared = await self.run(
                self.service.prepare_issue, self._actor(), profile_id=request.profile,
                subject=subject_from_proto(request.subject), csr=request.csr,
                managing_body=request.managing_body,
                validity_days=request.validity_days or None,
                client_request_id=request.request_id)
        if isinstance(prepared, PreparedIssue):  # auto-approved: written with others
            prepared = await self.issue_queue.submit(prepared)
        return self._request(prepared)

    async def GetCertificateRequest(self, request: pb.GetCertificateRequestRequest,
                                    context: grpc.aio.ServicerContext) -> pb.CertificateRequest:
        rid = _id(request.name, "certificateRequests")
        return self._request(await self.run(self.service.get_request, self._actor(), rid))

    async def ListCertificateRequests(self, request: pb.ListCertificateRequestsRequest,
                                      context: grpc.aio.ServicerContext
                                      ) -> pb.ListCertificateRequestsResponse:
        size = page_size(request.page_size)
        conditions = parse_filter(request.filter, REQUEST_FILTER_FIELDS)
        digest = query_digest("ListCertificateRequests", request.filter)
        cursor = decode_page_token(request.page_token, digest)
        after = int.from_bytes(cursor, "big") if cursor else 0
        views = await self.run(list_requests, self.service.db, self._actor(), conditions,
                               after_id=after, size=size)
        response = pb.ListCertificateRequestsResponse(
            certificate_requests=[self._request(v) for v in views[:size]])
        if len(views) > size:
            response.next_page_token = encode_page_token(views[size - 1].id.to_bytes(8, "big"),
                                                         digest)
        return response

    async def ApproveCertificateRequest(self, request: pb.ApproveCertificateRequestRequest,
                                        context: grpc.aio.ServicerContext
                                        ) -> pb.CertificateRequest:
        rid = _id(request.name, "certificateRequests")
        return self._request(await self.run(self.service.approve, self._actor(), rid))

    async def RejectCertificateRequest(self, request: pb.RejectCertificateRequestRequest,
                                       context: grpc.aio.ServicerContext
                                       ) -> pb.CertificateRequest:
        rid = _id(request.name, "certificateRequests")
        return self._request(await self.run(self.service.reject, self._actor(), rid,
                                            request.message))

    # ------------------------------------------------------------------ certificates
    async def GetCertificate(self, request: pb.GetCertificateRequest,
                             context: grpc.aio.ServicerContext) -> pb.Certificate:
        cid = _id(request.name, "certificates")
        return self._certificate(await self.run(self.service.get_certificate, self._actor(),
                                                cid))

    async def ListCertificates(self, request: pb.ListCertificatesRequest,
                               context: grpc.aio.ServicerContext) -> pb.ListCertificatesResponse:
        size = page_size(request.page_size)
        conditions = parse_filter(request.filter, CERTIFICATE_FILTER_FIELDS)
        digest = query_digest("ListCertificates", request.filter)
        cursor = decode_page_token(request.page_token, digest)
        after = int.from_bytes(cursor, "big") if cursor else 0
        views = await self.run(list_certificates, self.service.db, self._actor(), conditions,
                               after_id=after, size=size, now=self.service.clock())
        response = pb.ListCertificatesResponse(
            certificates=[self._certificate(v) for v in views[:size]])
        if len(views) > size:
            response.next_page_token = encode_page_token(views[size - 1].id.to_bytes(8, "big"),
                                                         digest)
        return response

    async def RenewCertificate(self, request: pb.RenewCertificateRequest,
                               context: grpc.aio.ServicerContext) -> pb.CertificateRequest:
        cid = _id(request.name, "certificates")
        return self._request(await self.run(
            self.service.renew, self._actor(), cid,
            extension_days=request.extension_days or None, client_request_id=request.request_id))

    async def RekeyCertificate(self, request: pb.RekeyCertificateRequest,
                               context: grpc.aio.ServicerContext) -> pb.CertificateRequest:
        cid = _id(request.name, "certificates")
        if not request.csr:
            raise InvalidArgument("csr is required", metadata={"field": "csr"})
        return self._request(await self.run(
            self.service.rekey, self._actor(), cid, csr=request.csr,
            validity_days=request.validity_days or None, client_request_id=request.request_id))

    async def ModifyCertificate(self, request: pb.ModifyCertificateRequest,
                                context: grpc.aio.ServicerContext) -> pb.CertificateRequest:
        cid = _id(request.name, "certificates")
        known = {f.value for f in SubjectField}
        unknown = [p for p in request.update_mask if p not in known]
        if unknown:
            raise InvalidArgument(f"update_mask names an unknown field {unknown[0]!r}",
                                  metadata={"field": "update_mask"})
        if not request.update_mask and not request.managing_body:
            raise InvalidArgument("update_mask or managing_body must say what changes",
                                  metadata={"field": "update_mask"})
        new = subject_from_proto(request.subject)
        changes = {p: getattr(new, p) for p in request.update_mask}
        reason = _reason(request.revocation_reason, "revocation_reason") \
            if request.revocation_reason else None
        return self._request(await self.run(
            self.service.modify, self._actor(), cid, changes=changes,
            managing_body=request.managing_body, reason=reason,
            client_request_id=request.request_id))

    async def RevokeCertificate(self, request: pb.RevokeCertificateRequest,
                                context: grpc.aio.ServicerContext) -> pb.CertificateRequest:
        cid = _id(request.name, "certificates")
        invalidity = request.invalidity_time.ToDatetime(dt.UTC) \
            if request.HasField("invalidity_time") else None
        return self._request(await self.run(
            self.service.revoke, self._actor(), cid, reason=_reason(request.reason, "reason"),
            invalidity_date=invalidity, client_request_id=request.request_id))

    async def ReleaseCertificateHold(self, request: pb.ReleaseCertificateHoldRequest,
                                     context: grpc.aio.ServicerContext) -> pb.CertificateRequest:
        cid = _id(request.name, "certificates")
        return self._request(await self.run(self.service.release, self._actor(), cid,
                                            client_request_id=request.request_id))

    async def GetCertificateStatus(self, request: pb.GetCertificateStatusRequest,
                                   context: grpc.aio.ServicerContext) -> pb.CertificateStatus:
        text = request.serial_number.lower().removeprefix("0x")
        try:
            serial = int(text, 16)
        except ValueError:
            raise InvalidArgument("serial_number must be hexadecimal",
                                  metadata={"field": "serial_number"}) from None
        rt = self.service.rt
        state = rt.index.lookup(rt.authority.key_id, serial)
        msg = pb.CertificateStatus(serial_number=format(serial, "x"))
        if state is None:
            msg.status = pb.CertificateStatus.UNKNOWN
        elif state.revocation is None:
            msg.status = pb.CertificateStatus.GOOD
        else:
            msg.status = pb.CertificateStatus.REVOKED
            msg.revoke_time.FromDatetime(state.revocation.revoked_at)
            msg.revocation_reason = _REASONS[state.revocation.reason]
        return msg

    # ------------------------------------------------------------------ reorganisation
    async def PlanReorganization(self, request: pb.PlanReorganizationRequest,
                                 context: grpc.aio.ServicerContext) -> pb.ReorganizationPlan:
        try:
            reorganisation = _reorganisation(request.reorganization)
        except SigningError as exc:
            raise InvalidArgument(exc.message, reason=exc.reason,
                                  metadata={"field": "reorganization"}) from None
        changes: list[PlannedChange] = await self.run(self.runner.plan, self._actor(),
                                                      reorganisation)
        plan = pb.ReorganizationPlan(
            reissue_count=sum(c.action is PlanAction.REISSUE for c in changes),
            reassign_count=sum(c.action is PlanAction.REASSIGN for c in changes))
        for c in changes:
            plan.changes.append(pb.PlannedCertificateChange(
                certificate=f"certificates/{c.certificate_id}", action=_ACTIONS[c.action],
                changed_fields=c.changed_fields(), old_managing_body=c.old_managing_body,
                new_managing_body=c.new_managing_body,
                new_subject=subject_to_proto(c.new_subject)))
        return plan

    async def StartReorganization(self, request: pb.StartReorganizationRequest,
                                  context: grpc.aio.ServicerContext
                                  ) -> pb.ReorganizationOperation:
        try:
            reorganisation = _reorganisation(request.reorganization)
        except SigningError as exc:
            raise InvalidArgument(exc.message, reason=exc.reason,
                                  metadata={"field": "reorganization"}) from None
        actor = self._actor()
        status: RunStatus = await self.run(self.runner.create, actor, reorganisation)
        if not status.finished:
            await self.run(self.start_run, actor, status.id)
        return self._operation(status)

    async def GetReorganizationOperation(self, request: pb.GetReorganizationOperationRequest,
                                         context: grpc.aio.ServicerContext
                                         ) -> pb.ReorganizationOperation:
        rid = _id(request.name, "reorganizationOperations")
        return self._operation(await self.run(self.runner.status, rid))

    async def ListReorganizationItems(self, request: pb.ListReorganizationItemsRequest,
                                      context: grpc.aio.ServicerContext
                                      ) -> pb.ListReorganizationItemsResponse:
        rid = _id(request.name, "reorganizationOperations")
        await self.run(self.runner.status, rid)
        size = page_size(request.page_size, default=100)
        digest = query_digest("ListReorganizationItems", request.name)
        cursor = decode_page_token(request.page_token, digest)
        after = int.from_bytes(cursor, "big") if cursor else 0
        rows = await self.run(self.runner.items, rid, after_id=after, size=size)
        response = pb.ListReorganizationItemsResponse()
        for row in rows[:size]:
            response.items.append(pb.ReorganizationItem(
                certificate=f"certificates/{row.certificate_id}",
                action=_ACTIONS[PlanAction(row.action)], state=_ITEM_STATES[row.state],
                new_certificate=f"certificates/{row.new_certificate_id}"
                if row.new_certificate_id else "", error=row.error))
        if len(rows) > size:
            response.next_page_token = encode_page_token(rows[size - 1].id.to_bytes(8, "big"),
                                                         digest)
        return response
