"""``vnegov.payments.v1.PaymentsService``: converts proto <-> domain and calls the stores.

Callers act for their own agency: a payment belongs to the caller's agency code, and a caller
sees only its agency's payments in the provinces it may act in (others look absent: the same
PERMISSION_DENIED as a payment that does not exist, never a hint). Statements, reconciliation
runs, their operations and the exceptions queue are the agency's too: a statement for another
agency's account is refused, a run considers only the caller's accounts and payments, and
another agency's exceptions and operations are NOT_FOUND. National callers (every province)
see every agency's."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import TYPE_CHECKING, Any

import grpc
from google.protobuf import timestamp_pb2

import payments.errors as pe
from payments.accounts import AccountKind, CollectionAccount
from payments.channels import vnpay
from payments.channels.vietqr import vietqr_for_payment
from payments.fees import FeeKind, Quote
from payments.money import local_date
from payments.payments import Payer, Payment, PaymentState
from payments.receipts import ReceiptKind, ReceiptLine, qr_text
from server.auth.caller import ALL_PROVINCES
from server.errors import InvalidArgument, PermissionDenied
from server.modules import GrpcService
from server.payments.receipts_store import StoredReceipt
from server.rpc.paging import decode_page_token, encode_page_token, page_size, query_digest
from server.rpc.state import current_call, current_caller
from signing.ca.revocation import RevocationReason
from vnegov.payments.v1 import payments_pb2 as pb
from vnegov.payments.v1 import payments_pb2_grpc

if TYPE_CHECKING:
    from server.payments.module import PaymentsModule
    from signing.ca.status import StatusIndex

__all__ = ["PaymentsServicer", "service"]

_KIND = {FeeKind.PHI: pb.PHI, FeeKind.LE_PHI: pb.LE_PHI}


def _ts(value: dt.datetime) -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.FromDatetime(value.astimezone(dt.UTC))
    return ts


def _quote(q: Quote) -> pb.Quote:
    return pb.Quote(procedure_code=q.procedure_code, procedure_name=q.procedure_name,
                    date=q.on.isoformat(), province_code=q.province, total=q.total,
                    lines=[pb.QuoteLine(item_code=x.item_code, name=x.name, kind=_KIND[x.kind],
                                        collector=x.collector, base_amount=x.base_amount,
                                        amount=x.amount, reductions=list(x.reductions))
                           for x in q.lines])


def _payment_id(name: str) -> str:
    prefix, _, pid = name.partition("/")
    if prefix != "payments" or not pid or "/" in pid:
        raise InvalidArgument("payment names look like payments/{id}", metadata={"field": "name"})
    return pid


class PaymentsServicer(payments_pb2_grpc.PaymentsServiceServicer):
    def __init__(self, module: PaymentsModule) -> None:
        self.m = module
        self.ctx = module.ctx
        self._ops: set[asyncio.Task[None]] = set()

    def _payment(self, p: Payment, payload: str = "") -> pb.Payment:
        return pb.Payment(
            name=p.name, agency_code=p.agency_code, province_code=p.province_code,
            procedure_code=p.procedure_code, dossier_code=p.dossier_code,
            payer=pb.Payer(name=p.payer.name, tax_code=p.payer.tax_code,
                           address=p.payer.address, id_number=p.payer.id_number,
                           email=p.payer.email),
            lines=[pb.QuoteLine(item_code=x.item_code, name=x.name, kind=_KIND[x.kind],
                                collector=x.collector, amount=x.amount) for x in p.lines],
            state=p.state.value, amount_due=p.amount_due, collected=p.collected,
            refunded=p.refunded, reference=p.reference, channel=p.channel,
            vietqr_payload=payload, create_time=_ts(p.created_at), expire_time=_ts(p.expires_at))

    @staticmethod
    def _scope() -> str | None:
        """The agency the caller acts within, or None for a national caller."""
        caller = current_caller()
        return None if ALL_PROVINCES in caller.provinces else caller.agency_code

    async def _require_account(self) -> None:
        """A scoped caller's agency needs a collection account for statements, channel lists
        and reconciliation runs: it has no money otherwise (NOT_FOUND, like the account)."""
        if self._scope() is None:
            return
        try:
            await self.ctx.run(self.m.store.account, current_caller().agency_code)
        except pe.FailedPrecondition:
            raise pe.NotFound("the agency has no registered collection account") from None

    async def _own(self, name: str) -> Payment:
        """The caller's own payment (or any, for a national caller). A payment of another agency
        and a payment that does not exist get the same PERMISSION_DENIED (AIP-211): no hint
        that it exists."""
        caller = current_caller()
        try:
            p = await self.ctx.run(self.m.store.get, _payment_id(name))
        except pe.NotFound:
            p = None
        if p is None or (self._scope() is not None and (
                p.agency_code != caller.agency_code or not caller.may_act_in(p.province_code))):
            raise PermissionDenied("the caller may not access this payment",
                                   reason="OUT_OF_JURISDICTION")
        return p

    @staticmethod
    def _account(a: CollectionAccount) -> pb.CollectionAccount:
        return pb.CollectionAccount(
            name=f"collectionAccounts/{a.agency_code}", agency_code=a.agency_code,
            bank_bin=a.bank_bin, account_number=a.account_number, account_name=a.account_name,
            kind=a.kind.value, treasury_office_code=a.treasury_office_code,
            budget_unit_code=a.budget_unit_code)

    async def SetCollectionAccount(self, request: pb.SetCollectionAccountRequest,
                                   context: grpc.aio.ServicerContext) -> pb.CollectionAccount:
        caller = current_caller()
        a = request.account
        if a.agency_code and a.agency_code != caller.agency_code:
            raise PermissionDenied("an agency registers its own account",
                                   reason="OUT_OF_JURISDICTION")
        try:
            kind = AccountKind(a.kind or "bank")
        except ValueError:
            raise InvalidArgument("kind must be bank or state_treasury",
                                  metadata={"field": "account.kind"}) from None
        account = CollectionAccount(caller.agency_code, a.bank_bin, a.account_number,
                                    a.account_name, kind, a.treasury_office_code,
                                    a.budget_unit_code)
        await self.ctx.run(self.m.store.register_account, account, actor=caller.audit_name,
                           request_id=current_call().request_id, now=self.ctx.clock())
        return self._account(account)

    async def GetCollectionAccount(self, request: pb.GetCollectionAccountRequest,
                                   context: grpc.aio.ServicerContext) -> pb.CollectionAccount:
        caller = current_caller()
        try:
            account = await self.ctx.run(self.m.store.account, caller.agency_code)
        except pe.FailedPrecondition:
            raise pe.NotFound("the agency has no registered collection account") from None
        return self._account(account)

    async def QuoteFees(self, request: pb.QuoteFeesRequest, context: grpc.aio.ServicerContext
                        ) -> pb.Quote:
        current_caller().require_province(request.province_code)
        try:
            on = dt.date.fromisoformat(request.date) if request.date else \
                local_date(self.ctx.clock())
        except ValueError:
            raise InvalidArgument("date must be YYYY-MM-DD", metadata={"field": "date"}) from None
        q = await self.ctx.run(self.m.store.quote, request.procedure_code,
                               province=request.province_code, on=on)
        return _quote(q)

    async def CreatePayment(self, request: pb.CreatePaymentRequest,
                            context: grpc.aio.ServicerContext) -> pb.Payment:
        caller = current_caller()
        caller.require_province(request.province_code)
        if request.channel not in ("vietqr", "platform", "gateway"):
            raise InvalidArgument("channel must be vietqr, platform or gateway",
                                  metadata={"field": "channel"})
        now = self.ctx.clock()
        payer = Payer(request.payer.name, request.payer.tax_code, request.payer.address,
                      request.payer.id_number, request.payer.email)
        # Every channel pays into the agency's collection account: none, no payment.
        account = await self.ctx.run(self.m.store.account, caller.agency_code)
        p = await self.ctx.run(
            self.m.store.create_payment, caller=caller.audit_name,
            request_id=request.request_id, agency_code=caller.agency_code,
            province=request.province_code, procedure_code=request.procedure_code,
            dossier_code=request.dossier_code, payer=payer, channel=request.channel, now=now)
        payload = vietqr_for_payment(account, amount=p.amount_due, reference=p.reference,
                                     description=p.dossier_code) if p.channel == "vietqr" else ""
        if p.state is PaymentState.CREATED:
            url = ""
            cfg = self.m.config
            if p.channel == "platform" and self.m.platform is not None:
                url = await self.ctx.run(self.m.platform.init, p, account, now=now)
            elif p.channel == "gateway" and cfg.gateway_tmn_code:
                url = vnpay.payment_url(
                    cfg.gateway_url, tmn_code=cfg.gateway_tmn_code, secret=cfg.gateway_secret,
                    reference=p.reference, amount=p.amount_due,
                    description=f"Thanh toan ho so {p.dossier_code}",
                    return_url=self.ctx.config.server.public_url.rstrip("/") +
                    "/payments/gateway/return", ip="127.0.0.1", at=now, expires=p.expires_at)
            p = await self.ctx.run(self.m.store.open, p.id, channel_url=url,
                                   actor=caller.audit_name,
                                   request_id=current_call().request_id, now=now)
        message = self._payment(p, payload)
        message.payment_url = await self.ctx.run(self.m.store.channel_url, p.id)
        return message

    async def GetPayment(self, request: pb.GetPaymentRequest, context: grpc.aio.ServicerContext
                         ) -> pb.Payment:
        return self._payment(await self._own(request.name))

    async def ListPayments(self, request: pb.ListPaymentsRequest,
                           context: grpc.aio.ServicerContext) -> pb.ListPaymentsResponse:
        caller = current_caller()
        size = page_size(request.page_size)
        state = ""
        if request.filter:
            field, _, value = request.filter.partition("=")
            if field.strip() != "state":
                raise InvalidArgument("only `state = \"...\"` filters are supported",
                                      reason="INVALID_FILTER", metadata={"field": "filter"})
            state = value.strip().strip('"')
        digest = query_digest("ListPayments", request.filter, caller.agency_code)
        cursor = decode_page_token(request.page_token, digest)
        rows = await self.ctx.run(self.m.store.list_payments, agency_code=caller.agency_code,
                                  after=cursor.decode() if cursor else "", size=size,
                                  state=state or None)
        response = pb.ListPaymentsResponse(payments=[self._payment(p) for p in rows[:size]])
        if len(rows) > size:
            response.next_page_token = encode_page_token(rows[size - 1].id.encode(), digest)
        return response

    async def RefundPayment(self, request: pb.RefundPaymentRequest,
                            context: grpc.aio.ServicerContext) -> pb.Refund:
        caller = current_caller()
        p = await self._own(request.payment)
        name = await self.ctx.run(self.m.store.refund, caller=caller.audit_name,
                                  request_id=request.request_id, payment_id=p.id,
                                  amount=request.amount, reason=request.reason,
                                  now=self.ctx.clock(), agency_code=p.agency_code)
        after = await self.ctx.run(self.m.store.get, p.id)
        return pb.Refund(name=name, amount=request.amount, payment=self._payment(after))

    async def ListReceipts(self, request: pb.ListReceiptsRequest,
                           context: grpc.aio.ServicerContext) -> pb.ListReceiptsResponse:
        p = await self._own(request.parent)
        receipts = await self.ctx.run(self.m.receipts.for_payment, p.id)
        return pb.ListReceiptsResponse(receipts=[self._receipt(r) for r in receipts])

    def _receipt(self, r: StoredReceipt) -> pb.Receipt:
        return pb.Receipt(
            name=r.name, template=r.data.template, series=r.data.series,
            number=f"{r.data.number:07d}", issue_time=_ts(r.data.issued_at), total=r.data.total,
            collector=r.data.collector.agency_code, kind=r.data.kind.value, status=r.status,
            xml=r.xml, qr_text=qr_text(r.qr_token, self.m.qr_page_url()) if r.qr_token else "")

    async def _own_receipt(self, name: str) -> StoredReceipt:
        parts = name.split("/")
        if len(parts) != 4 or parts[0] != "payments" or parts[2] != "receipts":
            raise InvalidArgument("receipt names look like payments/{id}/receipts/{receipt}",
                                  metadata={"field": "name"})
        await self._own(f"payments/{parts[1]}")
        r = await self.ctx.run(self.m.receipts.get, parts[3])
        if r.payment_id != parts[1]:
            raise pe.NotFound("no such receipt")
        return r

    async def CorrectReceipt(self, request: pb.CorrectReceiptRequest,
                             context: grpc.aio.ServicerContext) -> pb.Receipt:
        caller = current_caller()
        original = await self._own_receipt(request.name)
        try:
            kind = ReceiptKind(request.kind)
        except ValueError:
            raise InvalidArgument("kind must be replacement or adjustment",
                                  metadata={"field": "kind"}) from None
        kinds = {pb.PHI: FeeKind.PHI, pb.LE_PHI: FeeKind.LE_PHI}
        if not request.lines or any(x.kind not in kinds for x in request.lines):
            raise InvalidArgument("lines need an item, a name, a kind and an amount",
                                  metadata={"field": "lines"})
        lines = tuple(ReceiptLine(x.item_code, x.name, kinds[x.kind], x.amount)
                      for x in request.lines)
        new = await self.ctx.run(
            self.m.receipts.correct_idempotent, original.id, kind=kind, lines=lines,
            reason=request.reason, actor=caller.audit_name, request_id=request.request_id,
            now=self.ctx.clock())
        self.m.wake()
        return self._receipt(new)

    async def CancelReceipt(self, request: pb.CancelReceiptRequest,
                            context: grpc.aio.ServicerContext) -> pb.Receipt:
        caller = current_caller()
        original = await self._own_receipt(request.name)
        await self.ctx.run(self.m.receipts.cancel, original.id, reason=request.reason,
                           actor=caller.audit_name, request_id=current_call().request_id,
                           now=self.ctx.clock())
        self.m.wake()
        return self._receipt(await self.ctx.run(self.m.receipts.get, original.id))

    async def VerifyReceipt(self, request: pb.VerifyReceiptRequest,
                            context: grpc.aio.ServicerContext) -> pb.VerifyReceiptResponse:
        from payments.receipts.verification import (
            ReceiptNotVerified,
            read_signed_receipt,
            verify_receipt,
        )

        now = self.ctx.clock()
        asked: dt.datetime | None = None
        if request.HasField("validation_time"):
            try:
                asked = request.validation_time.ToDatetime(dt.UTC)
            except (ValueError, OverflowError, OSError):
                raise InvalidArgument("validation_time is not a valid time",
                                      metadata={"field": "validation_time"}) from None
        roots = list(self.m.qr_roots)
        if not roots:
            raise pe.FailedPrecondition("no national root is configured for receipts "
                                     "(payments.receipt_qr_roots_file)",
                                     reason="NO_TRUST_ANCHORS")
        statuses: StatusIndex | None = self.ctx.registry.get("certificate_status")

        def work() -> pb.VerifyReceiptResponse:
            def refused(reason: str, message: str, at: dt.datetime) -> pb.VerifyReceiptResponse:
                return pb.VerifyReceiptResponse(valid=False, reason=reason, message=message,
                                                validation_time=_ts(at))

            try:  # the signature and the seal's binding first: what the receipt is
                signed = read_signed_receipt(request.xml)
            except ReceiptNotVerified as exc:
                return refused(exc.reason, exc.message, asked or now)
            # This register's copy of the same signed data proves when the receipt existed:
            # judged then, it stays valid after its seal expired, was replaced, or was revoked
            # later. Another receipt registered under its number and collecting body means
            # that this one is not the receipt issued.
            entry = self.m.receipts.registered(signed)
            if entry is not None and not entry.same:
                return refused("REGISTER_MISMATCH", "this server's register holds another "
                               "receipt under this number for this collecting body",
                               asked or now)
            proven = entry.registered_at if entry is not None else None
            at = asked or proven or now
            try:
                verified = verify_receipt(request.xml, trust=roots, at=at)
            except ReceiptNotVerified as exc:
                return refused(exc.reason, exc.message, at)
            seal = verified.signer
            state = statuses.state_of(seal.issuer, seal.serial_number) if statuses else None
            revocation = state.revocation if state is not None else None
            seal_status = "UNKNOWN" if state is None else "GOOD" if revocation is None else \
                "ON_HOLD" if revocation.reason is RevocationReason.CERTIFICATE_HOLD else "REVOKED"
            if revocation is not None:
                # Since when the key may not be trusted: the revocation, or the earlier time the
                # key is known to have been compromised.
                since = min(revocation.revoked_at, revocation.invalidity_date
                            or revocation.revoked_at)
                if proven is None or proven >= since:
                    what = "on hold" if seal_status == "ON_HOLD" else "revoked"
                    return refused(f"SEAL_{seal_status}",
                                   f"the seal's certificate was {what} on {since:%Y-%m-%d %H:%M} "
                                   f"UTC ({revocation.reason.value}), and nothing proves that "
                                   "the receipt existed before", at)
            register_status = entry.receipt.status.upper() if entry is not None else ""
            if register_status == "CANCELLED":
                return refused("RECEIPT_CANCELLED",
                               "the receipt was cancelled: its cancellation notice is registered",
                               at)
            r = verified.receipt
            answer = pb.VerifyReceiptResponse(
                valid=True, template=r.template, series=r.series, number=f"{r.number:07d}",
                issue_time=_ts(r.issued_at), total=r.total,
                collector_agency_code=r.collector.agency_code,
                collector_tax_code=r.collector.tax_code, collector_name=r.collector.name,
                payer_name=r.payer.name, payment_id=r.payment_id,
                signer_subject=verified.signer_subject,
                document_sha256=verified.document_sha256, validation_time=_ts(at),
                seal_status=seal_status, register_status=register_status)
            if revocation is not None:
                answer.seal_revoked_at.CopyFrom(_ts(revocation.revoked_at))
            return answer

        return await self.ctx.run(work)

    async def ImportStatement(self, request: pb.ImportStatementRequest,
                              context: grpc.aio.ServicerContext) -> pb.ImportStatementResponse:
        caller = current_caller()
        await self._require_account()
        totals = await self.ctx.run(self.m.recon.import_statement, request.content,
                                    fmt=request.format, account=request.account,
                                    actor=caller.audit_name,
                                    request_id=current_call().request_id, now=self.ctx.clock(),
                                    agency=self._scope())
        return pb.ImportStatementResponse(**totals)

    async def CompareChannelList(self, request: pb.CompareChannelListRequest,
                                 context: grpc.aio.ServicerContext
                                 ) -> pb.CompareChannelListResponse:
        caller = current_caller()
        try:
            first = dt.date.fromisoformat(request.first_day)
            last = dt.date.fromisoformat(request.last_day or request.first_day)
        except ValueError:
            raise InvalidArgument("days must be YYYY-MM-DD",
                                  metadata={"field": "first_day"}) from None
        await self._require_account()
        counts = await self.ctx.run(self.m.recon.compare_channel_list, request.content,
                                    channel=request.channel, first_day=first, last_day=last,
                                    actor=caller.audit_name,
                                    request_id=current_call().request_id, now=self.ctx.clock(),
                                    agency=self._scope())
        return pb.CompareChannelListResponse(**counts)

    async def Reconcile(self, request: pb.ReconcileRequest, context: grpc.aio.ServicerContext
                        ) -> pb.Operation:
        caller = current_caller()
        as_of = request.as_of.ToDatetime(dt.UTC) if request.HasField("as_of") else \
            self.ctx.clock()
        scope = self._scope()
        await self._require_account()
        # A durable job: any replica runs it, and another resumes it if that one dies.
        op_id = await self.ctx.run(self.m.submit_reconciliation, as_of=as_of,
                                   actor=caller.audit_name, now=self.ctx.clock(), agency=scope)
        return pb.Operation(name=f"operations/{op_id}", done=False)

    async def GetOperation(self, request: pb.GetOperationRequest,
                           context: grpc.aio.ServicerContext) -> pb.Operation:
        prefix, _, op_id = request.name.partition("/")
        if prefix != "operations" or not op_id:
            raise InvalidArgument("operation names look like operations/{id}")
        row = await self.ctx.run(self.m.recon.operation, op_id, agency=self._scope())
        return pb.Operation(name=request.name, done=row.state != "running",
                            progress=row.progress, total=row.total,
                            result_json=row.result_json, error=row.error)

    def _exception(self, row: Any) -> pb.ReconciliationException:
        return pb.ReconciliationException(
            name=f"exceptions/{row.id}", outcome=row.outcome, amount=row.amount,
            line_keys=row.line_keys.split(), payment_ids=row.payment_ids.split(), note=row.note,
            state=row.state, resolution=row.resolution)

    async def ListExceptions(self, request: pb.ListExceptionsRequest,
                             context: grpc.aio.ServicerContext) -> pb.ListExceptionsResponse:
        size = page_size(request.page_size)
        scope = self._scope()
        digest = query_digest("ListExceptions", request.state, scope or "*")
        cursor = decode_page_token(request.page_token, digest)
        after = int.from_bytes(cursor, "big") if cursor else 0
        rows = await self.ctx.run(self.m.recon.exceptions, state=request.state or "open",
                                  after=after, size=size, agency=scope)
        response = pb.ListExceptionsResponse(exceptions=[self._exception(r) for r in rows[:size]])
        if len(rows) > size:
            response.next_page_token = encode_page_token(rows[size - 1].id.to_bytes(8, "big"),
                                                         digest)
        return response

    async def ResolveException(self, request: pb.ResolveExceptionRequest,
                               context: grpc.aio.ServicerContext) -> pb.ReconciliationException:
        caller = current_caller()
        prefix, _, raw = request.name.partition("/")
        if prefix != "exceptions" or not raw.isdigit():
            raise InvalidArgument("exception names look like exceptions/{id}")
        payment = _payment_id(request.payment) if request.payment else ""
        row = await self.ctx.run(self.m.recon.resolve, int(raw), action=request.action,
                                 payment_id=payment, actor=caller.audit_name,
                                 request_id=current_call().request_id, now=self.ctx.clock(),
                                 agency=self._scope())
        return self._exception(row)


def service(module: PaymentsModule) -> GrpcService:
    return GrpcService("vnegov.payments.v1.PaymentsService", PaymentsServicer(module),
                       payments_pb2_grpc.add_PaymentsServiceServicer_to_server)
