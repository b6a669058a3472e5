"""Writing sample clips: GIF, MP4 and the captioned grid."""

from __future__ import annotations

import logging

import av
import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw, ImageFont

from text2sign.data import fonts
from text2sign.data.synthetic import SyntheticSignDataset
from text2sign.data.video_io import caption_grid, read_clip, to_frames, write_gif, write_mp4


def clip() -> torch.Tensor:
    return SyntheticSignDataset("val", num_clips=1, num_frames=6, image_size=16)[0]["video"]


def test_frames_are_enlarged_by_an_integer_factor_to_an_even_size():
    frames = to_frames(torch.zeros(3, 2, 15, 15, dtype=torch.uint8), min_size=64)
    assert frames[0].shape == (90, 90, 3)  # factor 6: >= 64 px and even
    video = clip()
    enlarged = to_frames(video)[0]
    assert np.array_equal(enlarged[::8, ::8], video[:, 0].permute(1, 2, 0).numpy())


def test_gif_keeps_every_frame(tmp_path):
    video = clip()
    write_gif(tmp_path / "a.gif", video)
    frames, _ = read_clip(tmp_path / "a.gif")
    assert frames.shape == (6, 128, 128, 3)
    original = np.stack(to_frames(video))
    # GIF quantises to 256 colours: close, not identical
    assert np.abs(frames.astype(int) - original.astype(int)).mean() < 4


def test_mp4_is_h264_with_every_frame(tmp_path):
    write_mp4(tmp_path / "a.mp4", clip())
    with av.open(str(tmp_path / "a.mp4")) as container:
        stream = container.streams.video[0]
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
        assert stream.codec_context.name == "h264"
    assert len(frames) == 6 and frames[0].shape == (128, 128, 3)


def test_grid_has_a_row_per_clip():
    videos = torch.stack([clip(), clip()])
    grid = caption_grid(videos, ["hello", "thank you"], min_size=64)
    assert grid.size == (6 * 64, 2 * (64 + 14 + 2))


# Captions in any script are drawn with glyphs, not boxes.
MISSING = "\U0010FFFD"  # a code point no font has: drawn as the font's .notdef box


def label(image: Image.Image) -> bytes:
    return image.crop((0, 0, image.width, 14)).tobytes()  # the grid's caption row


def boxes(text: str, width: int) -> set[bytes]:
    """The caption row with `text` drawn as .notdef boxes, in every font the grid may use."""
    rows = set()
    for path in (str(fonts.SHIPPED), *fonts._system_fonts()):
        image = Image.new("RGB", (width, 14), "white")
        ImageDraw.Draw(image).text((2, 1), MISSING * len(text), fill="black",
                                   font=ImageFont.truetype(path, fonts.SIZE))
        rows.add(label(image))
    return rows


def covered(text: str) -> bool:
    return any(set(text) <= fonts._coverage(path)
               for path in (str(fonts.SHIPPED), *fonts._system_fonts()))


@pytest.mark.parametrize("caption", ["é", "ö", "Grüße", "こんにちは", "مرحبا"])
def test_captions_are_drawn_with_glyphs_not_boxes(caption, caplog):
    if not covered(caption):  # e.g. CJK without fonts-noto-cjk: said, not silent
        with caplog.at_level(logging.WARNING):
            fonts._warned.clear()
            caption_grid(clip()[None], [caption])
        assert f"no installed font has glyphs for {caption[0]!r}" in caplog.text
        pytest.skip(f"no installed font covers {caption!r}")
    grid = caption_grid(clip()[None], [caption])
    row = label(grid)
    assert row not in boxes(caption, grid.width)
    assert row != label(Image.new("RGB", grid.size, "white"))  # something was drawn


def test_a_caption_no_font_covers_is_drawn_as_boxes_with_a_warning(monkeypatch, caplog):
    monkeypatch.setattr(fonts, "_system_fonts", lambda: ())  # only the shipped DejaVu Sans
    monkeypatch.setattr(fonts, "_warned", set())
    with caplog.at_level(logging.WARNING):
        caption_grid(clip()[None], ["hello こんにちは"])
    assert ("no installed font has glyphs for 'こ' (U+3053), 'ち' (U+3061), 'に' (U+306B), "
            "'は' (U+306F), 'ん' (U+3093): they are drawn as boxes") in caplog.text
    assert "apt-get install fonts-noto-cjk" in caplog.text
