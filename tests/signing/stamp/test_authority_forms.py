"""Decree 30/2020 authority forms (KT., TM., Q., TL., TUQ.; one to three title lines) fit the
signature block at every supported size: rendered by poppler, every line found by text extraction
with positions inside the block, in order, clear of the signature image, and its ink visible and
away from the block's edges (nothing clipped). The rendered pages are kept in
test-artifacts/authority-forms/ (ignored by git)."""

from __future__ import annotations

import html
import io
import re
import subprocess
from pathlib import Path

import pytest
from PIL import Image, ImageChops
from pyhanko.pdf_utils import generic, layout
from pyhanko.pdf_utils.writer import PdfFileWriter

from signing.errors import InvalidInput
from signing.stamp import authority_title, person_signature, title_lines
from tests.signing.sign.docpki import DocumentPki
from tests.signing.sign.fixtures import ARTIFACTS
from tests.signing.sign.pdfs import decision_pdf
from tests.signing.stamp.images import signature_png
from tests.signing.stamp.test_decree30 import sign_with

FORMS: dict[str, tuple[str, ...]] = {
    "kt": authority_title("KT.", "CHỦ TỊCH", "PHÓ CHỦ TỊCH"),
    "tm": authority_title("TM.", "ỦY BAN NHÂN DÂN", "CHỦ TỊCH"),
    "tm-kt": authority_title("TM.", "ỦY BAN NHÂN DÂN", "KT. CHỦ TỊCH", "PHÓ CHỦ TỊCH"),
    "q": authority_title("Q.", "GIÁM ĐỐC SỞ TƯ PHÁP"),
    "tl": authority_title("TL.", "BỘ TRƯỞNG", "VỤ TRƯỞNG VỤ PHÁP CHẾ"),
    "tuq": authority_title("TUQ.", "CHỦ TỊCH", "CHÁNH VĂN PHÒNG"),
    # Long enough that the title has to be set smaller in the narrow boxes.
    "tm-kt-long": authority_title("TM.", "ỦY BAN NHÂN DÂN THÀNH PHỐ",
                                  "KT. CHỦ TỊCH", "PHÓ CHỦ TỊCH THƯỜNG TRỰC"),
}
FONT_SIZES = (11, 12, 13, 14)
# The smallest block the appearance supports well, and the usual one (a wider block only
# makes room).
BOXES = ((170.0, 130.0), (200.0, 140.0))  # width, height in points
NAME = "Nguyễn Thị Phương Thảo"
MARGIN = 20.0
DPI = 144
SCALE = DPI / 72


def _page(writer: PdfFileWriter, width: float, height: float) -> None:
    """A page just larger than the block, with the block outlined in light grey."""
    frame = b"0.8 G 0.5 w %g %g %g %g re S" % (MARGIN, MARGIN, width, height)
    writer.insert_page(generic.DictionaryObject({  # type: ignore[no-untyped-call]
        generic.NameObject("/Type"): generic.NameObject("/Page"),
        generic.NameObject("/MediaBox"): generic.ArrayObject(
            [generic.FloatObject(v) for v in (0, 0, width + 2 * MARGIN, height + 2 * MARGIN)]),
        generic.NameObject("/Contents"): writer.add_object(generic.StreamObject(
            stream_data=frame)),
        generic.NameObject("/Resources"): generic.DictionaryObject()}))


CASES = [(form, size, box) for form in FORMS for size in FONT_SIZES for box in BOXES]


@pytest.fixture(scope="module")
def rendered(font: bytes) -> tuple[Path, list[str]]:
    """All cases, one page each, stamped with the very appearance a signature gets."""
    writer = PdfFileWriter()  # type: ignore[no-untyped-call]
    png = signature_png()
    for _form, _size, (w, h) in CASES:
        _page(writer, w, h)
    for index, (form, size, (w, h)) in enumerate(CASES):
        visible = person_signature(page=0, box=(MARGIN, MARGIN, MARGIN + w, MARGIN + h),
                                   title=FORMS[form], full_name=NAME, image_png=png, font=font,
                                   font_size=size)
        stamp = visible.style.create_stamp(writer, layout.BoxConstraints(width=w, height=h), {})
        stamp.apply(index, int(MARGIN), int(MARGIN))  # type: ignore[no-untyped-call]
    folder = ARTIFACTS / "authority-forms"
    folder.mkdir(parents=True, exist_ok=True)
    pdf = folder / "authority-forms.pdf"
    out = io.BytesIO()
    writer.write(out)  # type: ignore[no-untyped-call]
    pdf.write_bytes(out.getvalue())
    for old in folder.glob("*.png"):
        old.unlink()
    subprocess.run(["pdftoppm", "-r", str(DPI), "-png", str(pdf), str(folder / "page")],
                   check=True, capture_output=True)
    bbox = subprocess.run(["pdftotext", "-bbox", str(pdf), "-"], capture_output=True,
                          text=True, check=True).stdout
    pages = re.findall(r"<page [^>]*>(.*?)</page>", bbox, flags=re.S)
    assert len(pages) == len(CASES)
    return folder, pages


def _words(page: str) -> list[tuple[str, float, float, float, float]]:
    return [(html.unescape(m[5]), float(m[1]), float(m[2]), float(m[3]), float(m[4]))
            for m in re.finditer(r'<word xMin="([\d.]+)" yMin="([\d.]+)" xMax="([\d.]+)" '
                                 r'yMax="([\d.]+)">([^<]+)</word>', page)]


def _mask(image: Image.Image, colour: str) -> Image.Image:
    """Black text (every channel dark) or the blue signature (blue high, red low), as a mask."""
    r, g, b = (band.point(lambda v, t=t: 255 if v < t else 0) for band, t in  # type: ignore[misc]
               zip(image.split(), (110, 110, 110), strict=True))
    if colour == "black":
        return ImageChops.multiply(ImageChops.multiply(r, g), b)
    return ImageChops.multiply(r, b.point(lambda v: 255 - v))


