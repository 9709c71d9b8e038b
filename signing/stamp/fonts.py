"""Embedding a TrueType font from bytes for appearance text (Vietnamese needs a font that has
its glyphs: Liberation Serif 2.x, metric-compatible with Times New Roman, does).

pyHanko's glyph accumulator writes the ``/W`` widths of a CIDFontType2 in the font's own units;
PDF wants thousandths of an em, so fonts whose em is not 1000 units (TrueType fonts usually have
2048) came out with far too wide letter spacing. The accumulator here works in a 1000-unit em
throughout (HarfBuzz scale, advances and widths), which is what PDF expects.

Text the font cannot show (HarfBuzz ends with ``.notdef``, glyph 0, even after trying the
decomposed form) is refused with ``FONT_MISSING_GLYPHS``: pyHanko would embed the boxes, and its
``/ActualText`` would still make the text look right to extraction tools.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

from pyhanko.pdf_utils.font.api import FontEngineFactory, ShapeResult
from pyhanko.pdf_utils.font.opentype import GlyphAccumulator

from signing.errors import InvalidInput

__all__ = ["EmbeddedFont"]

_EM = 1000


class _ThousandthEmAccumulator(GlyphAccumulator):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._font_em = self.units_per_em
        self.units_per_em = _EM
        self.hb_font.scale = (_EM, _EM)
        self._shaping = ""

    def shape(self, txt: str, with_actual_text: bool = True) -> ShapeResult:
        self._shaping = txt
        try:
            return super().shape(txt, with_actual_text)
        finally:
            self._shaping = ""

    def _get_cid_and_width(self, glyph_id: int) -> tuple[int, int]:
        if glyph_id == 0:
            # .notdef: the font has no glyph for a character (even after HarfBuzz tried the
            # decomposed form). The text would show as boxes, while /ActualText still made
            # it look right to text extraction: refuse instead.
            missing = "".join(sorted({c for c in self._shaping
                                      if not c.isspace() and self.hb_font.get_nominal_glyph(
                                          ord(c)) is None}))
            raise InvalidInput(f"the appearance font has no glyph for {missing or 'a character'}"
                               f" in {self._shaping!r}: use a font with Vietnamese glyphs "
                               "(Liberation Serif 2, Times New Roman)",
                               reason="FONT_MISSING_GLYPHS")
        cached = self._glyphs.get(glyph_id)
        if cached is not None:
            return cached
        cid, width = super()._get_cid_and_width(glyph_id)
        scaled = cid, round(width * _EM / self._font_em)
        self._glyphs[glyph_id] = scaled
        return scaled


@dataclass(frozen=True)
class EmbeddedFont(FontEngineFactory):
    """A font engine factory for pyHanko text boxes, from the font file's bytes."""

    data: bytes
    font_size: int = 10

    def create_font_engine(self, writer: Any, obj_stream: Any = None) -> GlyphAccumulator:
        return _ThousandthEmAccumulator(writer=writer, font_handle=io.BytesIO(self.data),
                                        font_size=self.font_size, obj_stream=obj_stream)
