"""Signature appearances of Decree 30/2020/NĐ-CP, Appendix I (signed official documents).

* The person's signature (:func:`person_signature`): the signer's title on top, the signature
  image (blue, transparent PNG) centred below it, the full name at the bottom. The title has one
  to three lines, for the authority forms of Appendix I (:func:`authority_title`): ``KT.`` (ký
  thay, a deputy signing for the head: "KT. CHỦ TỊCH" over "PHÓ CHỦ TỊCH"), ``TM.`` (thay mặt,
  for a collective body: "TM. ỦY BAN NHÂN DÂN" over "CHỦ TỊCH", or over "KT. CHỦ TỊCH" and "PHÓ
  CHỦ TỊCH"), ``Q.`` (quyền, acting), ``TL.`` (thừa lệnh) and ``TUQ.`` (thừa ủy quyền). The
  title band always has room for three lines, the lines sitting on its bottom, so the signature
  image (and the seal placed over it) is where :func:`person_layout` says whatever the title;
  a line too wide for the box makes the whole title smaller (down to 7 pt), never clipped.
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
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import IO, Any
from zoneinfo import ZoneInfo

from PIL import Image
from pyhanko.pdf_utils import content, generic, layout
from pyhanko.pdf_utils.images import PdfImage
from pyhanko.pdf_utils.misc import PdfError
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.pdf_utils.text import TextBoxStyle
from pyhanko.stamp import BaseStamp, BaseStampStyle, TextStampStyle

from signing.errors import InvalidInput
from signing.sign.pades import VisibleSignature
from signing.stamp.fonts import EmbeddedFont

__all__ = [
    "AUTHORITY_PREFIXES",
    "MM",
    "Box",
    "PersonLayout",
    "agency_seal",
    "authority_title",
    "electronic_copy",
    "electronic_copy_box",
    "page_box",
    "person_layout",
    "person_signature",
    "seal_box",
    "text_width",
    "title_lines",
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


AUTHORITY_PREFIXES = ("KT.", "TM.", "Q.", "TL.", "TUQ.")
MAX_TITLE_LINES = 3
MIN_TITLE_FONT_SIZE = 7
_LINE = 1.3  # line height, in font sizes
_BAND_PAD = 0.35  # space above the top line and between the title and the image, in font sizes


@dataclass(frozen=True, slots=True)
class PersonLayout:
    """Where the parts of a person's signature go, inside a field box."""

    box: Box
    title_height: float  # the title band (room for three lines), at the top of the box
    name_height: float
    image: Box  # where the signature image is drawn (page coordinates)


def person_layout(box: Box, image_size: tuple[int, int], *, font_size: float = 13) -> PersonLayout:
    """Title band on top (three lines at ``font_size``, whatever the title), name band at the
    bottom, the image scaled (aspect kept) and centred in between."""
    x1, y1, x2, y2 = box
    if x2 <= x1 or y2 <= y1:
        raise InvalidInput("empty signature box", reason="INVALID_BOX")
    title_band = font_size * (MAX_TITLE_LINES * _LINE + _BAND_PAD)
    name_band = font_size * 1.6
    gap = font_size * 0.3  # keeps the image off the name's diacritics
    free_w, free_h = x2 - x1, (y2 - y1) - title_band - name_band - gap
    if free_h <= font_size:
        raise InvalidInput("the signature box is too low for title, image and name",
                           reason="INVALID_BOX")
    w, h = image_size
    if w <= 0 or h <= 0:
        raise InvalidInput("the signature image has no size", reason="INVALID_IMAGE")
    scale = min(free_w / w, free_h / h)
    iw, ih = w * scale, h * scale
    ix = x1 + (free_w - iw) / 2
    iy = y1 + name_band + gap + (free_h - ih) / 2
    return PersonLayout(box=box, title_height=title_band, name_height=name_band,
                        image=(ix, iy, ix + iw, iy + ih))


def title_lines(title: str | Sequence[str]) -> tuple[str, ...]:
    """A title as its lines: a string is split at line breaks; one to three non-empty lines."""
    raw = title.splitlines() if isinstance(title, str) else list(title)
    lines = tuple(" ".join(line.split()) for line in raw)
    if not lines or len(lines) > MAX_TITLE_LINES or not all(lines):
        raise InvalidInput("a title has one to three non-empty lines",
                           reason="INVALID_APPEARANCE")
    return lines


def authority_title(prefix: str, principal: str, signer_title: str = "",
                    *more: str) -> tuple[str, ...]:
    """The title lines of an authority form (Decree 30/2020, Appendix I).

    ``authority_title("KT.", "CHỦ TỊCH", "PHÓ CHỦ TỊCH")`` -> ``("KT. CHỦ TỊCH", "PHÓ CHỦ
    TỊCH")``; ``authority_title("TM.", "ỦY BAN NHÂN DÂN", "KT. CHỦ TỊCH", "PHÓ CHỦ TỊCH")`` for
    three lines; ``authority_title("Q.", "GIÁM ĐỐC")`` for one.
    """
    if prefix not in AUTHORITY_PREFIXES:
        raise InvalidInput(f"the authority prefix is one of {', '.join(AUTHORITY_PREFIXES)}",
                           reason="INVALID_APPEARANCE")
    return title_lines([f"{prefix} {principal.strip()}",
                        *(t for t in (signer_title, *more) if t.strip())])