def _bands(mask: Image.Image, merge: float) -> list[tuple[int, int]]:
    """Rows with ink, merged where the gap is at most ``merge`` pixels (a diacritic and its
    letter), as (first, last) row pairs."""
    rows = [y for y in range(mask.height) if mask.crop((0, y, mask.width, y + 1)).getbbox()]
    bands: list[list[int]] = []
    for y in rows:
        if bands and y - bands[-1][1] - 1 <= merge:
            bands[-1][1] = y
        else:
            bands.append([y, y])
    return [(a, b) for a, b in bands]


@pytest.mark.parametrize(("index", "case"), list(enumerate(CASES)),
                         ids=[f"{f}-{s}pt-{int(b[0])}x{int(b[1])}" for f, s, b in CASES])
def test_every_line_is_inside_the_block(rendered: tuple[Path, list[str]], index: int,
                                        case: tuple[str, int, tuple[float, float]]) -> None:
    folder, pages = rendered
    form, _size, (w, h) = case
    lines = [*FORMS[form], NAME]
    words = _words(pages[index])
    # Text extraction: each line once, whole, top to bottom, horizontally inside the block.
    assert [wd[0] for wd in words] == lines, words
    assert all(a[2] < b[2] for a, b in zip(words, words[1:], strict=False))
    top, bottom, left, right = MARGIN, MARGIN + h, MARGIN, MARGIN + w  # y grows downwards
    for text, x1, y1, x2, y2 in words:
        assert left <= x1 and x2 <= right, (text, x1, x2, left, right)
        assert top <= (y1 + y2) / 2 <= bottom, (text, y1, y2, top, bottom)

    # The pixels: one band of ink per line (a diacritic joins its letters), each clear of the
    # block's edges (nothing clipped), the title above the signature image, the name below it.
    number = f"{index + 1:0{len(str(len(CASES)))}d}"
    image = Image.open(folder / f"page-{number}.png").convert("RGB")
    if len(lines) > 2:  # the title's line pitch is 1.3 em: a gap of 0.15 em separates lines
        merge = 0.15 * (words[1][2] - words[0][2]) / 1.3 * SCALE
    else:  # one title line, far from the name: join anything closer than half its height
        merge = 0.5 * (words[0][4] - words[0][2]) * SCALE
    bands = _bands(_mask(image, "black"), merge=merge)
    assert len(bands) == len(lines), (bands, merge)
    ink = _mask(image, "black").getbbox()
    assert ink is not None
    assert left * SCALE + 1 < ink[0] and ink[2] < right * SCALE - 1, (ink, left, right)
    assert top * SCALE + 1 < ink[1] and ink[3] < bottom * SCALE - 1, (ink, top, bottom)
    signature = _mask(image, "blue").getbbox()
    assert signature is not None
    assert bands[-2][1] < signature[1] and bands[-1][0] > signature[3], (bands, signature)


def test_three_lines_in_a_real_signature(doc_pki: DocumentPki, font: bytes,
                                         artifacts: Path, tmp_path: Path) -> None:
    box = (330.0, 150.0, 530.0, 290.0)
    appearance = person_signature(page=0, box=box, title="TM. ỦY BAN NHÂN DÂN\nKT. CHỦ TỊCH\n"
                                  "PHÓ CHỦ TỊCH", full_name="Trần Thị Bình",
                                  image_png=signature_png(), font=font)
    pdf = artifacts / "authority-forms" / "tm-kt-signed.pdf"
    pdf.parent.mkdir(exist_ok=True)
    pdf.write_bytes(sign_with(doc_pki, "deputy", decision_pdf(), appearance))
    done = subprocess.run(["pdfsig", str(pdf)], capture_output=True, text=True)
    assert "Signature is Valid." in done.stdout, done.stdout
    words = _words(subprocess.run(["pdftotext", "-bbox", str(pdf), "-"], capture_output=True,
                                  text=True, check=True).stdout)
    found = {wd[0]: wd for wd in words}
    page_height = 842
    for line in ("TM. ỦY BAN NHÂN DÂN", "KT. CHỦ TỊCH", "PHÓ CHỦ TỊCH", "Trần Thị Bình"):
        _, x1, y1, x2, y2 = found[line]
        assert box[0] <= x1 and x2 <= box[2], line
        assert page_height - box[3] <= (y1 + y2) / 2 <= page_height - box[1], line


def test_titles_are_one_to_three_lines_and_prefixes_are_known(font: bytes) -> None:
    assert title_lines("KT. CHỦ TỊCH\n PHÓ  CHỦ TỊCH ") == ("KT. CHỦ TỊCH", "PHÓ CHỦ TỊCH")
    for bad in ("", "A\n\nB", "A\nB\nC\nD"):
        with pytest.raises(InvalidInput):
            title_lines(bad)
    with pytest.raises(InvalidInput):
        authority_title("K.T", "CHỦ TỊCH")
    with pytest.raises(InvalidInput) as caught:  # cannot fit even at 7 pt
        person_signature(page=0, box=(0, 0, 120, 140), title="TM. " + "ỦY BAN NHÂN DÂN " * 6,
                         full_name="A", image_png=signature_png(), font=font)
    assert caught.value.reason == "TEXT_TOO_LONG"
    with pytest.raises(InvalidInput) as caught:
        person_signature(page=0, box=(0, 0, 200, 70), title="CHỦ TỊCH", full_name="A",
                         image_png=signature_png(), font=font)
    assert caught.value.reason == "INVALID_BOX"
