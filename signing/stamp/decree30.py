"""Signature appearances of Decree 30/2020/NĐ-CP, Appendix I (signed official documents).

* The person's signature (:func:`person_signature`): the signer's title on top, the signature
  image (blue, transparent PNG) centred below it, the full name at the bottom.
* The issuing body's signature (:func:`agency_seal`): its red seal image (transparent PNG) at real
  size, placed by :func:`seal_box` so that it overlaps about the left third of the person's
  signature image.
* An electronic copy (:func:`electronic_copy`): the copying body signs at the top right of page
  1, without an image; the text (copy type, copying body, time ``hh:mm:ss dd/mm/yyyy``, Vietnam
  time) in Times New Roman 10 pt, regular, black. Liberation Serif is metric-compatible with
  Times New Roman and has the Vietnamese glyphs; whatever font bytes are given are embedded.

Geometry is in PDF points (1/72 inch), origin at the bottom left of the page. Pure functions
compute boxes so that callers (and tests) know where everything lands.
"""

from __future__ import annotations

import datetime as dt
import io
from dataclasses import dataclass
from typing import IO, Any
from zoneinfo import ZoneInfo

from PIL import Image
from pyhanko.pdf_utils import layout
from pyhanko.pdf_utils.images import PdfImage
from pyhanko.pdf_utils.misc import PdfError
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.pdf_utils.text import TextBox, TextBoxStyle
from pyhanko.stamp import BaseStamp, BaseStampStyle, TextStampStyle

from signing.errors import InvalidInput
from signing.sign.pades import VisibleSignature
from signing.stamp.fonts import EmbeddedFont

__all__ = [
    "MM",
    "Box",
    "PersonLayout",
    "agency_seal",
    "electronic_copy",
    "electronic_copy_box",
    "page_box",
    "person_layout",
    "person_signature",
    "seal_box",
]

MM = 72 / 25.4
VIETNAM = ZoneInfo("Asia/Ho_Chi_Minh")
Box = tuple[float, float, float, float]  # x1, y1, x2, y2


def load_png(data: bytes) -> Image.Image:
    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except (OSError, ValueError) as exc:
        raise InvalidInput("the image is not a readable PNG", reason="INVALID_IMAGE") from exc
    if image.format != "PNG":
        raise InvalidInput("signature and seal images must be PNG", reason="INVALID_IMAGE")
    return image.convert("RGBA")


@dataclass(frozen=True, slots=True)
class PersonLayout:
    """Where the parts of a person's signature go, inside a field box."""

    box: Box
    title_height: float
    name_height: float
    image: Box  # where the signature image is drawn (page coordinates)


def person_layout(box: Box, image_size: tuple[int, int], *, font_size: float = 13) -> PersonLayout:
    """Title band on top, name band at the bottom, the image scaled (aspect kept) and centred
    in between."""
    x1, y1, x2, y2 = box
    if x2 <= x1 or y2 <= y1:
        raise InvalidInput("empty signature box", reason="INVALID_BOX")
    band = font_size * 1.6
    free_w, free_h = x2 - x1, (y2 - y1) - 2 * band
    if free_h <= 0:
        raise InvalidInput("the signature box is too low for title, image and name",
                           reason="INVALID_BOX")
    w, h = image_size
    scale = min(free_w / w, free_h / h)
    iw, ih = w * scale, h * scale
    ix = x1 + (free_w - iw) / 2
    iy = y1 + band + (free_h - ih) / 2
    return PersonLayout(box=box, title_height=band, name_height=band,
                        image=(ix, iy, ix + iw, iy + ih))


def seal_box(person: PersonLayout, diameter_mm: float, *, overlap: float = 1 / 3) -> Box:
    """The seal at real size, centred on the signature image's height, its right edge on the
    line ``overlap`` of the way across the image from the left (so it covers that part)."""
    if not 10 <= diameter_mm <= 80:
        raise InvalidInput("a seal is between 10 and 80 mm across", reason="INVALID_SEAL_SIZE")
    d = diameter_mm * MM
    ix1, iy1, ix2, iy2 = person.image
    right = ix1 + (ix2 - ix1) * overlap
    cy = (iy1 + iy2) / 2
    return (right - d, cy - d / 2, right, cy + d / 2)


def _centre_line(stamp: BaseStamp, style: TextBoxStyle, text: str, width: float,
                 y: float, font_name: str) -> bytes:
    # Each line embeds its own subset under its own resource name.
    tb = TextBox(style, writer=stamp.writer, resources=stamp.resources, box=None,
                 font_name=font_name)
    tb.content = text
    commands: bytes = tb.render()  # type: ignore[no-untyped-call]
    x = max(0.0, (width - tb.box.width) / 2)
    return b"q 1 0 0 1 %g %g cm %s Q" % (x, y, commands)


@dataclass(frozen=True)
class _PersonStyle(BaseStampStyle):
    title: str = ""
    name: str = ""
    image: Image.Image | None = None
    font: EmbeddedFont | None = None
    font_size: int = 13
    border_width: int = 0
    background: Any = None

    def create_stamp(self, writer: Any, box: layout.BoxConstraints,
                     text_params: dict[str, str]) -> BaseStamp:
        return _PersonStamp(writer, self, box)


