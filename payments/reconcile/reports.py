"""Reports for finance units: CSV, XLSX and a one-page PDF summary with a chart.

Every report states its bounds: the Vietnamese calendar days it covers and the same instants in
UTC, plus when it was produced. Amounts are whole đồng.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Sequence
from dataclasses import dataclass

from payments.money import format_vnd, local_day_bounds
from payments.receipts.pdf import Fonts, register_fonts
from payments.reconcile.matching import MatchMethod, Outcome, ReconciliationItem

__all__ = ["ReportBounds", "report_csv", "report_pdf", "report_xlsx", "summarise"]

_COLUMNS = ("outcome", "amount", "method", "shape", "line_keys", "payment_ids", "note")
_LABELS = {
    Outcome.MATCHED: "Khớp", Outcome.AMOUNT_MISMATCH: "Lệch số tiền",
    Outcome.DUPLICATE: "Trùng", Outcome.MONEY_WITHOUT_PAYMENT: "Tiền chưa rõ khoản",
    Outcome.PAYMENT_WITHOUT_MONEY: "Thanh toán chưa về tiền",
    Outcome.PAID_WITHOUT_RECEIPT: "Đã thu chưa có biên lai",
    Outcome.UNEXPLAINED_DEBIT: "Ghi nợ chưa rõ", Outcome.AWAITING_SETTLEMENT: "Chờ quyết toán",
    Outcome.REVERSED: "Bút toán đảo",
}
# The XLSX detail and exception sheets, for people: Vietnamese headers, amounts as formatted
# numbers, the bank's references, and how many payments a line paid rather than internal ids
# (the CSV keeps the machine columns).
_SHEET_HEADERS = ("Kết quả", "Số tiền (đồng)", "Cách đối chiếu", "Hình thức",
                  "Số tham chiếu ngân hàng", "Số khoản thu", "Ghi chú")
_METHODS = {
    MatchMethod.BANK_REFERENCE: "Theo số tham chiếu ngân hàng",
    MatchMethod.CREDITOR_REFERENCE: "Theo mã thanh toán (RF)",
    MatchMethod.CORRECTED_REFERENCE: "Theo mã thanh toán (đã sửa lỗi gõ)",
    MatchMethod.AMOUNT_AND_DATE: "Theo số tiền và ngày", MatchMethod.NONE: "",
}
_SHAPES = {"one_to_one": "Một lần chuyển – một khoản thu",
           "split": "Nhiều lần chuyển cho một khoản thu",
           "combined": "Một lần chuyển cho nhiều khoản thu", "": ""}


@dataclass(frozen=True, slots=True)
class ReportBounds:
    """The period a reconciliation report covers, when it was produced and for which unit."""
    first_day: dt.date
    last_day: dt.date
    produced_at: dt.datetime
    unit: str = ""

    def lines(self) -> list[str]:
        start, end = local_day_bounds(self.first_day, self.last_day)
        return [
            f"Đơn vị: {self.unit}" if self.unit else "",
            f"Kỳ đối soát: {self.first_day:%d/%m/%Y} – {self.last_day:%d/%m/%Y} "
            f"(giờ Việt Nam, GMT+7)",
            f"UTC: [{start:%Y-%m-%dT%H:%M:%SZ}, {end:%Y-%m-%dT%H:%M:%SZ})",
            f"Lập lúc: {self.produced_at.astimezone(dt.UTC):%Y-%m-%dT%H:%M:%SZ}",
        ]


def summarise(items: Sequence[ReconciliationItem]) -> list[tuple[Outcome, int, int]]:
    """Per outcome: how many items and their total amount."""
    counts: dict[Outcome, list[int]] = {o: [0, 0] for o in Outcome}
    for item in items:
        counts[item.outcome][0] += 1
        counts[item.outcome][1] += item.amount
    return [(o, c, a) for o, (c, a) in counts.items()]


def _row(item: ReconciliationItem) -> list[str | int]:
    return [item.outcome.value, item.amount, item.method.value, item.shape,
            " ".join(item.line_keys), " ".join(item.payment_ids), item.note]


def report_csv(items: Sequence[ReconciliationItem], bounds: ReportBounds) -> bytes:
    """The reconciliation report as CSV (UTF-8), headed by the report's bounds."""
    out = io.StringIO(newline="")
    for text in bounds.lines():
        if text:
            out.write(f"# {text}\n")
    writer = csv.writer(out)
    writer.writerow(_COLUMNS)
    for item in items:
        writer.writerow(_row(item))
    return out.getvalue().encode("utf-8")


