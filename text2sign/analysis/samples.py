"""Side-by-side sample sheets: per fixed prompt, one row per group (its first seed's clip)."""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image, ImageDraw, ImageSequence

from text2sign.analysis.collect import Run
from text2sign.analysis.study import Study
from text2sign.data.fonts import caption_font

MAX_FRAMES = 16
MIN_HEIGHT = 64  # 16-pixel clips are scaled up (nearest neighbour) to stay legible
PAD = 4


def read_index(run: Run) -> dict[str, Path]:
    """prompt text -> GIF path, from samples/index.json; {} when absent or unreadable."""
    try:
        index = json.loads((run.path / "samples" / "index.json").read_text())
        return {entry["text"]: run.path / "samples" / entry["gif"] for entry in index["prompts"]}
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def sample_sheets(study: Study, out: Path) -> list[Path] | str:
    """One PNG per prompt, or the reason there is none."""
    rows = []  # (group label, prompt -> gif) with the group's first seed that has samples
    for group in study.groups:
        index = next((found for run in group.completed if (found := read_index(run))), {})
        rows.append((study.label(group), index))
    prompts = list(dict.fromkeys(text for _, index in rows for text in index))
    if not prompts:
        return "no completed run has samples/index.json"
    written = []
    for k, text in enumerate(prompts, 1):
        stem = next(index[text].stem for _, index in rows if text in index)
        sheet = _sheet(text, [(label, _frames(index.get(text))) for label, index in rows])
        written.append(out / f"samples_{k:02d}_{stem}.png")
        sheet.save(written[-1])
    return written


def _frames(gif: Path | None) -> list[Image.Image]:
    """Up to MAX_FRAMES frames spread over the clip, scaled to at least MIN_HEIGHT pixels."""
    if gif is None:
        return []
    try:
        with Image.open(gif) as image:
            frames = [frame.convert("RGB") for frame in ImageSequence.Iterator(image)]
    except OSError:
        return []
    step = max(1, -(-len(frames) // MAX_FRAMES))
    frames = frames[::step]
    scale = max(1, -(-MIN_HEIGHT // frames[0].height))
    return [f.resize((f.width * scale, f.height * scale), Image.NEAREST) for f in frames]


def _sheet(prompt: str, rows: list[tuple[str, list[Image.Image]]]) -> Image.Image:
    """The prompt on top, then a row per group: its label, then its frames; text is drawn in
    a font that has its characters (text2sign/data/fonts.py)."""
    clips = [frames for _, frames in rows if frames]
    cell_w = max(f.width for frames in clips for f in frames)
    cell_h = max(f.height for frames in clips for f in frames)
    label_w = int(max(caption_font(label).getlength(label) for label, _ in rows)) + 2 * PAD
    columns = max(len(frames) for frames in clips)
    title_h = 20
    sheet = Image.new("RGB", (label_w + columns * (cell_w + PAD),
                              title_h + len(rows) * (cell_h + PAD)), "white")
    draw = ImageDraw.Draw(sheet)
    title = f'"{prompt}"'
    draw.text((PAD, PAD), title, fill="black", font=caption_font(title))
    for r, (label, frames) in enumerate(rows):
        top = title_h + r * (cell_h + PAD)
        draw.text((PAD, top + cell_h // 2 - 6), label, fill="black", font=caption_font(label))
        if not frames:
            draw.text((label_w, top + cell_h // 2 - 6), "no sample", fill="gray",
                      font=caption_font("no sample"))
        for c, frame in enumerate(frames):
            sheet.paste(frame, (label_w + c * (cell_w + PAD), top))
    return sheet
