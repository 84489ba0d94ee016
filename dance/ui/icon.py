"""The app's favicon, drawn here so the browser never fetches one from a font CDN (the app must work offline)."""

from __future__ import annotations

from functools import lru_cache

from PIL import Image, ImageDraw

ACCENT = "#d6336c"  # the theme's primaryColor


@lru_cache(maxsize=1)
def app_icon(side: int = 64) -> Image.Image:
    """A white eighth note on a disc of the accent colour, as an RGBA image for st.set_page_config(page_icon=...)."""
    img = Image.new("RGBA", (side, side), (0, 0, 0, 0))
    draw = ImageDraw.Draw(img)
    u = side / 64
    draw.ellipse((0, 0, side - 1, side - 1), fill=ACCENT)
    draw.ellipse((16 * u, 36 * u, 32 * u, 48 * u), fill="white")  # note head
    draw.rectangle((28 * u, 14 * u, 32 * u, 42 * u), fill="white")  # stem
    draw.polygon([(32 * u, 14 * u), (46 * u, 22 * u), (46 * u, 28 * u), (32 * u, 21 * u)], fill="white")  # flag
    return img
