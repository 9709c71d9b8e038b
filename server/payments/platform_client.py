"""HTTP client of the national payment platform (v1.0.6): INIT and QUERY, JSON over HTTPS.

Used by CreatePayment (INIT returns the payment URL the citizen is sent to) and by the mop-up
worker (QUERY for payments left pending). Answers are verified (``MaXacThuc``) before use.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import httpx

import payments.errors as pe
from payments.accounts import CollectionAccount
from payments.channels import national_platform as np
from payments.payments import ChannelStatus, Payment, StatusQuery

__all__ = ["PlatformClient"]

_STATUS = {"00": ChannelStatus.PAID, "01": ChannelStatus.PENDING, "02": ChannelStatus.FAILED}


class PlatformClient:
    name = "platform"

    def __init__(self, base_url: str, *, partner_code: str, secret: str,
                 timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.partner_code = partner_code
        self.secret = secret
        self.timeout = timeout

    def _post(self, path: str, message: dict[str, Any]) -> dict[str, Any]:
        try:
            response = httpx.post(self.base_url + path, json=message, timeout=self.timeout)
            response.raise_for_status()
            answer: Any = response.json()
        except (httpx.HTTPError, ValueError):
            raise pe.FailedPrecondition("the payment platform is unavailable",
                                        reason="CHANNEL_UNAVAILABLE") from None
        if not isinstance(answer, dict):
            raise pe.FailedPrecondition("the payment platform answered nonsense",
                                        reason="CHANNEL_UNAVAILABLE")
        return answer

    def init(self, payment: Payment, account: CollectionAccount, *, now: dt.datetime) -> str:
        """INIT: register the payment; returns the payment URL."""
        lines = tuple(np.ReceiptLine(line.kind, line.item_code, line.name, line.amount)
                      for line in payment.lines)
        receipt = np.ReceiptInfo(
            procedure_code=payment.procedure_code, service_code=payment.procedure_code,
            agency_code=payment.agency_code, dossier_code=payment.dossier_code,
            account_number=account.account_number, bank_bin=account.bank_bin,
            account_name=account.ascii_name, payer_name=payment.payer.name,
            payer_id=payment.payer.id_number, payer_address=payment.payer.address, lines=lines)
        request = np.InitRequest(self.partner_code, payment.reference, payment.amount_due,
                                 f"Thanh toan ho so {payment.dossier_code}", now, receipt)
        answer = self._post("/init", request.to_message(self.secret))
        if not np.verify_message(answer, "INIT_RESPONSE", self.secret) or \
                answer.get("MaThamChieu") != payment.reference:
            raise pe.FailedPrecondition("the payment platform's answer did not verify",
                                        reason="CHANNEL_UNAVAILABLE")
        if answer.get("MaLoi") != "00":
            raise pe.FailedPrecondition("the payment platform refused the payment",
                                        reason="CHANNEL_REFUSED",
                                        metadata={"code": str(answer.get("MaLoi"))})
        return str(answer.get("UrlThanhToan", ""))

    def query_status(self, reference: str, *, now: dt.datetime) -> StatusQuery:
        answer = self._post("/query", np.query_request(self.partner_code, reference, now,
                                                       self.secret))
        if not np.verify_message(answer, "QUERY_RESPONSE", self.secret) or \
                answer.get("MaThamChieu") != reference:
            return StatusQuery(ChannelStatus.UNKNOWN)
        if answer.get("MaLoi") != "00":
            return StatusQuery(ChannelStatus.UNKNOWN)
        status = _STATUS.get(str(answer.get("TrangThaiGD")), ChannelStatus.UNKNOWN)
        amount = answer.get("SoTien")
        return StatusQuery(status, amount if isinstance(amount, int) else 0,
                           str(answer.get("MaGiaoDich", "")),
                           np.parse_time(str(answer["ThoiGianGD"]))
                           if answer.get("ThoiGianGD") else None)
