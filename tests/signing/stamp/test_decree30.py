"""Decree 30/2020 appearances, rendered by poppler and measured on the pixels: the red seal at real
size overlapping the left third of the blue signature; the electronic copy's text at the top right.
The rendered pages are kept in test-artifacts/."""

from __future__ import annotations

import datetime as dt
import html
import io
import re
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from signing.errors import InvalidInput
from signing.sign.pades import PadesOptions, sign_pdf
from signing.sign.signers import KeySigner
from signing.stamp import (
    MM,
    agency_seal,
    electronic_copy,
    person_layout,
    person_signature,
    seal_box,
)
from tests.signing.sign.docpki import DocumentPki
from tests.signing.sign.pdfs import decision_pdf
from tests.signing.stamp.images import seal_png, signature_png

SEAL_MM = 36
BOX = (330.0, 150.0, 530.0, 290.0)


def sign_with(pki: DocumentPki, label: str, data: bytes, appearance: object) -> bytes:
    cred = pki.credential(label)
    out = io.BytesIO()
    sign_pdf(io.BytesIO(data), out, KeySigner(cred.key, cred.cert, cred.chain),
             at=dt.datetime.now(dt.UTC), options=PadesOptions(appearance=appearance))  # type: ignore[arg-type]
    return out.getvalue()


def render(pdf: Path, png_stem: Path, dpi: int = 72) -> Image.Image:
    subprocess.run(["pdftoppm", "-r", str(dpi), "-png", "-singlefile", str(pdf), str(png_stem)],
                   check=True, capture_output=True)
    return Image.open(png_stem.with_suffix(".png")).convert("RGB")


def bbox(image: Image.Image, colour: str) -> tuple[int, int, int, int]:
    def wanted(p: tuple[int, int, int]) -> bool:
        r, g, b = p
        if colour == "blue":
            return b > 140 and r < 110 and g < 130
        return r > 170 and g < 90 and b < 90

    xs, ys = [], []
    pixels = image.load()
    for y in range(image.height):
        for x in range(image.width):
            if wanted(pixels[x, y]):
                xs.append(x)
                ys.append(y)
    assert xs, f"no {colour} pixels on the page"
    return min(xs), min(ys), max(xs), max(ys)


@pytest.fixture(scope="module")
def person_then_agency(doc_pki: DocumentPki, font: bytes) -> bytes:
    signature = signature_png()
    person = person_signature(page=0, box=BOX, title="CHỦ TỊCH", full_name="Nguyễn Văn An",
                              image_png=signature, font=font)
    data = sign_with(doc_pki, "official", decision_pdf(), person)
    plan = person_layout(BOX, Image.open(io.BytesIO(signature)).size)
    seal = agency_seal(page=0, box=seal_box(plan, SEAL_MM), seal_png=seal_png())
    return sign_with(doc_pki, "agency", data, seal)


def test_seal_overlaps_the_left_third_of_the_signature(person_then_agency: bytes,
                                                       artifacts: Path) -> None:
    pdf = artifacts / "decree30-official-then-agency.pdf"
    pdf.write_bytes(person_then_agency)
    page = render(pdf, artifacts / "decree30-official-then-agency")  # 1 px = 1 pt
    bx1, by1, bx2, by2 = bbox(page, "blue")
    rx1, ry1, rx2, ry2 = bbox(page, "red")
    width = bx2 - bx1
    # the seal's right edge lies about a third of the way into the signature...
    assert bx1 + 0.2 * width <= rx2 <= bx1 + 0.45 * width, (bx1, bx2, rx1, rx2)
    # ...it starts left of the signature and overlaps it vertically
    assert rx1 < bx1
    assert ry1 < (by1 + by2) / 2 < ry2
    # real size: 36 mm across
    # (the drawn ring leaves a 1.6 % margin inside the PNG)
    assert abs((rx2 - rx1) - SEAL_MM * MM) <= 6 and abs((ry2 - ry1) - SEAL_MM * MM) <= 6
    # the signature sits between title and name (pdftotext finds both, above and below it)
    title_y = _line(pdf, "CHỦ TỊCH")[1]
    name_y = _line(pdf, "Nguyễn Văn An")[1]
    assert title_y < by1 and name_y > by2 - 5


def test_signatures_still_verify_with_pdfsig(person_then_agency: bytes, tmp_path: Path) -> None:
    path = tmp_path / "two.pdf"
    path.write_bytes(person_then_agency)
    done = subprocess.run(["pdfsig", str(path)], capture_output=True, text=True)
    assert done.stdout.count("Signature is Valid.") == 2, done.stdout


