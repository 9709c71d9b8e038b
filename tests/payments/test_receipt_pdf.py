from __future__ import annotations

import subprocess
from pathlib import Path

import zxingcpp
from PIL import Image

from payments.receipts import build_receipt_xml, document_digest, sign_document
from payments.receipts.pdf import Fonts, render_receipt_pdf
from tests.payments.support import HCM, T0, signers
from tests.payments.test_receipts_xmlsec import RECEIPT
from tests.support.pki import TestPki

FONTS = Path("/usr/share/fonts/truetype/dejavu")


def test_pdf_has_text_qr_and_the_signed_xml(tmp_path: Path, pki: TestPki) -> None:
    signed = sign_document(signers(pki).signer_for(HCM), build_receipt_xml(RECEIPT),
                           signing_time=T0)
    fonts = Fonts((FONTS / "DejaVuSans.ttf").read_bytes(),
                  (FONTS / "DejaVuSans-Bold.ttf").read_bytes())
    pdf = render_receipt_pdf(RECEIPT, signed, fonts=fonts,
                             verify_url="https://dvc.example.vn/payments/receipts/verify")
    path = tmp_path / "r.pdf"
    path.write_bytes(pdf)
    assert subprocess.run(["qpdf", "--check", str(path)], capture_output=True).returncode == 0
    text = subprocess.run(["pdftotext", str(path), "-"], capture_output=True, text=True,
                          check=True).stdout
    assert "BIÊN LAI THU PHÍ, LỆ PHÍ" in text and "Một trăm nghìn đồng" in text
    assert "0000001" in text and "Nguyễn Văn A" in text
    subprocess.run(["pdftoppm", "-r", "200", "-png", str(path), str(tmp_path / "page")],
                   check=True)
    [qr] = zxingcpp.read_barcodes(Image.open(next(tmp_path.glob("page*.png"))))
    assert qr.text.startswith("https://dvc.example.vn/payments/receipts/verify?k=EBL01&s=25T")
    assert f"h={document_digest(signed)}" in qr.text
    subprocess.run(["pdfdetach", "-saveall", "-o", str(tmp_path), str(path)], check=True)
    assert (tmp_path / "EBL01-25T-0000001.xml").read_bytes() == signed
