"""HTTP endpoints of the payments module: channel callbacks (verified before they touch state),
the receipt status lookup behind the receipts' QR codes, and payment QR images.

    POST /payments/platform/callback      national payment platform confirmation (JSON)
    GET  /payments/gateway/ipn            VNPay-style IPN (query string)
    POST /payments/bank/notification      bank credit notification (JSON, HMAC-SHA256)
    GET  /payments/receipts/verify        receipt status (k, s, n and h, the SHA-256 of the signed
                                          XML, hex: without h nothing is answered)
    GET  /payments/receipts/check         the offline QR verification page (payments/receipts/
                                          qr_page.py): the receipts' signed QR codes open it
    GET  /payments/receipts/{id}.pdf      the receipt's PDF rendition (signed XML attached)
    GET  /payments/{id}/qr.png            the VietQR image of a payment
"""

from __future__ import annotations

import hmac
import json
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

import payments.errors as pe
from payments.channels import national_platform as np
from payments.channels import vnpay
from payments.channels.vietqr import SIGNATURE_HEADER, parse_bank_notification, qr_png, vietqr_for_payment
from payments.receipts.signing import document_digest
from server.payments.store import ConfirmOutcome

if TYPE_CHECKING:
    from server.payments.module import PaymentsModule

__all__ = ["routes"]

_PLATFORM_ANSWERS = {
    ConfirmOutcome.APPLIED: np.ANSWER_OK, ConfirmOutcome.FAILED: np.ANSWER_OK,
    ConfirmOutcome.ALREADY_CONFIRMED: np.ANSWER_ALREADY_CONFIRMED,
    ConfirmOutcome.UNKNOWN_REFERENCE: np.ANSWER_NOT_FOUND,
    ConfirmOutcome.HELD: np.ANSWER_BAD_AMOUNT,
}
_IPN_ANSWERS = {
    ConfirmOutcome.APPLIED: vnpay.IPN_OK, ConfirmOutcome.FAILED: vnpay.IPN_OK,
    ConfirmOutcome.ALREADY_CONFIRMED: vnpay.IPN_ALREADY_CONFIRMED,
    ConfirmOutcome.UNKNOWN_REFERENCE: vnpay.IPN_NOT_FOUND,
    ConfirmOutcome.HELD: vnpay.IPN_INVALID_AMOUNT,
}