def test_electronic_copy_top_right_times_10pt(doc_pki: DocumentPki, font: bytes,
                                              artifacts: Path, tmp_path: Path) -> None:
    at = dt.datetime(2025, 7, 1, 2, 15, 30, tzinfo=dt.UTC)  # 09:15:30 in Hà Nội
    copy = electronic_copy(page_width=595, page_height=842, at=at, font=font,
                           copying_body="Văn phòng UBND Thành phố Hồ Chí Minh")
    data = sign_with(doc_pki, "agency", decision_pdf(), copy)
    pdf = artifacts / "decree30-electronic-copy.pdf"
    pdf.write_bytes(data)
    page = render(pdf, artifacts / "decree30-electronic-copy")
    text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True,
                          text=True, check=True).stdout
    assert "Bản sao điện tử" in text
    assert "Văn phòng UBND Thành phố Hồ Chí Minh" in text
    assert "09:15:30 01/07/2025" in text
    x, y, _ = _line(pdf, "Bản sao điện tử")
    assert x > 595 / 2 and y < 842 / 6  # top right
    expanded = tmp_path / "expanded.pdf"
    subprocess.run(["qpdf", "--qdf", "--object-streams=disable", str(pdf), str(expanded)],
                   check=True)
    assert re.search(rb"/F\w* 10 Tf", expanded.read_bytes())  # 10 pt type
    fonts = subprocess.run(["pdffonts", str(pdf)], capture_output=True, text=True).stdout
    assert re.search(r"LiberationSerif\S*\s+CID TrueType\s+Identity-H\s+yes", fonts), fonts
    # no image drawn: no coloured pixels at all
    assert not any(r > 170 and g < 90 and b < 90 for r, g, b in page.get_flattened_data())


def _line(pdf: Path, start: str) -> tuple[float, float, float]:
    """Position of the text run starting with ``start`` (pyHanko tags each appearance line
    with /ActualText, so poppler reports a line as one word)."""
    for text, where in _words(pdf).items():
        if text.startswith(start):
            return where
    raise AssertionError(f"{start!r} not found on the page")


def _words(pdf: Path) -> dict[str, tuple[float, float, float]]:
    page = subprocess.run(["pdftotext", "-bbox", str(pdf), "-"], capture_output=True,
                          text=True, check=True).stdout
    found: dict[str, tuple[float, float, float]] = {}
    for m in re.finditer(r'<word xMin="([\d.]+)" yMin="([\d.]+)" xMax="[\d.]+" '
                         r'yMax="([\d.]+)">([^<]+)</word>', page):
        x, y1, y2, word = float(m[1]), float(m[2]), float(m[3]), html.unescape(m[4])
        found.setdefault(word, (x, y1, y2 - y1))
    return found


def test_geometry_rules() -> None:
    plan = person_layout(BOX, (600, 240))
    assert plan.image[0] >= BOX[0] and plan.image[2] <= BOX[2]
    x1, y1, x2, y2 = seal_box(plan, SEAL_MM)
    assert x2 == pytest.approx(plan.image[0] + (plan.image[2] - plan.image[0]) / 3)
    with pytest.raises(InvalidInput):
        seal_box(plan, 5)
    with pytest.raises(InvalidInput):
        person_layout((0, 0, 100, 30), (600, 240))
    with pytest.raises(InvalidInput):
        person_signature(page=0, box=BOX, title="", full_name="A", image_png=b"x", font=b"")


def ascii_only(font: bytes) -> bytes:
    """The same font cut down to ASCII: no Vietnamese letters, no combining marks."""
    from fontTools import subset
    from fontTools.ttLib import TTFont

    ttf = TTFont(io.BytesIO(font))
    subsetter = subset.Subsetter(subset.Options(notdef_outline=True))
    subsetter.populate(unicodes=range(0x20, 0x7F))
    subsetter.subset(ttf)
    out = io.BytesIO()
    ttf.save(out)
    return out.getvalue()


def test_a_font_without_the_vietnamese_glyphs_is_refused(doc_pki: DocumentPki,
                                                         font: bytes) -> None:
    """Text extraction reads pyHanko's /ActualText, so it would find "CHỦ TỊCH" even if the
    page showed boxes: a font lacking a glyph must be refused, not embedded."""
    poor = ascii_only(font)
    person = person_signature(page=0, box=BOX, title="CHỦ TỊCH", full_name="Nguyễn Văn An",
                              image_png=signature_png(), font=poor)
    with pytest.raises(InvalidInput) as caught:
        sign_with(doc_pki, "official", decision_pdf(), person)
    assert caught.value.reason == "FONT_MISSING_GLYPHS"
    assert "Ủ" in caught.value.message and "Ị" in caught.value.message
    copy = electronic_copy(page_width=595, page_height=842, at=dt.datetime.now(dt.UTC),
                           font=poor, copying_body="Van phong UBND")
    with pytest.raises(InvalidInput, match="ả"):  # "Bản sao điện tử"
        sign_with(doc_pki, "agency", decision_pdf(), copy)
    ascii_text = person_signature(page=0, box=BOX, title="CHU TICH", full_name="Nguyen Van An",
                                  image_png=signature_png(), font=poor)
    assert sign_with(doc_pki, "official", decision_pdf(), ascii_text).startswith(b"%PDF")
