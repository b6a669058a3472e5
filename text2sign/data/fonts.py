"""The font a caption is drawn with (samples/grid.png, the analysis sample sheets).

Captions come in any language (PHOENIX's are German), so each is drawn with the first font
that has a glyph for every one of its characters: DejaVu Sans, which matplotlib ships (Latin,
Greek, Cyrillic, Arabic, Hebrew, ...), then the fonts installed on the system, regular sans
serif first (e.g. Noto Sans CJK from `apt-get install fonts-noto-cjk` for Chinese, Japanese and
Korean). When no font covers a caption, the one that covers most of it draws it, and a warning
names the characters shown as boxes. Pillow lays the text out with libraqm where it has it
(its wheels do), which joins Arabic letters and orders right-to-left text.
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path

import matplotlib
from matplotlib import font_manager, ft2font
from PIL import ImageFont

log = logging.getLogger(__name__)

SIZE = 11  # pixels: a caption line fits the grid's 14-pixel label row
SHIPPED = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
_warned: set[str] = set()  # characters already reported as missing


def caption_font(text: str, size: int = SIZE) -> ImageFont.FreeTypeFont:
    """The font to draw `text` with (see the module's docstring)."""
    needed = _drawn(text)
    best = str(SHIPPED)
    missing = needed - _coverage(best)
    for path in _system_fonts() if missing else ():
        lacking = needed - _coverage(path)
        if len(lacking) < len(missing):
            best, missing = path, lacking
            if not missing:
                break
    new = "".join(sorted(missing - _warned))
    if new:
        _warned.update(new)
        log.warning("no installed font has glyphs for %s: they are drawn as boxes; install a "
                    "font that covers them (Chinese, Japanese, Korean: apt-get install "
                    "fonts-noto-cjk)", ", ".join(f"{c!r} (U+{ord(c):04X})" for c in new))
    return _load(best, size)


def _drawn(text: str) -> frozenset[str]:
    """The characters of `text` that need a glyph (not spaces or invisible format marks)."""
    return frozenset(c for c in text if not c.isspace() and c.isprintable())


@functools.cache
def _system_fonts() -> tuple[str, ...]:
    """The fonts installed on the system, regular sans serif ones first."""
    ranked = []
    for path in font_manager.findSystemFonts():
        try:
            face = ft2font.FT2Font(path)
        except (OSError, RuntimeError):
            continue  # a file FreeType cannot read
        regular = face.style_name in ("Regular", "Book")
        ranked.append((not regular, "Sans" not in face.family_name, path))
    return tuple(path for *_, path in sorted(ranked))


@functools.cache
def _coverage(path: str) -> frozenset[str]:
    return frozenset(map(chr, ft2font.FT2Font(path).get_charmap()))


@functools.cache
def _load(path: str, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(path, size)
