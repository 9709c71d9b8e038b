"""``vnegov.signing.v1.SigningService``: converts between protobuf and :mod:`signing` and runs the
library on the worker threads. Documents stream in and out in chunks through spooled temporary
files (in memory while small, on disk when large): a document is never held twice in memory."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import tempfile
from collections.abc import AsyncIterator
from typing import IO, Any

import grpc
from cryptography.hazmat.primitives import serialization
from google.protobuf import timestamp_pb2

from server.auth.caller import Caller
from server.documents.approvals import ProviderApprovals
from server.documents.budgets import run_budgeted
from server.documents.runtime import DocumentsRuntime
from server.documents.stores import (
    AuditScope,
    SqlApprovalRequests,
    SqlCredentialStore,
    SqlSadStore,
    SqlSecondFactors,
)
from server.errors import InvalidArgument, PermissionDenied
from server.modules import AppContext
from server.rpc.state import current_call, current_caller
from signing.errors import FailedPrecondition
from signing.errors import InvalidInput as SigningInvalidInput
from signing.sign.cms import CadesLevel, sign_detached
from signing.sign.expected import ExpectedSigner
from signing.sign.ltv import extend_ltv
from signing.sign.pades import DocMdp, PadesLevel, PadesOptions, VisibleSignature, sign_pdf
from signing.sign.remote import (
    ApprovalAuthoriser,
    FactorAuthorisers,
    LocalCscClient,
    RemoteSigner,
    RemoteSigningService,
    SecondFactor,
    TotpAuthoriser,
)
from signing.sign.signers import Signer
from signing.sign.xmldsig import XmlDsigSigner
from signing.stamp import (
    agency_seal,
    electronic_copy,
    page_box,
    person_layout,
    person_signature,
    seal_box,
)
from signing.validate import (
    Indication,
    ValidationReport,
    validate_cms,
    validate_pdf,
    validate_xml,
)
from vnegov.signing.v1 import documents_pb2 as pb
from vnegov.signing.v1 import documents_pb2_grpc

__all__ = ["SigningServicer"]

CHUNK = 1 << 20
SPOOL = 8 << 20  # bytes kept in memory before spilling to disk
MAX_CHUNK = 4 << 20

_PADES = {pb.SIGNATURE_LEVEL_UNSPECIFIED: PadesLevel.B_B, pb.B_B: PadesLevel.B_B,
          pb.B_T: PadesLevel.B_T, pb.B_LT: PadesLevel.B_LT, pb.B_LTA: PadesLevel.B_LTA}
_LEVEL_OUT = {PadesLevel.B_B: pb.B_B, PadesLevel.B_T: pb.B_T, PadesLevel.B_LT: pb.B_LT,
              PadesLevel.B_LTA: pb.B_LTA}
_INDICATION = {Indication.TOTAL_PASSED: pb.TOTAL_PASSED, Indication.TOTAL_FAILED: pb.TOTAL_FAILED,
               Indication.INDETERMINATE: pb.INDETERMINATE}


def _expected_signer(message: pb.ExpectedSigner) -> ExpectedSigner:
    try:
        return ExpectedSigner(agency_code=message.agency_code or None,
                              tax_code=message.tax_code or None,
                              subject={a.type: a.value for a in message.subject},
                              require_all=message.require_all)
    except SigningInvalidInput as exc:
        raise InvalidArgument(exc.message, reason="INVALID_EXPECTED_SIGNER",
                              metadata={"field": "header.expected_signer"}) from None


def _timestamp(value: dt.datetime) -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.FromDatetime(value.astimezone(dt.UTC))
    return ts


def _box(box: pb.Box) -> tuple[float, float, float, float]:
    return (box.x1, box.y1, box.x2, box.y2)


def _factor(factor: pb.SecondFactor) -> SecondFactor:
    which = factor.WhichOneof("factor")
    if which == "totp":
        return SecondFactor("totp", factor.totp)
    if which == "approval":
        return SecondFactor("approval", factor.approval)
    raise InvalidArgument("a second factor is required", reason="SECOND_FACTOR_REQUIRED",
                          metadata={"field": "second_factor"})


async def _spool(requests: AsyncIterator[Any], limit: int) -> tuple[Any, IO[bytes]]:
    """The header (first message, which may also carry the first chunk) and the document's chunks
    in a buffer, moved to a temporary file once larger than ``SPOOL``."""
    header = None
    # In memory while small, then a temporary file. A plain BytesIO rather than a
    # SpooledTemporaryFile: the PDF parser reads in many small pieces, and each going through
    # the spool's wrapper costs about 3% of a 1-page signature.
    spool: IO[bytes] = io.BytesIO()
    size = 0
    try:
        async for request in requests:
            if header is None:
                if not request.HasField("header"):
                    raise InvalidArgument("the first message must be the header",
                                          reason="HEADER_FIRST", metadata={"field": "header"})
                header = request.header
            elif request.HasField("header"):
                raise InvalidArgument("only chunks may follow the header", reason="HEADER_TWICE",
                                      metadata={"field": "header"})
            chunk = request.chunk
            if not chunk:
                continue
            if len(chunk) > MAX_CHUNK:
                raise InvalidArgument("chunks are at most 4 MiB", reason="CHUNK_TOO_LARGE",
                                      metadata={"field": "chunk"})
            size += len(chunk)
            if size > limit:
                raise InvalidArgument("the document is too large", reason="DOCUMENT_TOO_LARGE",
                                      metadata={"field": "chunk"})
            if size > SPOOL and isinstance(spool, io.BytesIO):
                on_disk = tempfile.TemporaryFile()  # noqa: SIM115 - closed by callers
                try:
                    on_disk.write(spool.getbuffer())
                except BaseException:  # a full disk: the temporary file goes too
                    on_disk.close()
                    raise
                spool.close()
                spool = on_disk
            spool.write(chunk)
    except BaseException:
        spool.close()
        raise
    if header is None:
        spool.close()
        raise InvalidArgument("no header was sent", reason="HEADER_FIRST",
                              metadata={"field": "header"})
    spool.seek(0)
    return header, spool


class SigningServicer(documents_pb2_grpc.SigningServiceServicer):
    def __init__(self, ctx: AppContext, runtime: DocumentsRuntime) -> None:
        self._ctx = ctx
        self._rt = runtime
        self._limit = runtime.config.max_document_mib << 20
        self._factors = SqlSecondFactors(ctx.db, ctx.secret_box)

    # ------------------------------------------------------------ remote signing (CSC)
    def _remote(self, caller: Caller | None = None, request_id: str = "") -> RemoteSigningService:
        # Called on the event loop (the call's context is there) or given what it needs.
        if caller is None:
            caller, request_id = current_caller(), current_call().request_id
        scope = AuditScope(request_id, caller.audit_name, self._ctx.clock)
        approvals = ApprovalAuthoriser(
            SqlApprovalRequests(self._ctx.db, scope),
            ProviderApprovals(lambda: self._ctx.registry.get("identity_provider"), scope))
        return RemoteSigningService(
            credentials=SqlCredentialStore(self._ctx.db, caller.agency_code),
            sads=SqlSadStore(self._ctx.db, scope),
            authoriser=FactorAuthorisers({
                "totp": TotpAuthoriser(self._factors.secret_of, self._factors),
                "approval": approvals}),
            keys=self._rt.keys,
            sad_lifetime=dt.timedelta(seconds=self._rt.config.sad_lifetime_seconds),
            approvals=approvals)

    async def ListCredentials(self, request: pb.ListCredentialsRequest,
                              context: grpc.aio.ServicerContext) -> pb.ListCredentialsResponse:
        service = self._remote()
        ids = await self._ctx.run(service.list_credentials, request.signer_id)
        return pb.ListCredentialsResponse(credential_ids=ids)

    async def GetCredentialInfo(self, request: pb.GetCredentialInfoRequest,
                                context: grpc.aio.ServicerContext) -> pb.CredentialInfo:
        service = self._remote()
        info = await self._ctx.run(service.credential_info, request.signer_id,
                                   request.credential_id)
        return pb.CredentialInfo(
            credential_id=info.credential_id, description=info.description,
            status="enabled" if info.enabled else "disabled",
            certificates=[c.public_bytes(serialization.Encoding.DER) for c in info.certificates],
            key_algorithm=info.key_algorithm, key_length=info.key_length,
            auth_mode=info.auth_mode, scal=info.scal, multisign=info.multisign)

    async def AuthorizeCredential(self, request: pb.AuthorizeCredentialRequest,
                                  context: grpc.aio.ServicerContext
                                  ) -> pb.AuthorizeCredentialResponse:
        service = self._remote()
        sad, expires = await self._ctx.run(
            service.authorize, request.signer_id, request.credential_id, list(request.hashes),
            request.hash_algorithm or "sha256", _factor(request.second_factor),
            at=self._ctx.clock())
        return pb.AuthorizeCredentialResponse(sad=sad, expire_time=_timestamp(expires))

    async def StartCredentialApproval(self, request: pb.StartCredentialApprovalRequest,
                                      context: grpc.aio.ServicerContext
                                      ) -> pb.StartCredentialApprovalResponse:
        service = self._remote()
        start = await self._ctx.run(
            service.start_approval, request.signer_id, request.credential_id,
            list(request.hashes), request.hash_algorithm or "sha256", at=self._ctx.clock())
        return pb.StartCredentialApprovalResponse(
            approval_id=start.approval_id, binding_message=start.binding_message,
            approval_code=start.approval_code, expire_time=_timestamp(start.expires_at),
            interval=start.interval)

    async def SignHash(self, request: pb.SignHashRequest,
                       context: grpc.aio.ServicerContext) -> pb.SignHashResponse:
        service = self._remote()
        signatures = await self._ctx.run(
            service.sign_hash, request.signer_id, request.credential_id, request.sad,
            list(request.hashes), request.hash_algorithm or "sha256", at=self._ctx.clock())
        return pb.SignHashResponse(signatures=signatures)

    # ------------------------------------------------------------ documents
    def _signer(self, header: pb.SignDocumentHeader, caller: Caller, request_id: str) -> Signer:
        which = header.WhichOneof("signer")
        if which == "agency_signer":
            found = self._rt.signers.get(header.agency_signer)
            # Another agency's key and no key look the same.
            if found is None or found.agency_code != caller.agency_code:
                raise PermissionDenied("the caller may not sign with this key",
                                       reason="SIGNER_NOT_PERMITTED")
            return found.signer
        if which == "credential":
            if "documents.remote_sign" not in caller.scopes:
                raise PermissionDenied("signing with an official's credential needs the "
                                       "documents.remote_sign scope",
                                       metadata={"missing_scopes": "documents.remote_sign"})
            cred = header.credential
            factor = _factor(cred.second_factor)
            if factor.kind == "approval":
                raise InvalidArgument(
                    "an approval covers hashes the caller computed: sign with "
                    "StartCredentialApproval, AuthorizeCredential and SignHash",
                    reason="APPROVAL_NEEDS_HASHES", metadata={"field": "second_factor"})
            client = LocalCscClient(self._remote(caller, request_id), cred.signer_id,
                                    self._ctx.clock)
            return RemoteSigner(client, cred.credential_id, lambda: factor)
        raise InvalidArgument("name a signer: agency_signer or credential",
                              reason="SIGNER_REQUIRED", metadata={"field": "signer"})

    def _appearance(self, header: pb.SignDocumentHeader, at: dt.datetime,
                    document: IO[bytes]) -> VisibleSignature | None:
        if not header.HasField("appearance"):
            return None
        appearance = header.appearance
        kind = appearance.WhichOneof("kind")
        if kind == "person":
            p = appearance.person
            return person_signature(page=p.page, box=_box(p.box), title=p.title,
                                    full_name=p.full_name, image_png=p.signature_png,
                                    font=self._rt.font)
        if kind == "seal":
            s = appearance.seal
            plan = person_layout(_box(s.person_box),
                                 (s.signature_width_px, s.signature_height_px))
            return agency_seal(page=s.page, box=seal_box(plan, s.diameter_mm or 36),
                               seal_png=s.seal_png)
        if kind == "electronic_copy":
            c = appearance.electronic_copy
            _, _, right, top = page_box(document, 0)  # top right of page 1, whatever its size
            return electronic_copy(page_width=right, page_height=top, copying_body=c.copying_body,
                                   at=at, font=self._rt.font,
                                   copy_type=c.copy_type or "Bản sao điện tử")
        return None

    def _sign(self, header: pb.SignDocumentHeader, source: IO[bytes], output: IO[bytes],
              signer: Signer) -> pb.SignDocumentResult:
        at = self._ctx.clock()
        fmt = header.format
        if fmt == pb.PDF:
            level = _PADES[header.level]
            certify = DocMdp(header.certification) if header.certification else None
            profile = self._rt.signers.get(header.agency_signer) \
                if header.WhichOneof("signer") == "agency_signer" else None
            first = DocMdp(profile.certify_first) if profile and profile.certify_first else None
            result = sign_pdf(source, output, signer, at=at, options=PadesOptions(
                level=level, reason=header.reason or None, location=header.location or None,
                certify=certify, certify_if_first=first,
                appearance=self._appearance(header, at, source)),
                timestamps=self._rt.tsa, trust=self._rt.trust)
            return pb.SignDocumentResult(signature_id=result.field_name,
                                         level=_LEVEL_OUT[result.level],
                                         signing_time=_timestamp(at), warnings=result.warnings)
        if fmt == pb.CMS_DETACHED:
            if header.level in (pb.B_LT, pb.B_LTA):
                raise InvalidArgument("detached CMS signatures are B-B or B-T",
                                      reason="UNSUPPORTED_LEVEL", metadata={"field": "level"})
            cades = CadesLevel.B_T if header.level == pb.B_T else CadesLevel.B_B
            output.write(sign_detached(source, signer, at=at, level=cades,
                                       timestamps=self._rt.tsa))
            return pb.SignDocumentResult(signature_id="cms", level=header.level or pb.B_B,
                                         signing_time=_timestamp(at))
        if fmt == pb.XML:
            key = getattr(signer, "key", None)
            if key is None:
                raise InvalidArgument("XML signatures are made with an agency key",
                                      reason="UNSUPPORTED_SIGNER", metadata={"field": "signer"})
            xml = header.xml
            signed = XmlDsigSigner(key, [signer.certificate, *signer.chain]).sign_xml(
                source.read(), signing_time=at, reference_id=xml.reference_id or None,
                signature_id=xml.signature_id or "signature",
                signature_parent=xml.signature_parent)
            output.write(signed)
            return pb.SignDocumentResult(signature_id=xml.signature_id or "signature",
                                         level=pb.B_B, signing_time=_timestamp(at))
        raise InvalidArgument("format must be PDF, CMS_DETACHED or XML", reason="FORMAT_REQUIRED",
                              metadata={"field": "format"})

    async def SignDocument(self, request_iterator: AsyncIterator[pb.SignDocumentRequest],
                           context: grpc.aio.ServicerContext
                           ) -> AsyncIterator[pb.SignDocumentResponse]:
        header, source = await _spool(request_iterator, self._limit)
        output = tempfile.SpooledTemporaryFile(max_size=SPOOL)  # noqa: SIM115
        try:
            if header.WhichOneof("signer") == "credential":  # reads the database
                signer = await self._ctx.run(self._signer, header, current_caller(),
                                             current_call().request_id)
            else:
                signer = self._signer(header, current_caller(), current_call().request_id)
            result = await run_budgeted(self._ctx, context, self._rt.config.budget, header.format,
                                        source, self._sign, header, source, output, signer)
            source.close()
            async for response in self._send(output, result, pb.SignDocumentResponse):
                yield response
        finally:
            source.close()
            output.close()

    async def _send(self, output: IO[bytes], result: Any, response: Any) -> AsyncIterator[Any]:
        """``output`` in chunks of ``response`` messages, the last one carrying ``result`` with
        the size and SHA-256 of what was sent (also in the call's audit event)."""
        output.seek(0)
        digest = hashlib.sha256()
        size = 0
        in_memory = not getattr(output, "_rolled", True)  # small outputs: no thread hop

        async def read() -> bytes:
            return output.read(CHUNK) if in_memory else await self._ctx.run(output.read, CHUNK)

        # One chunk ahead, so that the last one goes out with the result.
        chunk = await read()
        while True:
            following = await read() if chunk else b""
            digest.update(chunk)
            size += len(chunk)
            if not following:
                break
            yield response(chunk=chunk)
            chunk = following
        result.size, result.sha256 = size, digest.hexdigest()
        # In the call's audit event (committed before this last message goes out): a repeated
        # call that signed twice shows as two events, and the caller's result names its own.
        current_call().audit_extra["result_sha256"] = result.sha256
        yield response(chunk=chunk, result=result)

    def _extend(self, header: pb.ExtendDocumentHeader, source: IO[bytes],
                output: IO[bytes]) -> pb.ExtendDocumentResult:
        if self._rt.tsa is None:
            raise FailedPrecondition("no time-stamping authority is configured",
                                     reason="TSA_NOT_CONFIGURED")
        done = extend_ltv(source, output, timestamps=self._rt.tsa, trust=self._rt.trust,
                          at=self._ctx.clock(), hash_algorithm=header.hash_algorithm or "sha256")
        return pb.ExtendDocumentResult(timestamp_time=_timestamp(done.timestamp_time),
                                       valid_until=_timestamp(done.valid_until),
                                       signatures=done.signatures)

    async def ExtendDocument(self, request_iterator: AsyncIterator[pb.ExtendDocumentRequest],
                             context: grpc.aio.ServicerContext
                             ) -> AsyncIterator[pb.ExtendDocumentResponse]:
        header, source = await _spool(request_iterator, self._limit)
        output = tempfile.SpooledTemporaryFile(max_size=SPOOL)  # noqa: SIM115
        try:
            result = await self._ctx.run(self._extend, header, source, output)
            source.close()
            async for response in self._send(output, result, pb.ExtendDocumentResponse):
                yield response
        finally:
            source.close()
            output.close()

    def _verify(self, header: pb.VerifyDocumentHeader, source: IO[bytes]) -> ValidationReport:
        at = self._ctx.clock()
        if header.format == pb.PDF:
            return validate_pdf(source, trust=self._rt.trust, at=at)
        if header.format == pb.CMS_DETACHED:
            if not header.detached_signature:
                raise InvalidArgument("a detached signature is required",
                                      reason="SIGNATURE_REQUIRED",
                                      metadata={"field": "detached_signature"})
            return validate_cms(header.detached_signature, source, trust=self._rt.trust, at=at)
        if header.format == pb.XML:
            expected = _expected_signer(header.expected_signer) \
                if header.HasField("expected_signer") else None
            return validate_xml(source.read(), trust=self._rt.trust, at=at,
                                expected_signer=expected)
        raise InvalidArgument("format must be PDF, CMS_DETACHED or XML", reason="FORMAT_REQUIRED",
                              metadata={"field": "format"})

    async def VerifyDocument(self, request_iterator: AsyncIterator[pb.VerifyDocumentRequest],
                             context: grpc.aio.ServicerContext) -> pb.VerifyDocumentResponse:
        header, source = await _spool(request_iterator, self._limit)
        include_signed_data = header.include_signed_data
        try:
            report = await run_budgeted(self._ctx, context, self._rt.config.budget,
                                        header.format, source, self._verify, header, source)
        finally:
            source.close()
        current_call().audit_extra.update({"indication": report.indication.value,
                                           "document_sha256": report.document_sha256})
        response = pb.VerifyDocumentResponse(
            indication=_INDICATION[report.indication], document_sha256=report.document_sha256,
            report_json=report.to_json(), report_text=report.to_text(),
            etsi_reports=list(report.etsi_xml_reports))
        for sig in report.signatures:
            item = pb.SignatureResult(
                id=sig.id, indication=_INDICATION[sig.indication],
                sub_indication=sig.sub_indication or "",
                signing_time_source=sig.signing_time_source.value, format=sig.format,
                messages=list(sig.messages))
            for element in sig.signed_elements:
                item.signed_elements.append(pb.SignedElement(
                    uri=element.uri, path=element.path, id=element.id or "",
                    digest_algorithm=element.digest_algorithm, digest=element.digest,
                    sha256=element.sha256))
            if sig.signed_data is not None and include_signed_data:
                item.signed_data = sig.signed_data
            if sig.signing_time is not None:
                item.signing_time.CopyFrom(_timestamp(sig.signing_time))
            if sig.revoked_at is not None:
                item.revoked_at.CopyFrom(_timestamp(sig.revoked_at))
            item.changes.extend(pb.DocumentChange(kind=c.kind, name=c.name or "",
                                                  old_value=c.old or "", new_value=c.new or "")
                                for c in sig.changes)
            if sig.signer is not None:
                s = sig.signer
                item.signer.CopyFrom(pb.SignerIdentity(
                    name=s.name, title=s.title or "", organisation=s.organisation or "",
                    agency_code=s.agency_code or "", subject=s.subject, issuer=s.issuer,
                    serial_number=s.serial_number, certificate_sha256=s.certificate_sha256))
            response.signatures.append(item)
        return response

