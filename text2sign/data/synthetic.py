"""Procedurally rendered "synthetic signer" videos: the embedded default dataset.

Scene: a signer seen from the front on a plain background: a torso (a filled
ellipse cut by the bottom edge), a neck and a head disc, in per-signer skin,
shirt and background colours. Two hands are drawn on top as soft-edged
elliptical blobs in FIXED colours (``HAND_COLOURS``) that no body or
background palette comes near, so the hands of a generated clip can be found
again by colour alone. The signer faces the camera, so the dominant right hand
appears on the left half of the image.

A caption is 1 to 3 glosses. Each gloss is one row of a declarative table
(``Gloss``): a starting place on the body, a path, one or both hands and a hand
shape. A clip's time is split evenly between its glosses; in each slot the hands
leave the rest position, perform the movement and return. The signer's
``speed`` sets how fast the movement completes within its slot (a fast signer
then holds the end pose), so one caption looks different across signers.

Coordinates are (x, y) in [0, 1] image units, y pointing down; pixel ``j`` of
an image of ``size`` pixels has its centre at ``(j + 0.5) / size``. Places and
paths are given for a neutral signer (no offset, scale 1); a signer's offset
and scale move the whole body, hands included, about ``BODY_PIVOT``.

Everything is a pure function of its arguments and the seed: no files, no
downloads. Rendering is numpy, vectorised over frames and pixels.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from text2sign.data.sampler import Key, split_key

HANDS = ("right", "left")
HAND_COLOURS: dict[str, tuple[int, int, int]] = {"right": (230, 30, 40), "left": (30, 80, 240)}
# No palette colour may come closer than this (Euclidean RGB) to a hand colour.
MIN_HAND_COLOUR_DISTANCE = 100.0
MAX_GLOSSES = 3
SPLITS = ("train", "val", "test")

# Palettes keep away from saturated red and blue. Backgrounds are light and
# shirts mid-to-dark, so the torso always stands out from the background.
SKIN_PALETTE = ((236, 196, 150), (214, 160, 110), (180, 128, 84), (141, 98, 62), (96, 68, 48))
SHIRT_PALETTE = ((60, 60, 64), (105, 105, 98), (85, 107, 47), (140, 115, 75), (40, 110, 100), (115, 75, 110))
BACKGROUND_PALETTE = (
    (232, 232, 226), (210, 224, 210), (238, 228, 205), (196, 198, 200), (222, 214, 232), (200, 214, 222))

# Body layout of the neutral signer: (centre x, centre y, radius x, radius y).
HEAD = (0.5, 0.27, 0.12, 0.12)
NECK = (0.5, 0.44, 0.05, 0.08)
TORSO = (0.5, 0.92, 0.30, 0.40)
BODY_PIVOT = (0.5, 0.6)  # fixed point of a signer's scale (about mid-chest)

# Right-hand positions of the neutral signer; the left hand mirrors x about 0.5.
REST = (0.40, 0.82)
PLACES: dict[str, tuple[float, float]] = {
    "head": (0.35, 0.24),  # beside the temple
    "chin": (0.47, 0.40),
    "chest": (0.43, 0.62),
    "side": (0.24, 0.60),  # out beside the torso
    "neutral": (0.34, 0.50),  # in front of the body, shoulder height
}
# Image directions for the right hand: "in" points towards the body midline.
_D = 0.5**0.5
DIRECTIONS: dict[str, tuple[float, float]] = {
    "up": (0.0, -1.0), "down": (0.0, 1.0), "in": (1.0, 0.0), "out": (-1.0, 0.0),
    "up_in": (_D, -_D), "up_out": (-_D, -_D), "down_in": (_D, _D), "down_out": (-_D, _D),
}
# Hand shapes as blob radii (x, y) before tilt, in image units at scale 1.
SHAPES: dict[str, tuple[float, float]] = {
    "fist": (0.07, 0.07),
    "open": (0.09, 0.09),
    "flat": (0.1, 0.055),
    "point": (0.05, 0.095),
}
HAND_MODES = ("right", "mirror", "parallel")  # right only, or both hands
PATHS = ("hold", "line", "tap", "arc", "circle", "zigzag")

# Fractions of a gloss slot: leaving rest, the movement at speed 1, returning.
T_IN, T_MOVE, T_OUT = 0.15, 0.5, 0.15
SPEED_RANGE = (0.75, 1.25)  # 0.15 + 0.5 / 0.75 < 0.85: the slowest still finishes


@dataclass(frozen=True)
class Gloss:
    """One sign: where it starts, how it moves, with which hands and shape."""

    word: str
    place: str  # key of PLACES
    path: str  # one of PATHS
    direction: str = "in"  # key of DIRECTIONS; orients the path
    amplitude: float = 0.0  # path extent in image units
    hands: str = "right"  # one of HAND_MODES
    shape: str = "fist"  # key of SHAPES
    tilt: float = 0.0  # degrees, blob orientation of the right hand

    def __post_init__(self) -> None:
        for value, allowed in ((self.place, PLACES), (self.path, PATHS), (self.direction, DIRECTIONS),
                               (self.hands, HAND_MODES), (self.shape, SHAPES)):
            if value not in allowed:
                raise ValueError(f"gloss {self.word!r}: {value!r} is not one of {tuple(allowed)}")


GLOSSES: tuple[Gloss, ...] = (
    Gloss("hello", "head", "line", "out", 0.14, shape="flat"),
    Gloss("thank you", "chin", "line", "down_out", 0.18, shape="flat"),
    Gloss("please", "chest", "circle", "up", 0.16, shape="open"),
    Gloss("sorry", "chest", "circle", "down", 0.16, shape="fist"),
    Gloss("yes", "neutral", "tap", "down", 0.14, shape="fist"),
    Gloss("no", "side", "tap", "up", 0.14, shape="point"),
    Gloss("help", "chest", "line", "up", 0.16, "parallel", "fist"),
    Gloss("more", "neutral", "tap", "in", 0.12, "mirror", "fist"),
    Gloss("want", "neutral", "line", "down_in", 0.14, "mirror", "open"),
    Gloss("eat", "chin", "tap", "up_in", 0.07, shape="point", tilt=-30.0),
    Gloss("drink", "chest", "line", "up_in", 0.2, shape="fist"),
    Gloss("friend", "neutral", "circle", "in", 0.14, "parallel", "point"),
    Gloss("family", "neutral", "arc", "down", 0.18, "mirror", "open"),
    Gloss("home", "head", "arc", "down", 0.14, shape="fist"),
    Gloss("school", "neutral", "tap", "down", 0.14, "parallel", "flat"),
    Gloss("work", "side", "tap", "down", 0.1, "parallel", "fist"),
    Gloss("good", "chin", "line", "down", 0.2, shape="flat"),
    Gloss("bad", "chin", "arc", "out", 0.16, shape="flat", tilt=45.0),
    Gloss("happy", "chest", "circle", "up", 0.18, "mirror", "open"),
    Gloss("sad", "head", "line", "down", 0.2, "mirror", "open"),
    Gloss("name", "neutral", "tap", "up", 0.14, "parallel", "flat"),
    Gloss("go", "neutral", "line", "up", 0.18, "parallel", "point"),
    Gloss("come", "side", "line", "in", 0.2, "mirror", "point"),
    Gloss("stop", "neutral", "line", "down", 0.16, shape="flat", tilt=90.0),
    Gloss("where", "neutral", "zigzag", "in", 0.16, shape="point"),
    Gloss("love", "chest", "hold", hands="mirror", shape="fist"),
    Gloss("think", "head", "tap", "in", 0.06, shape="point"),
)
_BY_WORD: dict[str, int] = {g.word: i for i, g in enumerate(GLOSSES)}


@dataclass(frozen=True)
class Signer:
    """Appearance and timing of one synthetic signer (colours are uint8 RGB)."""

    id: int
    offset_x: float
    offset_y: float
    scale: float
    speed: float
    skin: tuple[int, int, int]
    shirt: tuple[int, int, int]
    background: tuple[int, int, int]


def make_signer(signer_id: int, seed: int = 0) -> Signer:
    """The signer ``signer_id``: a pure function of (seed, signer_id)."""
    _check_non_negative("signer_id", signer_id)
    _check_non_negative("seed", seed)
    rng = np.random.default_rng([seed, 0, signer_id])  # stream 0: signers, 1+: clips
    return Signer(
        id=signer_id,
        offset_x=float(rng.uniform(-0.05, 0.05)),
        offset_y=float(rng.uniform(-0.04, 0.04)),
        scale=float(rng.uniform(0.9, 1.05)),
        speed=float(rng.uniform(*SPEED_RANGE)),
        skin=_pick(rng, SKIN_PALETTE),
        shirt=_pick(rng, SHIRT_PALETTE),
        background=_pick(rng, BACKGROUND_PALETTE),
    )


def _pick(rng: np.random.Generator, palette: Sequence[tuple[int, int, int]]) -> tuple[int, int, int]:
    r, g, b = palette[rng.integers(len(palette))]
    return (r, g, b)


# --------------------------------------------------------------------------- motion


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def _path_offsets(path: str, u: np.ndarray, d: np.ndarray) -> np.ndarray:
    """Displacement (N, 2) from the start place at progress u (N,), unit amplitude."""
    n = np.array([-d[1], d[0]])  # d turned by 90 degrees: sideways component
    u = u[:, None]
    if path == "hold":
        return np.zeros((len(u), 2))
    if path == "line":
        return u * d
    if path == "tap":  # out and back twice
        return 0.5 * (1.0 - np.cos(4.0 * np.pi * u)) * d
    if path == "zigzag":  # along d, swinging sideways
        return u * d + 0.25 * np.sin(4.0 * np.pi * u) * n
    # arc: half circle ending one amplitude along d; circle: the full loop back.
    theta = (np.pi if path == "arc" else 2.0 * np.pi) * u
    return 0.5 * ((1.0 - np.cos(theta)) * d + np.sin(theta) * n)


def _gloss_motion(gloss: Gloss, s: np.ndarray, speed: float) -> np.ndarray:
    """Neutral-signer hand positions (N, 2, 2) at slot-local times s in [0, 1]."""
    u = _smoothstep((s - T_IN) * speed / T_MOVE)
    offset = gloss.amplitude * _path_offsets(gloss.path, u, np.array(DIRECTIONS[gloss.direction]))
    start = np.array(PLACES[gloss.place])
    right = start + offset
    rest = _rest_positions()
    if gloss.hands == "right":
        left = np.broadcast_to(rest[1], right.shape)
    else:  # the left hand starts at the mirrored place; "mirror" also flips its motion
        flip = [-1.0, 1.0] if gloss.hands == "mirror" else [1.0, 1.0]
        left = _mirror(start) + flip * offset
    active = np.stack([right, left], axis=1)
    # Blend from rest in, and back to rest out, with eased weights.
    w = _smoothstep(np.minimum(s / T_IN, (1.0 - s) / T_OUT))[:, None, None]
    return (rest + w * (active - rest)).astype(np.float32)


def _mirror(point: np.ndarray) -> np.ndarray:
    """Reflect a right-hand position onto the left side of the body midline."""
    return np.array([1.0 - point[0], point[1]])


def _rest_positions() -> np.ndarray:
    return np.array([REST, _mirror(np.array(REST))])


def _motion(glosses: Sequence[Gloss], num_frames: int, speed: float) -> tuple[np.ndarray, np.ndarray]:
    """Neutral-signer hand positions (T, 2, 2) and the gloss index of each frame (T,)."""
    clip_time = (np.arange(num_frames) + 0.5) / num_frames * len(glosses)
    slot = np.minimum(clip_time.astype(int), len(glosses) - 1)
    hands = np.empty((num_frames, 2, 2), np.float32)
    for k, gloss in enumerate(glosses):
        frames = slot == k
        hands[frames] = _gloss_motion(gloss, clip_time[frames] - k, speed)
    return hands, slot


def gloss_template(word: str, num_frames: int) -> np.ndarray:
    """Canonical (num_frames, 2, 2) trajectory of one gloss for a neutral signer.

    The same as the hands of a one-gloss clip with no offset, scale 1, speed 1.
    """
    _check_positive("num_frames", num_frames)
    return _motion([_lookup(word)], num_frames, 1.0)[0]


def _to_image(points: np.ndarray, signer: Signer) -> np.ndarray:
    """Neutral-signer coordinates (..., 2) to this signer's image coordinates."""
    pivot = np.array(BODY_PIVOT)
    return pivot + signer.scale * (points - pivot) + [signer.offset_x, signer.offset_y]


