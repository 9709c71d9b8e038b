from __future__ import annotations

import json
from pathlib import Path

import pytest
import tomli_w

from server.cli import main
from server.storage.db import Database
from tests.payments.support import T0
from tests.server.payments.conftest import World
from tests.server.payments.test_server import payments_section
from tests.support.pki import TestPki

FIXTURES = Path(__file__).resolve().parents[2] / "payments" / "fixtures"


def test_reconcile_command_imports_reports_and_shows_progress(
        sqlite_world: World, sqlite_db: Database, tmp_path: Path, pki: TestPki,
        capsys: pytest.CaptureFixture[str]) -> None:
    pid = sqlite_world.paid_payment(request_id="cli-payment-1")
    sqlite_world.receipts.issue_for_payment(pid, now=T0)
    config = tmp_path / "vnegov.toml"
    config.write_text(tomli_w.dumps({
        "data_dir": str(tmp_path),
        "storage": {"url": sqlite_db.url.render_as_string(hide_password=False)},
        "payments": payments_section(pki, tmp_path),
    }))
    p = sqlite_world.payments.get(pid)
    channel_list = tmp_path / "platform.csv"
    channel_list.write_text("reference,transaction_id,amount,paid_at,status\n"
                            f"{p.reference},TX{pid},{p.amount_due},2025-08-01T09:00:00+07:00,"
                            "paid\n", encoding="utf-8")
    code = main(["--config", str(config), "reconcile", str(FIXTURES / "camt053_day1.xml"),
                 "--as-of", "2025-08-05T00:00:00+07:00", "--report-dir", str(tmp_path / "out"),
                 "--unit", "UBND TP Hồ Chí Minh", "--channel-list", str(channel_list),
                 "--first-day", "2025-08-01"], {})
    out = capsys.readouterr()
    assert code == 0
    assert "3 lines, 3 new" in out.out and "money_without_payment" in out.out
    assert "platform.csv (platform): matched 1" in out.out
    assert "reconciling" in out.err  # the progress bar
    assert {p.suffix for p in (tmp_path / "out").iterdir()} == {".csv", ".xlsx", ".pdf"}
    code = main(["--config", str(config), "receipts", "list", "--payment", pid], {})
    listed = capsys.readouterr().out
    assert code == 0 and listed.count("EBL01-25T-") == 2 and "valid" in listed
    receipt_id = listed.split()[0]
    assert main(["--config", str(config), "receipts", "show", receipt_id, "--xml",
                 str(tmp_path / "r.xml")], {}) == 0
    assert (tmp_path / "r.xml").read_bytes().startswith(b"<?xml")
    assert main(["--config", str(config), "receipts", "usage", "--from", "2025-08-01",
                 "--to", "2025-08-31"], {}) == 0
    assert "EBL01    25T    0000001 0000002     2" in capsys.readouterr().out
    assert main(["--config", str(config), "receipts", "cancel", receipt_id, "--reason",
                 "Thu nhầm", "--xml", str(tmp_path / "notice.xml")], {}) == 0
    assert b"<TBHuy>" in (tmp_path / "notice.xml").read_bytes()
    assert main(["--config", str(config), "receipts", "list", "--payment", pid], {}) == 0
    assert "cancelled" in capsys.readouterr().out


def test_refusals_end_with_a_message_not_a_trace(
        sqlite_world: World, sqlite_db: Database, tmp_path: Path, pki: TestPki,
        capsys: pytest.CaptureFixture[str]) -> None:
    pid = sqlite_world.paid_payment(request_id="cli-refusal-1")
    [receipt_id, *_] = sqlite_world.receipts.issue_for_payment(pid, now=T0)
    config = tmp_path / "vnegov.toml"
    config.write_text(tomli_w.dumps({
        "data_dir": str(tmp_path),
        "storage": {"url": sqlite_db.url.render_as_string(hide_password=False)},
        "payments": payments_section(pki, tmp_path),
    }))
    base = ["--config", str(config), "receipts"]
    assert main([*base, "cancel", receipt_id, "--reason", "Thu nhầm"], {}) == 0
    capsys.readouterr()
    assert main([*base, "cancel", receipt_id, "--reason", "again"], {}) == 1
    assert "RECEIPT_NOT_CORRECTABLE" in capsys.readouterr().err
    assert main([*base, "show", "nosuchreceipt"], {}) == 2  # an unknown name: input error
    assert "no such receipt" in capsys.readouterr().err
    broken = tmp_path / "broken.xml"
    broken.write_bytes(b"<Document>")
    assert main(["--config", str(config), "reconcile", str(broken)], {}) == 2  # malformed input


def test_issue_pending_issues_what_the_outbox_holds(
        sqlite_world: World, sqlite_db: Database, tmp_path: Path, pki: TestPki,
        capsys: pytest.CaptureFixture[str]) -> None:
    paid = [sqlite_world.paid_payment(request_id=f"cli-pending-{n}") for n in range(3)]
    config = tmp_path / "vnegov.toml"
    config.write_text(tomli_w.dumps({
        "data_dir": str(tmp_path),
        "storage": {"url": sqlite_db.url.render_as_string(hide_password=False)},
        "payments": payments_section(pki, tmp_path),
    }))
    base = ["--config", str(config), "receipts"]
    capsys.readouterr()
    assert main([*base, "issue-pending", "--json"], {}) == 0
    out = capsys.readouterr()
    assert json.loads(out.out)["issued"] >= len(paid)
    assert out.err.startswith("issuing: ")  # the progress bar's line off a terminal
    for pid in paid:
        assert main([*base, "list", "--payment", pid, "--json"], {}) == 0
        assert json.loads(capsys.readouterr().out), pid
    assert main([*base, "issue-pending", "--json"], {}) == 0  # nothing left
    assert json.loads(capsys.readouterr().out)["issued"] == 0
