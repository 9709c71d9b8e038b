"""The reconciliation papers a finance unit files: the daily or period report of one collection
account, as XLSX and PDF, in Vietnamese (``lang="en"`` for an English rendition).

Contents (terms as in docs/payments.md, "Reconciliation papers"): the collecting unit, the
collection account and its bank, the period, the opening balance, money received (credits),
money paid out (debits), what was matched, what is unmatched both ways (money without a known
payment; payments confirmed by a channel whose money has not arrived), money held pending a
decision (unidentified, duplicated or excess transfers: to apply or refund), the closing balance
computed and as the bank states it, the exceptions with how each was resolved, by whom and when,
and the signature block (Người lập biểu, Kế toán trưởng, Thủ trưởng đơn vị). Amounts are whole
đồng, formatted with ``.`` thousands separators; no internal identifiers are shown.
"""

from __future__ import annotations

import datetime as dt
import io
from dataclasses import dataclass

from payments.errors import InvalidInput
from payments.money import VN_TZ, format_vnd
from payments.receipts.pdf import Fonts, register_fonts

__all__ = ["ExceptionEntry", "ReconciliationPaper", "paper_pdf", "paper_xlsx"]

_OUTCOME_VI = {
    "matched": "Khớp đúng", "amount_mismatch": "Chênh lệch số tiền",
    "duplicate": "Tiền về trùng lặp", "money_without_payment": "Tiền về chưa xác định khoản thu",
    "payment_without_money": "Khoản đã thanh toán chưa nhận được tiền",
    "paid_without_receipt": "Đã thu tiền chưa lập biên lai",
    "unexplained_debit": "Khoản ghi nợ chưa rõ nội dung",
    "awaiting_settlement": "Chờ ngân hàng chuyển tiền",
}
_OUTCOME_EN = {
    "matched": "Matched", "amount_mismatch": "Amount differs", "duplicate": "Duplicated transfer",
    "money_without_payment": "Money without a known payment",
    "payment_without_money": "Paid payment, money not received",
    "paid_without_receipt": "Collected, no receipt issued",
    "unexplained_debit": "Unexplained debit", "awaiting_settlement": "Awaiting settlement",
}
_RESOLUTION_VI = {
    "": "Chưa xử lý", "applied": "Ghi nhận vào khoản thu", "refund": "Hoàn trả người nộp",
    "refunded": "Đã hoàn trả người nộp", "dismissed": "Không phải xử lý (đã giải trình)",
    "written_off": "Xử lý theo quyết định của thủ trưởng", "matched": "Đối chiếu lại khớp đúng",
}
_RESOLUTION_EN = {
    "": "Open", "applied": "Applied to the payment", "refund": "Refund to the payer",
    "refunded": "Refunded to the payer", "dismissed": "Dismissed (explained)",
    "written_off": "Settled by the head's decision", "matched": "Re-matched",
}

