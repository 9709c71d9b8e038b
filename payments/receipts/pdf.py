"""The PDF rendition of a receipt (A5 portrait), with a QR code for verification.

The QR holds the receipt's signed QR token (:mod:`payments.receipts.qr_jws`, format BL1: a compact
JWS by the collecting body's seal over its identifying fields and the SHA-256 of the signed XML)
after the verification page's URL: ``<verify_url>#<token>``. Anyone verifies it offline, from the
QR alone, against the national root (library, ``vnegov receipts verify --qr``, or the page, which
reads the fragment in the browser). Receipts issued without a token keep the older unsigned form,
a lookup URL with the receipt's key fields and the SHA-256 of the signed XML::

    <verify_url>?k=EBL01&s=25T&n=0000001&d=2025-08-01&t=150000&mst=0301234567&h=<sha256 hex>

Either way the signed XML is attached to the PDF as ``<label>.xml``: its signature verifies with
any XMLDSig tool and its SHA-256 equals the QR's. Online, the lookup answers the receipt's
current status (valid, replaced, adjusted or cancelled) to whoever presents that hash. Fonts are
passed in as TrueType bytes (DejaVu Sans has every Vietnamese glyph); the library reads no files.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from urllib.parse import urlencode

import segno
from reportlab.lib.pagesizes import A5
from reportlab.lib.units import mm
from reportlab.lib.utils import ImageReader
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen import canvas

from payments.money import VN_TZ, amount_in_words, format_vnd
from payments.receipts.model import ReceiptData, ReceiptKind, format_number
from payments.receipts.qr_jws import qr_text
from payments.receipts.signing import document_digest

__all__ = ["Fonts", "register_fonts", "render_receipt_pdf", "verification_text"]

_KIND_TITLE = {ReceiptKind.ORIGINAL: "", ReceiptKind.REPLACEMENT: "(Thay thế biên lai)",
               ReceiptKind.ADJUSTMENT: "(Điều chỉnh biên lai)"}


@dataclass(frozen=True)
class Fonts:
    regular: bytes
    bold: bytes


_registered: dict[int, tuple[str, str]] = {}


def register_fonts(fonts: Fonts) -> tuple[str, str]:
    """Register the fonts with reportlab once per distinct pair; returns their names."""
    key = hash((fonts.regular, fonts.bold))
    if key not in _registered:
        n = len(_registered)
        names = (f"VnReg{n}", f"VnBold{n}")
        pdfmetrics.registerFont(TTFont(names[0], io.BytesIO(fonts.regular)))
        pdfmetrics.registerFont(TTFont(names[1], io.BytesIO(fonts.bold)))
        _registered[key] = names
    return _registered[key]


def verification_text(receipt: ReceiptData, signed_xml: bytes, verify_url: str) -> str:
    query = urlencode({
        "k": receipt.template, "s": receipt.series, "n": format_number(receipt.number),
        "d": receipt.issued_at.astimezone(VN_TZ).date().isoformat(), "t": str(receipt.total),
        "mst": receipt.collector.tax_code, "h": document_digest(signed_xml),
    })
    return f"{verify_url}?{query}"


def render_receipt_pdf(receipt: ReceiptData, signed_xml: bytes, *, fonts: Fonts,
                       verify_url: str, signer_name: str = "", qr_token: str = "") -> bytes:
    """``verify_url``: with ``qr_token``, the verification page the QR opens; without, the
    online lookup (the older unsigned QR)."""
    regular, bold = register_fonts(fonts)
    out = io.BytesIO()
    width, height = A5
    c = canvas.Canvas(out, pagesize=A5, invariant=True)
    c.setTitle(f"Biên lai {receipt.label}")
    c.setAuthor(receipt.collector.name)
    y = height - 15 * mm
    c.setFont(bold, 10)
    c.drawString(12 * mm, y, receipt.collector.name)
    c.setFont(regular, 8)
    y -= 4.5 * mm
    c.drawString(12 * mm, y, f"Mã số thuế: {receipt.collector.tax_code}")
    y -= 4 * mm
    c.drawString(12 * mm, y, f"Địa chỉ: {receipt.collector.address}")
    c.drawRightString(width - 12 * mm, height - 15 * mm, f"Mẫu số: {receipt.template}")
    c.drawRightString(width - 12 * mm, height - 19.5 * mm, f"Ký hiệu: {receipt.series}")
    c.drawRightString(width - 12 * mm, height - 24 * mm, f"Số: {format_number(receipt.number)}")
    y -= 12 * mm
    c.setFont(bold, 13)
    c.drawCentredString(width / 2, y, "BIÊN LAI THU PHÍ, LỆ PHÍ")
    y -= 5 * mm
    c.setFont(regular, 8)
    local = receipt.issued_at.astimezone(VN_TZ)
    c.drawCentredString(width / 2, y, f"(Biên lai điện tử) Ngày {local:%d} tháng {local:%m} năm "
                                      f"{local:%Y} {_KIND_TITLE[receipt.kind]}".strip())
    if receipt.related is not None:
        y -= 4 * mm
        c.drawCentredString(width / 2, y, f"cho biên lai {receipt.related.template}-"
                                          f"{receipt.related.series}-"
                                          f"{format_number(receipt.related.number)} ngày "
                                          f"{receipt.related.issued_on:%d/%m/%Y}")
    y -= 9 * mm
    c.setFont(regular, 9)
    for label, value in (("Người nộp", receipt.payer.name),
                         ("Mã số thuế / Số định danh",
                          receipt.payer.tax_code or receipt.payer.id_number or "-"),
                         ("Địa chỉ", receipt.payer.address or "-"),
                         ("Hồ sơ", f"{receipt.dossier_code} (thủ tục {receipt.procedure_code})"),
                         ("Hình thức thanh toán", receipt.payment_method)):
        c.drawString(12 * mm, y, f"{label}: {value}")
        y -= 5 * mm
    y -= 2 * mm
    c.setFont(bold, 9)
    c.drawString(12 * mm, y, "STT")
    c.drawString(22 * mm, y, "Khoản thu")
    c.drawString(95 * mm, y, "Loại")
    c.drawRightString(width - 12 * mm, y, "Số tiền (đồng)")
    c.line(12 * mm, y - 1.5 * mm, width - 12 * mm, y - 1.5 * mm)
    c.setFont(regular, 9)
    for index, line in enumerate(receipt.lines, start=1):
        y -= 5.5 * mm
        c.drawString(12 * mm, y, str(index))
        c.drawString(22 * mm, y, line.name[:48])
        c.drawString(95 * mm, y, line.kind.label)
        c.drawRightString(width - 12 * mm, y, format_vnd(line.amount))
    y -= 3 * mm
    c.line(12 * mm, y, width - 12 * mm, y)
    y -= 5 * mm
    c.setFont(bold, 9)
    c.drawString(12 * mm, y, "Tổng cộng")
    c.drawRightString(width - 12 * mm, y, format_vnd(receipt.total))
    y -= 5 * mm
    c.setFont(regular, 8.5)
    c.drawString(12 * mm, y, f"Bằng chữ: {amount_in_words(receipt.total)}")
    text = qr_text(qr_token, verify_url) if qr_token else \
        verification_text(receipt, signed_xml, verify_url)
    qr = segno.make_qr(text, error="m")
    png = io.BytesIO()
    qr.save(png, kind="png", scale=4, border=2)
    png.seek(0)
    size = 40 * mm if qr_token else 32 * mm  # the signed QR has more modules: keep them >= 0.4 mm
    c.drawImage(ImageReader(png), 10 * mm, 12 * mm, size, size, preserveAspectRatio=True)
    c.setFont(regular, 7)
    c.drawString(12 * mm, 8 * mm, "Quét mã để kiểm tra chữ ký số của đơn vị thu (không cần mạng); "
                 "bản XML có chữ ký số đính kèm tệp PDF." if qr_token else
                 "Quét mã để tra cứu; bản XML có chữ ký số đính kèm tệp PDF.")
    c.setFont(bold, 8.5)
    c.drawCentredString(width * 0.7, 40 * mm, "ĐƠN VỊ THU")
    c.setFont(regular, 7.5)
    c.drawCentredString(width * 0.7, 35 * mm, "Ký bởi: " + (signer_name or
                                                             receipt.collector.name)[:50])
    c.drawCentredString(width * 0.7, 31 * mm, f"Ký ngày: {local:%d/%m/%Y %H:%M:%S} (GMT+7)")
    c.showPage()
    c.save()
    return _attach(out.getvalue(), signed_xml, f"{receipt.label}.xml")


def _attach(pdf: bytes, xml: bytes, name: str) -> bytes:
    """Attach the signed XML to the PDF as an embedded file."""
    from pyhanko.pdf_utils import embed
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter

    writer = IncrementalPdfFileWriter(io.BytesIO(pdf))
    data = embed.EmbeddedFileObject.from_file_data(writer, data=xml,
                                                   mime_type="application/xml")
    spec = embed.FileSpec(file_spec_string=name, file_name=name, embedded_data=data,
                          description="Biên lai điện tử có chữ ký số (XML)")
    embed.embed_file(writer, spec)
    out = io.BytesIO()
    writer.write(out)  # type: ignore[no-untyped-call]
    return out.getvalue()