def report_xlsx(items: Sequence[ReconciliationItem], bounds: ReportBounds) -> bytes:
    """The reconciliation report as an Excel workbook: a summary sheet and the items."""
    from openpyxl import Workbook
    from openpyxl.styles import Font

    wb = Workbook()
    ws = wb.active
    ws.title = "Tong hop"
    row = 1
    for text in bounds.lines():
        if text:
            ws.cell(row=row, column=1, value=text)
            row += 1
    row += 1
    for col, title in enumerate(("Kết quả", "Mã", "Số lượng", "Số tiền (đồng)"), start=1):
        ws.cell(row=row, column=col, value=title).font = Font(bold=True)
    for outcome, count, amount in summarise(items):
        row += 1
        ws.cell(row=row, column=1, value=_LABELS[outcome])
        ws.cell(row=row, column=2, value=outcome.value)
        ws.cell(row=row, column=3, value=count)
        ws.cell(row=row, column=4, value=amount).number_format = "#,##0"
    for title, chosen in (("Chi tiet", items),
                          ("Ngoai le", [i for i in items if i.outcome.is_exception])):
        sheet = wb.create_sheet(title)
        sheet.append(list(_SHEET_HEADERS))
        for cell in sheet[1]:
            cell.font = Font(bold=True)
        for item in chosen:
            sheet.append([_LABELS[item.outcome], item.amount, _METHODS[item.method],
                          _SHAPES.get(item.shape, item.shape), " ".join(item.line_keys),
                          len(item.payment_ids), item.note])
            sheet.cell(row=sheet.max_row, column=2).number_format = "#,##0"
        sheet.freeze_panes = "A2"
        sheet.auto_filter.ref = f"A1:G{max(sheet.max_row, 1)}"
        for letter, width in zip("ABCDEFG", (30, 16, 34, 34, 30, 12, 50), strict=True):
            sheet.column_dimensions[letter].width = width
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


def report_pdf(items: Sequence[ReconciliationItem], bounds: ReportBounds, *, fonts: Fonts
               ) -> bytes:
    """The reconciliation report as a PDF with a summary chart, in ``fonts`` (Vietnamese glyphs)."""
    from reportlab.graphics.charts.barcharts import HorizontalBarChart
    from reportlab.graphics.shapes import Drawing
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.units import mm
    from reportlab.pdfgen import canvas

    regular, bold = register_fonts(fonts)
    out = io.BytesIO()
    width, height = A4
    c = canvas.Canvas(out, pagesize=A4, invariant=True)
    c.setTitle("Báo cáo đối soát")
    y = height - 20 * mm
    c.setFont(bold, 14)
    c.drawString(20 * mm, y, "BÁO CÁO ĐỐI SOÁT THU PHÍ, LỆ PHÍ")
    c.setFont(regular, 9)
    for text in bounds.lines():
        if text:
            y -= 5 * mm
            c.drawString(20 * mm, y, text)
    summary = summarise(items)
    y -= 10 * mm
    c.setFont(bold, 9)
    c.drawString(20 * mm, y, "Kết quả")
    c.drawRightString(130 * mm, y, "Số lượng")
    c.drawRightString(190 * mm, y, "Số tiền")
    c.setFont(regular, 9)
    for outcome, count, amount in summary:
        y -= 5.5 * mm
        c.drawString(20 * mm, y, f"{_LABELS[outcome]} ({outcome.value})")
        c.drawRightString(130 * mm, y, f"{count:,}".replace(",", "."))
        c.drawRightString(190 * mm, y, format_vnd(amount))
    drawing = Drawing(170 * mm, 90 * mm)
    chart = HorizontalBarChart()
    chart.x, chart.y = 55 * mm, 5 * mm
    chart.width, chart.height = 110 * mm, 80 * mm
    chart.data = [[a for _, _, a in summary]]
    chart.categoryAxis.categoryNames = [_LABELS[o] for o, _, _ in summary]
    chart.categoryAxis.labels.fontName = regular
    chart.categoryAxis.labels.fontSize = 7
    chart.valueAxis.labels.fontName = regular
    chart.valueAxis.labels.fontSize = 7
    chart.valueAxis.valueMin = 0
    chart.valueAxis.labelTextFormat = lambda v: f"{v:,.0f}".replace(",", ".")
    chart.bars[0].fillColor = colors.HexColor("#1f6fb2")
    drawing.add(chart)
    drawing.drawOn(c, 15 * mm, y - 100 * mm)
    c.setFont(regular, 7)
    c.drawString(20 * mm, 12 * mm, "Số tiền theo kết quả đối soát (đồng).")
    c.showPage()
    c.save()
    return out.getvalue()
