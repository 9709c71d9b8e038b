"""Small PDFs for tests: an official decision with Vietnamese text (Liberation Serif embedded by
pyHanko), and a large document for the memory benchmark."""

from __future__ import annotations

import io
from pathlib import Path

from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.layout import BoxConstraints
from pyhanko.pdf_utils.text import TextBox, TextBoxStyle
from pyhanko.pdf_utils.writer import PdfFileWriter

from signing.stamp.fonts import EmbeddedFont

FONT = Path("/usr/share/fonts/truetype/liberation2/LiberationSerif-Regular.ttf")

DECISION_TEXT = (
    "ỦY BAN NHÂN DÂN THÀNH PHỐ HỒ CHÍ MINH\n"
    "Số: 123/QĐ-UBND\n\n"
    "QUYẾT ĐỊNH\n"
    "Về việc phê duyệt kế hoạch chuyển đổi số năm 2025\n\n"
    "Điều 1. Phê duyệt kế hoạch kèm theo Quyết định này.\n"
    "Điều 2. Quyết định này có hiệu lực kể từ ngày ký.\n"
)


def decision_pdf(pages: int = 1) -> bytes:
    """An A4 decision (``pages`` pages) with Vietnamese text."""
    writer = PdfFileWriter()
    font = EmbeddedFont(FONT.read_bytes(), 12)
    for n in range(pages):
        box = TextBox(TextBoxStyle(font=font, font_size=12, leading=16),
                      box=BoxConstraints(width=480, height=300), writer=writer)
        box.content = DECISION_TEXT + (f"\nTrang {n + 1}/{pages}" if pages > 1 else "")
        stream = box.render()
        resources = box._resources  # the font the text box registered
        page = generic.DictionaryObject({
            generic.NameObject("/Type"): generic.NameObject("/Page"),
            generic.NameObject("/MediaBox"): generic.ArrayObject(
                [generic.NumberObject(x) for x in (0, 0, 595, 842)]),
            generic.NameObject("/Contents"): writer.add_object(generic.StreamObject(
                stream_data=b"q 1 0 0 1 60 480 cm " + stream + b" Q")),
            generic.NameObject("/Resources"): resources.as_pdf_object(),
        })
        writer.insert_page(page)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def form_pdf(fields: dict[str, str]) -> bytes:
    """A one-page decision with text form fields (name -> value), e.g. an application form."""
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter

    writer = IncrementalPdfFileWriter(io.BytesIO(decision_pdf()))
    page_ref = writer.root["/Pages"]["/Kids"][0]
    page = page_ref.get_object()
    refs = []
    for n, (name, value) in enumerate(fields.items()):
        field = generic.DictionaryObject({
            generic.NameObject("/FT"): generic.NameObject("/Tx"),
            generic.NameObject("/T"): generic.TextStringObject(name),
            generic.NameObject("/V"): generic.TextStringObject(value),
            generic.NameObject("/Type"): generic.NameObject("/Annot"),
            generic.NameObject("/Subtype"): generic.NameObject("/Widget"),
            generic.NameObject("/F"): generic.NumberObject(4),
            generic.NameObject("/Rect"): generic.ArrayObject(
                [generic.NumberObject(x) for x in (60, 400 - 30 * n, 300, 420 - 30 * n)]),
        })
        refs.append(writer.add_object(field))
    page[generic.NameObject("/Annots")] = generic.ArrayObject(refs)
    writer.update_container(page)
    writer.root[generic.NameObject("/AcroForm")] = generic.DictionaryObject({
        generic.NameObject("/Fields"): generic.ArrayObject(refs)})
    writer.update_root()
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def fill(data: bytes, name: str, value: str) -> bytes:
    """``data`` with form field ``name`` set to ``value`` in an incremental update."""
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter

    writer = IncrementalPdfFileWriter(io.BytesIO(data))
    for ref in writer.root["/AcroForm"]["/Fields"]:
        field = ref.get_object()
        if str(field.get("/T")) == name:
            field[generic.NameObject("/V")] = generic.TextStringObject(value)
            writer.update_container(field)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()
