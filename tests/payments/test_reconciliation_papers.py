"""The reconciliation papers: XLSX in Vietnamese (formatted amounts, frozen and filtered headers, no
internal ids), the PDF rendered with pdftoppm and checked as an image, and the English variant."""

from __future__ import annotations

import datetime as dt
import io
import subprocess
from pathlib import Path

import pytest
from openpyxl import load_workbook
from PIL import Image

from payments.errors import InvalidInput
from payments.receipts.pdf import Fonts
from payments.reconcile.papers import ExceptionEntry, ReconciliationPaper, paper_pdf, paper_xlsx

FONTS = Path("/usr/share/fonts/truetype/dejavu")
AT = dt.datetime(2025, 8, 2, 1, 30, tzinfo=dt.UTC)
PAPER = ReconciliationPaper(
    unit_name="Ủy ban nhân dân Thành phố Hồ Chí Minh", unit_code="000.00.00.H29",
    account_number="113000012345", account_name="UBND TP Hồ Chí Minh",
    bank_name="Ngân hàng TMCP Công Thương Việt Nam (VietinBank)",
    first_day=dt.date(2025, 8, 1), last_day=dt.date(2025, 8, 1), produced_at=AT,
    opening_balance=12_500_000, credits=(5, 1_650_000), debits=(1, 150_000),
    matched=(3, 1_300_000), unmatched_money=(2, 350_000), unmatched_payments=(1, 200_000),
    held=(2, 350_000), bank_closing_balance=14_000_000,
    exceptions=(
        ExceptionEntry("money_without_payment", 200_000,
                       "01/08/2025 NGUYEN VAN B – nop le phi ho so"),
        ExceptionEntry("duplicate", 150_000, "01/08/2025 TRAN THI C – chuyển trùng lần 2",
                       "refund", "Lê Thị Kế Toán", AT),
        ExceptionEntry("unexplained_debit", 150_000, "01/08/2025 phí dịch vụ ngân hàng",
                       "dismissed", "Lê Thị Kế Toán", AT),
    ),
    signers=("Phạm Văn Lập", "Lê Thị Kế Toán", "Nguyễn Văn Thủ Trưởng"))
INTERNAL = ("payment_id", "line_keys", "run", "money_without_payment", "p1", "stmt")


def test_xlsx_in_vietnamese_formatted_frozen_filtered_without_ids() -> None:
    wb = load_workbook(io.BytesIO(paper_xlsx(PAPER)))
    summary, exceptions = wb["Tong hop"], wb["Chenh lech"]
    texts = [str(c.value) for ws in wb for row in ws.iter_rows() for c in row if c.value]
    joined = "\n".join(texts)
    for term in ("BÁO CÁO ĐỐI CHIẾU SỐ THU PHÍ, LỆ PHÍ QUA TÀI KHOẢN NGÀY 01/08/2025",
                 "Tài khoản thu: 113000012345", "Mở tại: Ngân hàng TMCP Công Thương",
                 "Số dư đầu kỳ", "Số dư cuối kỳ (tính toán)", "Tiền về chưa xác định được khoản thu",
                 "Khoản thu đã xác nhận thanh toán nhưng chưa nhận được tiền",
                 "Số tiền tạm giữ chờ xử lý", "NGƯỜI LẬP BIỂU", "KẾ TOÁN TRƯỞNG",
                 "THỦ TRƯỞNG ĐƠN VỊ", "Hoàn trả người nộp", "Lê Thị Kế Toán", "Chưa xử lý"):
        assert term in joined, term
    assert not any(i in joined for i in INTERNAL)
    # Amounts are numbers with a thousands format; the computed closing balance is right.
    rows = {r[1].value: r for r in summary.iter_rows() if r[1].value}
    closing = rows["Số dư cuối kỳ (tính toán)"][3]
    assert closing.value == 12_500_000 + 1_650_000 - 150_000 and closing.number_format == "#,##0"
    assert rows["Chênh lệch"][3].value == 0
    assert summary.freeze_panes is not None and summary.auto_filter.ref
    assert exceptions.freeze_panes == "A2" and exceptions.auto_filter.ref == "A1:G4"
    assert [c.value for c in exceptions[1]] == ["STT", "Nội dung chênh lệch", "Số tiền (đồng)",
                                                 "Diễn giải", "Cách xử lý", "Người xử lý",
                                                 "Ngày xử lý"]
    assert exceptions["C2"].number_format == "#,##0" and exceptions["G3"].value == "02/08/2025 08:30"


def test_english_variant_only_on_request() -> None:
    wb = load_workbook(io.BytesIO(paper_xlsx(PAPER, lang="en")))
    joined = "\n".join(str(c.value) for ws in wb for row in ws.iter_rows() for c in row if c.value)
    assert "Opening balance" in joined and "CHIEF ACCOUNTANT" in joined
    assert "Số dư" not in joined
    with pytest.raises(InvalidInput):
        paper_xlsx(PAPER, lang="fr")


def test_pdf_renders_with_every_part_and_a_signature_block(tmp_path: Path) -> None:
    fonts = Fonts((FONTS / "DejaVuSans.ttf").read_bytes(),
                  (FONTS / "DejaVuSans-Bold.ttf").read_bytes())
    (tmp_path / "p.pdf").write_bytes(paper_pdf(PAPER, fonts=fonts))
    text = subprocess.run(["pdftotext", "-layout", str(tmp_path / "p.pdf"), "-"],
                          capture_output=True, text=True, check=True).stdout
    for term in ("113000012345", "VietinBank", "Số dư đầu kỳ", "12.500.000", "14.000.000",
                 "Tiền về trùng lặp", "Hoàn trả người nộp", "NGƯỜI LẬP BIỂU", "KẾ TOÁN TRƯỞNG",
                 "THỦ TRƯỞNG ĐƠN VỊ", "(Ký, họ tên, đóng dấu)", "Nguyễn Văn Thủ Trưởng",
                 "ngày 02 tháng 08 năm 2025"):
        assert term in text, term
    subprocess.run(["pdftoppm", "-r", "60", "-png", "-singlefile", str(tmp_path / "p.pdf"),
                    str(tmp_path / "page")], check=True)
    page = Image.open(tmp_path / "page.png").convert("L")
    assert abs(page.size[0] - 496) <= 1 and abs(page.size[1] - 702) <= 1  # one A4 page

    def ink(box: tuple[int, int, int, int]) -> float:
        region = page.crop(box)
        dark = sum(region.point(lambda v: 255 if v < 128 else 0).histogram()[255:])
        return dark / (region.width * region.height)
    # title band, summary table (ruled), signature block (three titles and names): all drawn;
    # the margins stay blank.
    assert ink((40, 40, 456, 70)) > 0.01
    assert ink((35, 150, 460, 300)) > 0.03
    # the signature block: a band below the tables with ink in three columns (titles, names)
    bands = [y for y in range(330, page.height - 60, 5)
             if all(ink((x, y, x + 120, y + 40)) > 0.005 for x in (30, 188, 346))]
    assert bands, "no three-column signature block"
    assert ink((0, 0, 30, page.height)) == 0 and ink((466, 0, page.width, page.height)) == 0