def routes(module: PaymentsModule) -> list[BaseRoute]:
    cfg, ctx = module.config, module.ctx

    def rid(request: Request) -> str:
        return str(request.scope.get("state", {}).get("request_id", "http"))

    async def platform_callback(request: Request) -> Response:
        now = ctx.clock()
        try:
            message: Any = json.loads(await request.body())
            cb = np.parse_callback(message, secret=cfg.platform_secret,
                                   partner_code=cfg.platform_partner_code, now=now,
                                   window=module.callback_window)
        except (ValueError, pe.CallbackRejected) as exc:
            await module.audit_rejected("platform", getattr(exc, "detail", "MALFORMED"), rid(request))
            answer = np.ANSWER_BAD_HASH
        else:
            result = await ctx.run(module.store.confirm, channel="platform",
                                   transaction_id=cb.transaction_id, reference=cb.reference,
                                   amount=cb.amount, at=cb.at, success=cb.success,
                                   exact_amount=True, request_id=rid(request), now=now)
            answer = _PLATFORM_ANSWERS[result.outcome]
            module.wake()
        return JSONResponse(np.callback_answer(answer, partner_code=cfg.platform_partner_code,
                                               now=now, secret=cfg.platform_secret))

    async def gateway_ipn(request: Request) -> Response:
        now = ctx.clock()
        params = dict(request.query_params)
        try:
            n = vnpay.parse_ipn(params, secret=cfg.gateway_secret, tmn_code=cfg.gateway_tmn_code,
                                now=now, window=module.callback_window)
        except pe.CallbackRejected as exc:
            await module.audit_rejected("gateway", exc.detail, rid(request))
            return JSONResponse(vnpay.IPN_BAD_CHECKSUM)
        result = await ctx.run(module.store.confirm, channel="gateway",
                               transaction_id=n.transaction_no, reference=n.reference,
                               amount=n.amount, at=n.at, success=n.success, exact_amount=True,
                               request_id=rid(request), now=now)
        module.wake()
        return JSONResponse(_IPN_ANSWERS[result.outcome])

    async def bank_notification(request: Request) -> Response:
        now = ctx.clock()
        body = await request.body()
        try:
            account_code = request.query_params.get("agency", "")
            account = await ctx.run(module.store.account, account_code)
            n = parse_bank_notification(body, request.headers.get(SIGNATURE_HEADER, ""),
                                        cfg.bank_notification_secret.encode(), account=account,
                                        now=now)
        except (pe.CallbackRejected, pe.FailedPrecondition) as exc:
            await module.audit_rejected("vietqr", getattr(exc, "detail", exc.reason), rid(request))
            return JSONResponse({"code": "97", "message": "rejected"}, status_code=401)
        reference = await ctx.run(module.store.resolve_reference, n.description)
        result = await ctx.run(module.store.confirm, channel="vietqr",
                               transaction_id=n.transaction_id,
                               reference=reference or f"?{n.transaction_id}",
                               amount=n.amount, at=n.at, success=True, exact_amount=False,
                               request_id=rid(request), now=now)
        module.wake()
        return JSONResponse({"code": "00", "outcome": result.outcome.value})

    async def verify_receipt(request: Request) -> Response:
        """The status of the receipt whose signed XML hashes to ``h``: whoever holds the receipt
        (its QR) learns its status; sequential numbers without the hash learn nothing. The
        parameters' shapes are checked before this runs (server/http/limits.py QUERY_RULES:
        a malformed h is 400) and the route class is rate limited per client."""
        q = request.query_params
        if not q.get("h"):
            return JSONResponse({"error": "h: the receipt's SHA-256 is required"},
                                status_code=400)
        try:
            number = int(q.get("n", ""))
        except ValueError:
            return JSONResponse({"status": "unknown"}, status_code=404)
        found = await ctx.run(module.receipts.find, q.get("k", ""), q.get("s", ""), number)
        if found is None or not hmac.compare_digest(q["h"], document_digest(found.xml)):
            return JSONResponse({"status": "unknown"}, status_code=404)
        return JSONResponse({"status": found.status, "template": found.data.template,
                             "series": found.data.series, "number": f"{number:07d}",
                             "total": found.data.total, "sha256": document_digest(found.xml)})

    async def receipt_pdf(request: Request) -> Response:
        """The PDF rendition; the receipt id (20 random characters) is the capability."""
        from payments.receipts.pdf import render_receipt_pdf

        try:
            found = await ctx.run(module.receipts.get, request.path_params["receipt_id"])
        except pe.PaymentsError:
            return Response(status_code=404)
        url = module.qr_page_url() if found.qr_token else \
            ctx.config.server.public_url.rstrip("/") + "/payments/receipts/verify"
        pdf = await ctx.run(render_receipt_pdf, found.data, found.xml, fonts=module.fonts(),
                            verify_url=url, qr_token=found.qr_token)
        return Response(pdf, media_type="application/pdf", headers={
            "Content-Disposition": f'inline; filename="{found.data.label}.pdf"'})

    page: list[bytes] = []

    async def check_page(request: Request) -> Response:
        """The static verification page (the same bytes for everyone; it asks nothing back)."""
        from payments.receipts.qr_page import verifier_page

        if not page:
            page.append(verifier_page(module.qr_roots, module.seal_certificates))
        return Response(page[0], media_type="text/html; charset=utf-8", headers={
            "Cache-Control": "public, max-age=3600",
            "Content-Security-Policy": "default-src 'none'; script-src 'unsafe-inline'; "
                                       "style-src 'unsafe-inline'; img-src blob: data:; "
                                       "connect-src 'none'; form-action 'none'; base-uri 'none'"})

    async def payment_qr(request: Request) -> Response:
        pid = request.path_params["payment_id"]
        try:
            p = await ctx.run(module.store.get, pid)
            account = await ctx.run(module.store.account, p.agency_code)
        except pe.PaymentsError:
            return Response(status_code=404)
        payload = vietqr_for_payment(account, amount=p.outstanding or p.amount_due,
                                     reference=p.reference, description=p.dossier_code)
        return Response(qr_png(payload), media_type="image/png",
                        headers={"X-VietQR-Payload": payload})

    return [
        Route("/payments/platform/callback", platform_callback, methods=["POST"]),
        Route("/payments/gateway/ipn", gateway_ipn, methods=["GET"]),
        Route("/payments/bank/notification", bank_notification, methods=["POST"]),
        Route("/payments/receipts/verify", verify_receipt, methods=["GET"]),
        Route("/payments/receipts/check", check_page, methods=["GET"]),
        Route("/payments/receipts/{receipt_id}.pdf", receipt_pdf, methods=["GET"]),
        Route("/payments/{payment_id}/qr.png", payment_qr, methods=["GET"]),
    ]
