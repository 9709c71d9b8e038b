"""``vnegov sign DIR/*.pdf ...``: an official signs a whole folder in one command, with a result
per file; a file that cannot be signed does not stop the others, and the exit code says so."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from server.cli import main
from tests.server.documents.test_cli import files
from tests.signing.sign.docpki import DocumentPki
from tests.signing.sign.pdfs import decision_pdf


def test_a_folder_is_signed_in_one_command(doc_pki: DocumentPki, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    env = {"VNEGOV_DATA_DIR": str(tmp_path / "no-data-dir")}
    (tmp_path / "root.pem").write_bytes(doc_pki.pem("root"))
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    for n in (1, 2, 3):
        (inbox / f"qd-{n}.pdf").write_bytes(decision_pdf())
    (inbox / "hong.pdf").write_bytes(b"%PDF-1.7\nthis is not a PDF body\n")
    out = tmp_path / "signed"
    out.mkdir()
    key, cert = files(doc_pki, tmp_path, "official")
    pdfs = sorted(str(p) for p in inbox.glob("*.pdf"))
    code = main(["sign", *pdfs, "--key", key, "--cert", cert, "--out", str(out)], env)
    captured = capsys.readouterr()
    assert code == 2  # the worst file's code: a malformed PDF is an input error
    lines = captured.out.splitlines()
    assert [line.split()[0] for line in lines[:-1]] == ["FAILED", "signed", "signed", "signed"]
    assert "hong.pdf" in lines[0] and lines[0].endswith("]")
    assert lines[-1] == "3 signed, 1 failed"
    assert "Traceback" not in captured.err
    assert sorted(p.name for p in out.iterdir()) == ["qd-1.pdf", "qd-2.pdf", "qd-3.pdf"]
    capsys.readouterr()
    assert main(["verify", str(out / "qd-2.pdf"), "--trust", str(tmp_path / "root.pem")],
                env) == 0
    capsys.readouterr()

    # --json: one document with a result per file; all good: exit 0.
    good = [p for p in pdfs if "hong" not in p]
    again = tmp_path / "again"
    again.mkdir()
    assert main(["sign", *good, "--key", key, "--cert", cert, "--out", str(again), "--json"],
                env) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["signed"] == 3 and result["failed"] == 0
    assert [Path(f["out"]).name for f in result["files"]] == ["qd-1.pdf", "qd-2.pdf", "qd-3.pdf"]
    assert all(f["format"] == "pdf" and f["field"] for f in result["files"])

    # Several files need --out to be a directory (or no --out: NAME-signed.pdf beside each).
    assert main(["sign", *good, "--key", key, "--cert", cert, "--out",
                 str(tmp_path / "one.pdf")], env) == 2
    assert capsys.readouterr().err.startswith("vnegov: with several files --out must be")
