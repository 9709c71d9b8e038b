"""Signature and seal images drawn for tests with Pillow: a blue handwritten-like stroke on a
transparent background, and a red round seal."""

from __future__ import annotations

import io
import math

from PIL import Image, ImageDraw

BLUE = (20, 40, 200, 255)
RED = (220, 20, 20, 255)


def signature_png(width: int = 600, height: int = 240) -> bytes:
    image = Image.new("RGBA", (width, height), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    points = [(int(20 + t * (width - 40) / 200),
               int(height / 2 + math.sin(t / 9) * height / 3 * math.cos(t / 31)))
              for t in range(201)]
    draw.line(points, fill=BLUE, width=12, joint="curve")
    draw.line([(40, height - 40), (width - 40, height - 60)], fill=BLUE, width=8)
    return _png(image)


def seal_png(size: int = 500) -> bytes:
    image = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    draw.ellipse((8, 8, size - 8, size - 8), outline=RED, width=22)
    draw.ellipse((70, 70, size - 70, size - 70), outline=RED, width=10)
    c, r = size / 2, size / 6
    star = [(c + r * math.cos(math.pi / 2 + k * 4 * math.pi / 5),
             c - r * math.sin(math.pi / 2 + k * 4 * math.pi / 5)) for k in range(5)]
    draw.polygon(star, fill=RED)
    return _png(image)


def _png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG", dpi=(300, 300))
    return out.getvalue()