_TEXT = {
    "vi": {
        "title_day": "BÁO CÁO ĐỐI CHIẾU SỐ THU PHÍ, LỆ PHÍ QUA TÀI KHOẢN\nNGÀY {d}",
        "title_period": "BÁO CÁO ĐỐI CHIẾU SỐ THU PHÍ, LỆ PHÍ QUA TÀI KHOẢN",
        "period": "Kỳ báo cáo: từ ngày {a} đến ngày {b}",
        "unit": "Đơn vị thu", "unit_code": "Mã đơn vị", "account": "Tài khoản thu",
        "bank": "Mở tại", "currency": "Đơn vị tính: đồng",
        "summary": "I. TỔNG HỢP SỐ LIỆU", "no": "STT", "item": "Chỉ tiêu", "count": "Số món",
        "amount": "Số tiền (đồng)",
        "opening": "Số dư đầu kỳ", "credits": "Số tiền thu vào tài khoản trong kỳ",
        "debits": "Số tiền chi ra khỏi tài khoản trong kỳ",
        "matched": "Trong đó: đã đối chiếu khớp đúng với khoản thu",
        "unmatched_money": "Tiền về chưa xác định được khoản thu",
        "unmatched_payments": "Khoản thu đã xác nhận thanh toán nhưng chưa nhận được tiền",
        "held": "Số tiền tạm giữ chờ xử lý (ghi nhận hoặc hoàn trả)",
        "closing": "Số dư cuối kỳ (tính toán)", "closing_bank": "Số dư cuối kỳ theo sao kê ngân hàng",
        "difference": "Chênh lệch", "exceptions": "II. CÁC KHOẢN CHÊNH LỆCH VÀ KẾT QUẢ XỬ LÝ",
        "kind": "Nội dung chênh lệch", "detail": "Diễn giải", "resolution": "Cách xử lý",
        "by": "Người xử lý", "at": "Ngày xử lý", "none": "Không có khoản chênh lệch.",
        "place_date": "{place}, ngày {d:%d} tháng {d:%m} năm {d:%Y}",
        "preparer": "NGƯỜI LẬP BIỂU", "chief": "KẾ TOÁN TRƯỞNG", "head": "THỦ TRƯỞNG ĐƠN VỊ",
        "sign": "(Ký, họ tên)", "sign_seal": "(Ký, họ tên, đóng dấu)",
        "produced": "Lập lúc {t} (giờ Việt Nam)", "summary_sheet": "Tong hop",
        "exceptions_sheet": "Chenh lech",
    },
    "en": {
        "title_day": "FEE AND CHARGE COLLECTION RECONCILIATION\n{d}",
        "title_period": "FEE AND CHARGE COLLECTION RECONCILIATION",
        "period": "Period: {a} to {b}",
        "unit": "Collecting unit", "unit_code": "Unit code", "account": "Collection account",
        "bank": "Bank", "currency": "Amounts in đồng (VND)",
        "summary": "I. SUMMARY", "no": "No.", "item": "Item", "count": "Count",
        "amount": "Amount (VND)",
        "opening": "Opening balance", "credits": "Money received in the period",
        "debits": "Money paid out in the period",
        "matched": "Of which matched to payments",
        "unmatched_money": "Money without a known payment",
        "unmatched_payments": "Payments confirmed, money not received",
        "held": "Money held pending a decision (apply or refund)",
        "closing": "Closing balance (computed)", "closing_bank": "Closing balance per bank statement",
        "difference": "Difference", "exceptions": "II. EXCEPTIONS AND HOW THEY WERE RESOLVED",
        "kind": "Exception", "detail": "Details", "resolution": "Resolution",
        "by": "Resolved by", "at": "Resolved on", "none": "No exceptions.",
        "place_date": "{place}, {d:%d %B %Y}",
        "preparer": "PREPARED BY", "chief": "CHIEF ACCOUNTANT", "head": "HEAD OF UNIT",
        "sign": "(Signature, full name)", "sign_seal": "(Signature, full name, seal)",
        "produced": "Produced {t} (Vietnam time)", "summary_sheet": "Summary",
        "exceptions_sheet": "Exceptions",
    },
}


@dataclass(frozen=True, slots=True)
class ExceptionEntry:
    outcome: str  # a matching Outcome value
    amount: int
    detail: str  # what a finance officer reads: date, remitter, remittance text (no ids)
    resolution: str = ""  # "" while open
    resolved_by: str = ""
    resolved_at: dt.datetime | None = None