# --------------------------------------------------------------------------- rendering


def _pixel_centres(size: int) -> np.ndarray:
    return ((np.arange(size) + 0.5) / size).astype(np.float32)


def _ellipse_coverage(shape: tuple[float, float, float, float], signer: Signer, size: int) -> np.ndarray:
    """Anti-aliased (H, W) coverage of a body ellipse: ~1 pixel wide soft edge."""
    cx, cy = (float(c) for c in _to_image(np.array(shape[:2]), signer))  # Python floats keep float32
    rx, ry = signer.scale * shape[2], signer.scale * shape[3]
    p = _pixel_centres(size)
    q = np.sqrt(((p[None, :] - cx) / rx) ** 2 + ((p[:, None] - cy) / ry) ** 2)
    return np.clip(0.5 + (1.0 - q) * min(rx, ry) * size, 0.0, 1.0)


def _body_layer(signer: Signer, size: int) -> np.ndarray:
    """Static (3, 1, H, W) float image of the background and the signer's body."""
    image = np.broadcast_to(np.array(signer.background, np.float32)[:, None, None], (3, size, size))
    for part, colour in ((TORSO, signer.shirt), (NECK, signer.skin), (HEAD, signer.skin)):
        alpha = _ellipse_coverage(part, signer, size)
        image = image + alpha * (np.array(colour, np.float32)[:, None, None] - image)
    return image[:, None]


