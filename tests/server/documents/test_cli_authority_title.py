"""``vnegov sign --title`` repeated: an authority form's lines, all drawn."""

from __future__ import annotations

import subprocess
from pathlib import Path

from server.cli import main
from tests.server.documents.test_cli import files
from tests.signing.sign.docpki import DocumentPki
from tests.signing.sign.pdfs import decision_pdf
from tests.signing.stamp.images import signature_png


def test_two_title_lines(doc_pki: DocumentPki, tmp_path: Path, font: bytes) -> None:
    env = {"VNEGOV_DATA_DIR": str(tmp_path / "no-data-dir")}
    (tmp_path / "decision.pdf").write_bytes(decision_pdf())
    (tmp_path / "an.png").write_bytes(signature_png())
    key, cert = files(doc_pki, tmp_path, "deputy")
    assert main(["sign", str(tmp_path / "decision.pdf"), "--key", key, "--cert", cert,
                 "--title", "KT. CHỦ TỊCH", "--title", "PHÓ CHỦ TỊCH", "--name", "Trần Thị Bình",
                 "--signature-png", str(tmp_path / "an.png"), "--box", "330,150,530,290",
                 "--out", str(tmp_path / "kt.pdf")], env) == 0
    text = subprocess.run(["pdftotext", "-layout", str(tmp_path / "kt.pdf"), "-"],
                          capture_output=True, text=True, check=True).stdout
    assert text.index("KT. CHỦ TỊCH") < text.index("PHÓ CHỦ TỊCH") < text.index("Trần Thị Bình")