@dataclass(frozen=True)
class ReconciliationPaper:
    unit_name: str
    unit_code: str
    account_number: str
    account_name: str
    bank_name: str
    first_day: dt.date
    last_day: dt.date
    produced_at: dt.datetime
    opening_balance: int
    credits: tuple[int, int]  # (count, amount) of money received
    debits: tuple[int, int]
    matched: tuple[int, int]
    unmatched_money: tuple[int, int]
    unmatched_payments: tuple[int, int]
    held: tuple[int, int]
    bank_closing_balance: int | None = None
    exceptions: tuple[ExceptionEntry, ...] = ()
    place: str = "TP. Hồ Chí Minh"
    signers: tuple[str, str, str] = ("", "", "")  # preparer, chief accountant, head

    @property
    def closing_balance(self) -> int:
        return self.opening_balance + self.credits[1] - self.debits[1]

    def rows(self, lang: str) -> list[tuple[str, str, int | None, int | None]]:
        """Summary rows: (number, label, count, amount)."""
        t = _text(lang)
        rows: list[tuple[str, str, int | None, int | None]] = [
            ("1", t["opening"], None, self.opening_balance),
            ("2", t["credits"], *self.credits),
            ("2.1", t["matched"], *self.matched),
            ("2.2", t["unmatched_money"], *self.unmatched_money),
            ("3", t["debits"], *self.debits),
            ("4", t["closing"], None, self.closing_balance),
        ]
        if self.bank_closing_balance is not None:
            rows += [("5", t["closing_bank"], None, self.bank_closing_balance),
                     ("6", t["difference"], None, self.closing_balance - self.bank_closing_balance)]
        rows += [("7", t["unmatched_payments"], *self.unmatched_payments),
                 ("8", t["held"], *self.held)]
        return rows


def _text(lang: str) -> dict[str, str]:
    if lang not in _TEXT:
        raise InvalidInput("the report language is vi or en", metadata={"field": "lang"})
    return _TEXT[lang]


def _title(paper: ReconciliationPaper, lang: str) -> str:
    t = _text(lang)
    if paper.first_day == paper.last_day:
        return t["title_day"].format(d=paper.first_day.strftime("%d/%m/%Y"))
    return t["title_period"]


def _heading(paper: ReconciliationPaper, lang: str) -> list[str]:
    t = _text(lang)
    return [
        f"{t['unit']}: {paper.unit_name}" + (f" ({t['unit_code']}: {paper.unit_code})"
                                             if paper.unit_code else ""),
        f"{t['account']}: {paper.account_number} – {paper.account_name}",
        f"{t['bank']}: {paper.bank_name}",
        t["period"].format(a=paper.first_day.strftime("%d/%m/%Y"),
                           b=paper.last_day.strftime("%d/%m/%Y")),
        t["currency"],
    ]


def _labels(lang: str) -> tuple[dict[str, str], dict[str, str]]:
    return (_OUTCOME_VI, _RESOLUTION_VI) if lang == "vi" else (_OUTCOME_EN, _RESOLUTION_EN)


def _when(at: dt.datetime | None) -> str:
    return at.astimezone(VN_TZ).strftime("%d/%m/%Y %H:%M") if at else ""