def _hand_alpha(centres: np.ndarray, radii: np.ndarray, tilt: np.ndarray, size: int) -> np.ndarray:
    """(T, H, W) opacity of one hand blob per frame: opaque core, smoothstep rim.

    centres (T, 2), radii (T, 2) and tilt (T,) in radians. Radii are kept above
    one pixel so that a 16 px image still shows a solid hand-coloured core.
    """
    p = _pixel_centres(size)
    radii = np.maximum(radii, 1.0 / size)
    dx = p[None, None, :] - centres[:, 0, None, None]
    dy = p[None, :, None] - centres[:, 1, None, None]
    cos, sin = np.cos(tilt)[:, None, None], np.sin(tilt)[:, None, None]
    along, across = cos * dx + sin * dy, cos * dy - sin * dx
    q = np.sqrt((along / radii[:, 0, None, None]) ** 2 + (across / radii[:, 1, None, None]) ** 2)
    return 1.0 - _smoothstep((q - 0.55) / 0.45)


def render_clip(
    words: Sequence[str], signer: Signer, num_frames: int, image_size: int,
    hand_scale: float = 1.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Render the signer signing ``words`` one after another, hands ``hand_scale`` times
    their natural size.

    Returns the video, uint8 (3, T, H, W), and the ground-truth hand centres,
    float32 (T, 2, 2) as (x, y) in [0, 1] image coordinates, hands in HANDS order.
    """
    if isinstance(words, str) or len(words) == 0:
        raise ValueError(f"words must be a non-empty sequence of glosses, got {words!r}")
    glosses = [_lookup(w) for w in words]
    _check_positive("num_frames", num_frames)
    _check_image_size(image_size)

    neutral, slot = _motion(glosses, num_frames, signer.speed)
    hands = _to_image(neutral, signer).astype(np.float32)
    radii, tilt = (x[slot] for x in _hand_shapes(glosses))

    video = np.broadcast_to(_body_layer(signer, image_size), (3, num_frames, image_size, image_size))
    # Left first so the dominant right hand is on top where they overlap.
    for h in (1, 0):
        size = hand_scale * signer.scale * radii[:, h]
        alpha = _hand_alpha(hands[:, h], size, tilt[:, h], image_size)[None]
        colour = np.array(HAND_COLOURS[HANDS[h]], np.float32)[:, None, None, None]
        video = video + alpha * (colour - video)
    return np.rint(video).astype(np.uint8), hands


def _hand_shapes(glosses: Sequence[Gloss]) -> tuple[np.ndarray, np.ndarray]:
    """Blob radii (G, 2 hands, 2) and tilt in radians (G, 2 hands) per gloss.

    The left hand mirrors the right's shape; when idle it is an untilted fist.
    """
    radii = np.array([[SHAPES[g.shape], SHAPES[g.shape if g.hands != "right" else "fist"]]
                      for g in glosses], np.float32)
    tilt = np.radians([[g.tilt, -g.tilt if g.hands != "right" else 0.0] for g in glosses], dtype=np.float32)
    return radii, tilt


# --------------------------------------------------------------------------- dataset


def split_signers(num_signers: int, num_val_signers: int, num_test_signers: int) -> dict[str, list[int]]:
    """Signer-disjoint partition: the last ids are test, the ones before them val."""
    _check_positive("num_val_signers", num_val_signers)
    _check_positive("num_test_signers", num_test_signers)
    num_train = num_signers - num_val_signers - num_test_signers
    if num_train < 1:
        raise ValueError(
            f"num_signers ({num_signers}) must exceed num_val_signers + num_test_signers "
            f"({num_val_signers} + {num_test_signers}) to leave at least one training signer"
        )
    ids = list(range(num_signers))
    return {"train": ids[:num_train], "val": ids[num_train:num_train + num_val_signers],
            "test": ids[num_train + num_val_signers:]}


class SyntheticSignDataset(Dataset):
    """Clips of synthetic signers signing 1-3 glosses; rendered on access.

    Clip i of a split depends only on (seed, split, i), the signer partition,
    num_frames, image_size and max_glosses, so a larger ``num_clips`` extends the same list.
    ``max_glosses`` (1 to 3) bounds the glosses of a caption: 1 makes every caption a single
    sign that fills the whole clip, the easiest task. ``hand_scale`` enlarges the hands (more
    of a small frame then depends on the caption).
    """

    def __init__(
        self,
        split: str = "train",
        num_clips: int = 1000,
        num_frames: int = 8,
        image_size: int = 16,
        num_signers: int = 12,
        num_val_signers: int = 2,
        num_test_signers: int = 2,
        seed: int = 0,
        max_glosses: int = MAX_GLOSSES,
        hand_scale: float = 1.0,
    ) -> None:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        _check_positive("num_clips", num_clips)
        _check_positive("num_frames", num_frames)
        _check_image_size(image_size)
        _check_non_negative("seed", seed)
        if not 1 <= max_glosses <= MAX_GLOSSES:
            raise ValueError(f"data.max_glosses={max_glosses} must be between 1 and {MAX_GLOSSES}")
        if not 0.5 <= hand_scale <= 3:
            raise ValueError(f"data.hand_scale={hand_scale} must be between 0.5 and 3")
        self.max_glosses, self.hand_scale = max_glosses, hand_scale
        self.split = split
        self.num_clips = num_clips
        self.num_frames = num_frames
        self.image_size = image_size
        self.seed = seed
        self.signers: list[int] = split_signers(num_signers, num_val_signers, num_test_signers)[split]
        self._signers = {s: make_signer(s, seed) for s in self.signers}

    def __len__(self) -> int:
        return self.num_clips

    def clip_content(self, i: int) -> tuple[int, list[int]]:
        """(signer id, gloss indices) of clip i, without rendering it."""
        rng = np.random.default_rng([self.seed, 1 + SPLITS.index(self.split), i])
        signer = self.signers[rng.integers(len(self.signers))]
        num_glosses = int(rng.integers(1, self.max_glosses + 1))
        return signer, [int(g) for g in rng.choice(len(GLOSSES), num_glosses, replace=False)]

    @cached_property
    def captions(self) -> list[str]:
        return [_caption(self.clip_content(i)[1]) for i in range(self.num_clips)]

    def __getitem__(self, key: int | Key) -> dict:
        i, _ = split_key(key)  # a clip is the same in every epoch
        if not -self.num_clips <= i < self.num_clips:
            raise IndexError(f"clip index {i} out of range for {self.num_clips} clips")
        i %= self.num_clips
        signer, ids = self.clip_content(i)
        video, hands = render_clip([GLOSSES[g].word for g in ids], self._signers[signer],
                                   self.num_frames, self.image_size, self.hand_scale)
        return {
            "video": torch.from_numpy(video),
            "caption": _caption(ids),
            "hands": torch.from_numpy(hands),
            "gloss_ids": torch.tensor(ids + [-1] * (MAX_GLOSSES - len(ids)), dtype=torch.long),
            "signer": signer,
        }


# --------------------------------------------------------------------------- helpers


def _caption(gloss_ids: Sequence[int]) -> str:
    return " ".join(GLOSSES[g].word for g in gloss_ids)


def _lookup(word: str) -> Gloss:
    if word not in _BY_WORD:
        raise ValueError(f"unknown gloss {word!r}; known glosses: {sorted(_BY_WORD)}")
    return GLOSSES[_BY_WORD[word]]


def _check_positive(name: str, value: int) -> None:
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value}")


def _check_image_size(image_size: int) -> None:
    if image_size < 8:
        raise ValueError(f"image_size must be >= 8, got {image_size}")


def _check_non_negative(name: str, value: int) -> None:
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value}")
