"""``vnegov reconcile-report``: the papers from a real reconciliation on the database (a camt.053
day with a matched transfer, an unknown transfer later refunded, a bank charge)."""

from __future__ import annotations

import datetime as dt
import io
from pathlib import Path

import pytest
import tomli_w
from openpyxl import load_workbook

from server.cli import main
from server.payments.recon_store import ReconStore
from server.storage.db import Database
from tests.payments.support import T0
from tests.server.payments.conftest import World
from tests.server.payments.test_server import payments_section
from tests.support.pki import TestPki

FIXTURES = Path(__file__).resolve().parents[2] / "payments" / "fixtures"


def test_reconcile_report_writes_the_papers(
        sqlite_world: World, sqlite_db: Database, tmp_path: Path, pki: TestPki,
        capsys: pytest.CaptureFixture[str]) -> None:
    pid = sqlite_world.paid_payment(request_id="papers-payment-1")
    sqlite_world.receipts.issue_for_payment(pid, now=T0)
    config = tmp_path / "vnegov.toml"
    config.write_text(tomli_w.dumps({
        "data_dir": str(tmp_path),
        "storage": {"url": sqlite_db.url.render_as_string(hide_password=False)},
        "payments": payments_section(pki, tmp_path),
    }))
    assert main(["--config", str(config), "reconcile", str(FIXTURES / "camt053_day1.xml"),
                 "--as-of", "2025-08-05T00:00:00+07:00"], {}) == 0
    recon = ReconStore(sqlite_db, settlement_delay=dt.timedelta(days=2))
    [unknown] = [e for e in recon.exceptions()
                 if e.outcome == "money_without_payment" and e.amount == 8_000]
    recon.resolve(unknown.id, action="refund_to_sender", actor="finance:Lê Thị Kế Toán",
                  request_id="papers-refund", now=T0 + dt.timedelta(days=2))
    capsys.readouterr()
    out = tmp_path / "papers"
    base = ["--config", str(config), "reconcile-report", "--agency", "000.00.00.H29",
            "--from", "2025-08-01", "--to", "2025-08-01", "--out-dir", str(out),
            "--prepared-by", "Phạm Văn Lập", "--chief-accountant", "Lê Thị Kế Toán",
            "--head", "Nguyễn Văn Thủ Trưởng"]
    assert main(base, {}) == 0
    assert "opening 5000000, closing 5136000" in capsys.readouterr().out
    stem = out / "doi-soat-113000012345-20250801-20250801"
    wb = load_workbook(io.BytesIO(stem.with_suffix(".xlsx").read_bytes()))
    summary = {r[1].value: (r[2].value, r[3].value) for r in wb["Tong hop"].iter_rows()
               if r[1].value}
    assert summary["Số dư đầu kỳ"] == (None, 5_000_000)
    assert summary["Số tiền thu vào tài khoản trong kỳ"] == (2, 158_000)
    assert summary["Số tiền chi ra khỏi tài khoản trong kỳ"] == (1, 22_000)
    assert summary["Số dư cuối kỳ (tính toán)"] == (None, 5_136_000)
    assert summary["Số dư cuối kỳ theo sao kê ngân hàng"] == (None, 5_136_000)
    assert summary["Chênh lệch"] == (None, 0)
    assert summary["Tiền về chưa xác định được khoản thu"] == (2, 158_000)
    # the 8,000 was refunded; the 150,000 is still held
    assert summary["Số tiền tạm giữ chờ xử lý (ghi nhận hoặc hoàn trả)"] == (1, 150_000)
    assert summary["Khoản thu đã xác nhận thanh toán nhưng chưa nhận được tiền"] == (1, 220_000)
    rows = [[c.value for c in r] for r in wb["Chenh lech"].iter_rows(min_row=2)]
    refunded = next(r for r in rows if r[1] == "Tiền về chưa xác định khoản thu" and r[2] == 8_000)
    assert refunded[2] == 8_000 and "TRAN THI B" in refunded[3]
    assert refunded[4:6] == ["Hoàn trả người nộp", "Lê Thị Kế Toán"]
    assert any(r[1] == "Khoản ghi nợ chưa rõ nội dung" and r[4] == "Chưa xử lý" for r in rows)
    unpaid = next(r for r in rows if r[1] == "Khoản đã thanh toán chưa nhận được tiền")
    assert unpaid[2] == 220_000 and "Hồ sơ" in unpaid[3]
    joined = " ".join(str(v) for r in rows for v in r)
    assert pid not in joined and "FT25213" not in joined  # no internal or bank line ids
    assert stem.with_suffix(".pdf").read_bytes().startswith(b"%PDF")
    assert main([*base, "--lang", "en"], {}) == 0
    english = load_workbook(out / "doi-soat-113000012345-20250801-20250801-en.xlsx")
    assert english.sheetnames == ["Summary", "Exceptions"]
    # An agency without a collection account: a message, no trace.
    capsys.readouterr()
    assert main([*base[:3], "--agency", "000.00.00.H99", *base[5:]], {}) == 1
    assert "NO_COLLECTION_ACCOUNT" in capsys.readouterr().err