def paper_xlsx(paper: ReconciliationPaper, *, lang: str = "vi") -> bytes:
    """The papers as a workbook: a summary sheet and an exceptions sheet, amounts formatted
    ``#,##0`` (shown with the reader's thousands separator), headers frozen and filtered."""
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Border, Font, Side
    from openpyxl.utils import get_column_letter

    t = _text(lang)
    outcomes, resolutions = _labels(lang)
    bold = Font(bold=True)
    thin = Side(style="thin")
    box = Border(left=thin, right=thin, top=thin, bottom=thin)
    wb = Workbook()
    ws = wb.active
    ws.title = t["summary_sheet"]
    ws.append([_title(paper, lang).replace("\n", " ")])
    ws["A1"].font = Font(bold=True, size=13)
    for text in _heading(paper, lang):
        ws.append([text])
    ws.append([])
    ws.append([t["summary"]])
    ws.cell(row=ws.max_row, column=1).font = bold
    header_row = ws.max_row + 1
    ws.append([t["no"], t["item"], t["count"], t["amount"]])
    for number, label, count, amount in paper.rows(lang):
        ws.append([number, label, count, amount])
    for row in ws.iter_rows(min_row=header_row, max_row=ws.max_row, max_col=4):
        for cell in row:
            cell.border = box
            if cell.row == header_row:
                cell.font = bold
                cell.alignment = Alignment(horizontal="center", wrap_text=True)
            elif cell.column in (3, 4):
                cell.number_format = "#,##0"
    ws.freeze_panes = ws.cell(row=header_row + 1, column=1)
    ws.auto_filter.ref = f"A{header_row}:D{ws.max_row}"
    ws.append([])
    ws.append([t["place_date"].format(place=paper.place, d=paper.produced_at.astimezone(VN_TZ))])
    ws.append([t["preparer"], "", t["chief"], t["head"]])
    for cell in ws[ws.max_row]:
        cell.font = bold
    ws.append([t["sign"], "", t["sign"], t["sign_seal"]])
    ws.append([])
    ws.append([])
    ws.append([paper.signers[0], "", paper.signers[1], paper.signers[2]])
    ws.append([t["produced"].format(t=_when(paper.produced_at))])
    for col, width in zip("ABCD", (10, 62, 12, 22), strict=True):
        ws.column_dimensions[col].width = width

    ex = wb.create_sheet(t["exceptions_sheet"])
    headers = [t["no"], t["kind"], t["amount"], t["detail"], t["resolution"], t["by"], t["at"]]
    ex.append(headers)
    for cell in ex[1]:
        cell.font = bold
        cell.border = box
        cell.alignment = Alignment(horizontal="center", wrap_text=True)
    for index, e in enumerate(paper.exceptions, start=1):
        ex.append([index, outcomes.get(e.outcome, e.outcome), e.amount, e.detail,
                   resolutions.get(e.resolution, e.resolution), e.resolved_by,
                   _when(e.resolved_at)])
        ex.cell(row=ex.max_row, column=3).number_format = "#,##0"
    ex.freeze_panes = "A2"
    ex.auto_filter.ref = f"A1:{get_column_letter(len(headers))}{max(ex.max_row, 1)}"
    for col, width in zip("ABCDEFG", (6, 34, 16, 48, 30, 24, 17), strict=True):
        ex.column_dimensions[col].width = width
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


