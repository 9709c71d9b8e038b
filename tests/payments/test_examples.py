"""The examples run as documented (as scripts, in a child process)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.mark.slow
def test_citizen_pays_by_vietqr(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, str(EXAMPLES / "pay_vietqr.py"), str(tmp_path)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "payment is now paid" in done.stdout
    assert (tmp_path / "vietqr.png").exists()
    assert len(list(tmp_path.glob("EBL01-*.pdf"))) == 1


@pytest.mark.slow
def test_finance_officer_reconciles_a_day(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, str(EXAMPLES / "reconcile_day.py"), str(tmp_path)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "import #2: 4 lines, 0 new" in out
    assert "matched" in out and "money_without_payment" in out and "difference 0" in out
    assert {p.suffix for p in tmp_path.glob("reconcile-*")} == {".csv", ".xlsx", ".pdf"}