class _PersonStamp(BaseStamp):
    def _render_inner_content(self) -> list[bytes]:
        style: _PersonStyle = self.style
        assert style.image is not None and style.font is not None
        w, h = self.box.width, self.box.height
        plan = person_layout((0, 0, w, h), style.image.size, font_size=style.font_size)
        text_style = TextBoxStyle(font=style.font, font_size=style.font_size)
        out = [_centre_line(self, text_style, style.title, w, h - plan.title_height * 1.05,
                            "FTitle")]
        ix1, iy1, ix2, iy2 = plan.image
        image = PdfImage(style.image, writer=self.writer,
                         box=layout.BoxConstraints(width=ix2 - ix1, height=iy2 - iy1))
        drawn = image.render()
        self.import_resources(image.resources)
        out.append(b"q 1 0 0 1 %g %g cm %s Q" % (ix1, iy1, drawn))
        out.append(_centre_line(self, text_style, style.name, w, plan.name_height * 0.25,
                                "FName"))
        return out


@dataclass(frozen=True)
class _ImageStyle(BaseStampStyle):
    image: Image.Image | None = None
    border_width: int = 0
    background: Any = None

    def create_stamp(self, writer: Any, box: layout.BoxConstraints,
                     text_params: dict[str, str]) -> BaseStamp:
        return _ImageStamp(writer, self, box)


class _ImageStamp(BaseStamp):
    def _render_inner_content(self) -> list[bytes]:
        assert self.style.image is not None
        image = PdfImage(self.style.image, writer=self.writer,
                         box=layout.BoxConstraints(width=self.box.width, height=self.box.height))
        drawn: bytes = image.render()
        self.import_resources(image.resources)
        return [drawn]


def person_signature(*, page: int, box: Box, title: str, full_name: str, image_png: bytes,
                     font: bytes, font_size: int = 13) -> VisibleSignature:
    """The appearance of an official's signature: title, signature image, full name."""
    if not title.strip() or not full_name.strip():
        raise InvalidInput("title and full name are required", reason="INVALID_APPEARANCE")
    style = _PersonStyle(title=title, name=full_name, image=load_png(image_png),
                         font=EmbeddedFont(font, font_size), font_size=font_size)
    return VisibleSignature(page=page, box=box, style=style)


def agency_seal(*, page: int, box: Box, seal_png: bytes) -> VisibleSignature:
    """The appearance of the issuing body's signature: its seal image filling ``box`` (use
    :func:`seal_box` for the position and the real size)."""
    return VisibleSignature(page=page, box=box, style=_ImageStyle(image=load_png(seal_png)))


def page_box(source: IO[bytes], page: int = 0) -> Box:
    """The ``/MediaBox`` of ``page`` (0-based, inherited from the page tree if need be) of the
    PDF read from the seekable ``source``, whose position is restored. Pass its right and top
    edges (``box[2]``, ``box[3]``) as ``page_width`` and ``page_height`` to
    :func:`electronic_copy`, so that the copy's text lands at the top right of any page size."""
    position = source.tell()
    try:
        reader = PdfFileReader(source, strict=False)
        node: Any = reader.find_page_for_modification(page)[0].get_object()  # type: ignore[no-untyped-call]
        while "/MediaBox" not in node and "/Parent" in node:
            node = node["/Parent"].get_object()
        x1, y1, x2, y2 = (float(v) for v in node["/MediaBox"])
    except (PdfError, ValueError, KeyError, IndexError, TypeError) as exc:
        raise InvalidInput(f"page {page + 1} of the document has no readable size",
                           reason="INVALID_PAGE") from exc
    finally:
        source.seek(position)
    return (min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2))


def electronic_copy_box(page_width: float, page_height: float, *,
                        width: float = 62 * MM, height: float = 18 * MM,
                        margin: float = 10 * MM) -> Box:
    """Top right of the page."""
    return (page_width - margin - width, page_height - margin - height,
            page_width - margin, page_height - margin)


@dataclass(frozen=True, slots=True)
class _CopyText:
    copy_type: str
    copying_body: str
    at: dt.datetime

    def render(self) -> str:
        when = self.at.astimezone(VIETNAM).strftime("%H:%M:%S %d/%m/%Y")
        return f"{self.copy_type}\n{self.copying_body}\nThời gian ký: {when}"


def electronic_copy(*, page_width: float, page_height: float, copying_body: str,
                    at: dt.datetime, font: bytes, copy_type: str = "Bản sao điện tử",
                    box: Box | None = None) -> VisibleSignature:
    """The appearance of an electronic copy's signature: text only, 10 pt, top right of page 1."""
    if at.tzinfo is None:
        raise InvalidInput("`at` must be timezone-aware", reason="NAIVE_DATETIME")
    text = _CopyText(copy_type, copying_body, at).render().replace("%", "%%")
    style = TextStampStyle(
        stamp_text=text, border_width=0, background=None,
        text_box_style=TextBoxStyle(font=EmbeddedFont(font, 10), font_size=10,
                                    text_color=(0, 0, 0)),
        inner_content_layout=layout.SimpleBoxLayoutRule(
            x_align=layout.AxisAlignment.ALIGN_MIN, y_align=layout.AxisAlignment.ALIGN_MAX,
            margins=layout.Margins(0, 0, 0, 0)),
    )
    return VisibleSignature(page=0, box=box or electronic_copy_box(page_width, page_height),
                            style=style)