@lru_cache(maxsize=8)
def _hb_font(data: bytes) -> Any:
    import uharfbuzz as hb  # type: ignore[import-untyped]

    font = hb.Font(hb.Face(data))
    font.scale = (1000, 1000)
    return font


def text_width(font: bytes, text: str, font_size: float) -> float:
    """The advance width of ``text`` in points, shaped as pyHanko shapes it (HarfBuzz)."""
    import uharfbuzz as hb

    buffer = hb.Buffer()
    buffer.add_str(text)
    buffer.guess_segment_properties()
    hb.shape(_hb_font(font), buffer, {})
    return float(sum(p.x_advance for p in buffer.glyph_positions)) * font_size / 1000


def fitted_size(font: bytes, lines: Sequence[str], width: float, font_size: int) -> int:
    """The largest whole-point size, at most ``font_size``, at which every line fits ``width``
    (with a little margin); refuses lines that do not fit even at 7 pt."""
    usable = width * 0.96
    widest = max(text_width(font, line, font_size) for line in lines)
    size = font_size if widest <= usable else font_size * usable / widest
    if size < MIN_TITLE_FONT_SIZE:
        raise InvalidInput("the title or name is too long for the signature box",
                           reason="TEXT_TOO_LONG")
    return int(size)


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


@dataclass(frozen=True)
class _PersonStyle(BaseStampStyle):
    title: tuple[str, ...] = ()
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
    def _lines(self, data: bytes, size: int, lines: Sequence[tuple[str, float]], width: float,
               name: str) -> list[bytes]:
        """Centred lines at the given baselines, all from one embedded font subset."""
        engine = EmbeddedFont(data, size).create_font_engine(self.writer)
        engine.font_size = size
        out = []
        for text, baseline in lines:
            shaped = engine.shape(text)
            x = max(0.0, (width - shaped.x_advance * size) / 2)
            out.append(b"q BT /%s %d Tf %g %g Td %s ET Q"
                       % (name.encode(), size, x, baseline, shaped.graphics_ops))
        self.set_resource(category=content.ResourceType.FONT, name=generic.NameObject(f"/{name}"),
                          value=engine.as_resource())
        return out

    def _render_inner_content(self) -> list[bytes]:
        style: _PersonStyle = self.style
        assert style.image is not None and style.font is not None
        w, h = self.box.width, self.box.height
        nominal = style.font_size
        plan = person_layout((0, 0, w, h), style.image.size, font_size=nominal)
        data = style.font.data
        size = fitted_size(data, style.title, w, nominal)
        name_size = fitted_size(data, [style.name], w, nominal)
        # Title lines sit on the bottom of their band, the last one just above the image; the
        # name's baseline leaves room for letters below it (Vietnamese dot below: ạ, ị).
        bottom = h - plan.title_height + nominal * 0.3
        title = [(line, bottom + i * size * _LINE) for i, line in enumerate(reversed(style.title))]
        name = [(style.name, plan.name_height * 0.3)]
        if name_size == size:
            out = self._lines(data, size, [*title, *name], w, "FText")
        else:
            out = self._lines(data, size, title, w, "FTitle")
            out += self._lines(data, name_size, name, w, "FName")
        ix1, iy1, ix2, iy2 = plan.image
        image = PdfImage(style.image, writer=self.writer,
                         box=layout.BoxConstraints(width=ix2 - ix1, height=iy2 - iy1))
        drawn = image.render()
        self.import_resources(image.resources)
        out.append(b"q 1 0 0 1 %g %g cm %s Q" % (ix1, iy1, drawn))
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


def person_signature(*, page: int, box: Box, title: str | Sequence[str], full_name: str,
                     image_png: bytes, font: bytes, font_size: int = 13) -> VisibleSignature:
    """The appearance of an official's signature: title (one to three lines, e.g. an
    authority form from :func:`authority_title`, or a string with line breaks), signature image,
    full name. Text too wide for the box is set smaller, never clipped; text that would need less
    than 7 pt is refused (``TEXT_TOO_LONG``), as is a box too low (``INVALID_BOX``)."""
    if not full_name.strip():
        raise InvalidInput("title and full name are required", reason="INVALID_APPEARANCE")
    if not 8 <= font_size <= 20:
        raise InvalidInput("the font size is between 8 and 20 pt", reason="INVALID_APPEARANCE")
    lines = title_lines(title)
    image = load_png(image_png)
    width = box[2] - box[0]
    person_layout(box, image.size, font_size=font_size)  # refuses boxes too small, now
    fitted_size(font, lines, width, font_size)
    fitted_size(font, [full_name.strip()], width, font_size)
    style = _PersonStyle(title=lines, name=full_name.strip(), image=image,
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