def paper_pdf(paper: ReconciliationPaper, *, fonts: Fonts, lang: str = "vi") -> bytes:
    """The papers as a PDF (A4 portrait), ready to print, sign and file."""
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.units import mm
    from reportlab.pdfgen import canvas

    t = _text(lang)
    outcomes, resolutions = _labels(lang)
    regular, bold = register_fonts(fonts)
    out = io.BytesIO()
    width, height = A4
    c = canvas.Canvas(out, pagesize=A4, invariant=True)
    c.setTitle(_title(paper, lang).replace("\n", " "))
    c.setAuthor(paper.unit_name)
    left, right = 15 * mm, width - 15 * mm

    c.setFont(bold, 9)
    c.drawString(left, height - 14 * mm, paper.unit_name.upper()[:70])
    y = height - 26 * mm
    c.setFont(bold, 12.5)
    for n, part in enumerate(_title(paper, lang).split("\n")):
        if n:
            y -= 6 * mm
        c.drawCentredString(width / 2, y, part)
    c.setFont(regular, 9)
    for text in _heading(paper, lang):
        y -= 5 * mm
        c.drawString(left, y, text)

    def new_page_if(space: float) -> None:
        nonlocal y
        if y < space:
            c.showPage()
            y = height - 20 * mm

    y -= 9 * mm
    c.setFont(bold, 10)
    c.drawString(left, y, t["summary"])
    y -= 7 * mm
    cols = (left, left + 12 * mm, right - 42 * mm, right)
    c.setFont(bold, 9)
    c.drawString(cols[0] + 1 * mm, y, t["no"])
    c.drawString(cols[1] + 1 * mm, y, t["item"])
    c.drawRightString(cols[2] - 2 * mm, y, t["count"])
    c.drawRightString(cols[3] - 1 * mm, y, t["amount"])
    c.line(left, y + 5 * mm, right, y + 5 * mm)
    c.line(left, y - 2 * mm, right, y - 2 * mm)
    c.setFont(regular, 9)
    for number, label, count, amount in paper.rows(lang):
        y -= 6 * mm
        c.drawString(cols[0] + 1 * mm, y, number)
        c.drawString(cols[1] + 1 * mm, y, label[:80])
        if count is not None:
            c.drawRightString(cols[2] - 2 * mm, y, f"{count:,}".replace(",", "."))
        if amount is not None:
            c.drawRightString(cols[3] - 1 * mm, y, format_vnd(amount).replace(" ₫", ""))
        c.line(left, y - 2 * mm, right, y - 2 * mm)

    y -= 11 * mm
    c.setFont(bold, 10)
    c.drawString(left, y, t["exceptions"])
    y -= 6 * mm
    c.setFont(bold, 8)
    # STT | kind (and, below, the details) | amount (right-aligned) | resolution | who (and when)
    ex_cols = (left, left + 8 * mm, left + 86 * mm, left + 90 * mm, left + 140 * mm)
    c.drawString(ex_cols[0] + 1 * mm, y, t["no"])
    c.drawString(ex_cols[1] + 1 * mm, y, t["kind"])
    c.drawRightString(ex_cols[2], y, t["amount"])
    c.drawString(ex_cols[3] + 1 * mm, y, t["resolution"])
    c.drawString(ex_cols[4] + 1 * mm, y, f"{t['by']} – {t['at']}")
    c.line(left, y - 2 * mm, right, y - 2 * mm)
    c.setFont(regular, 8)
    if not paper.exceptions:
        y -= 6 * mm
        c.drawString(left + 1 * mm, y, t["none"])
    for index, e in enumerate(paper.exceptions, start=1):
        new_page_if(70 * mm)
        y -= 5.5 * mm
        c.drawString(ex_cols[0] + 1 * mm, y, str(index))
        c.drawString(ex_cols[1] + 1 * mm, y, outcomes.get(e.outcome, e.outcome)[:44])
        c.drawRightString(ex_cols[2], y, format_vnd(e.amount).replace(" ₫", ""))
        c.drawString(ex_cols[3] + 1 * mm, y, resolutions.get(e.resolution, e.resolution)[:34])
        c.drawString(ex_cols[4] + 1 * mm, y, e.resolved_by[:26])
        y -= 4 * mm
        c.setFillGray(0.35)
        c.drawString(ex_cols[1] + 1 * mm, y, e.detail[:100])
        c.drawString(ex_cols[4] + 1 * mm, y, _when(e.resolved_at))
        c.setFillGray(0)

    new_page_if(60 * mm)
    y -= 12 * mm
    c.setFont(regular, 9)
    c.drawRightString(right, y, t["place_date"].format(place=paper.place,
                                                      d=paper.produced_at.astimezone(VN_TZ)))
    y -= 7 * mm
    centres = (left + 28 * mm, width / 2, right - 28 * mm)
    for x, title, hint, name in zip(centres, (t["preparer"], t["chief"], t["head"]),
                                    (t["sign"], t["sign"], t["sign_seal"]), paper.signers,
                                    strict=True):
        c.setFont(bold, 9)
        c.drawCentredString(x, y, title)
        c.setFont(regular, 8)
        c.drawCentredString(x, y - 4.5 * mm, hint)
        c.setFont(bold, 9)
        c.drawCentredString(x, y - 30 * mm, name)
    c.setFont(regular, 7)
    c.drawString(left, 10 * mm, t["produced"].format(t=_when(paper.produced_at)))
    c.showPage()
    c.save()
    return out.getvalue()
