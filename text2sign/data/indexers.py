"""One indexer per data format: list the clips and captions, and what had to be skipped.

Indexers only look at names and text; decoding (and the faults found there) is the cache's.
A missing folder or annotation file is a DataError naming the config key to fix.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Iterable, Optional

import pandas as pd

from text2sign.data.clips import Clip, DataError, Skipped, official_split

Index = tuple[list[Clip], list[Skipped]]
HOW2SIGN_COLUMNS = ("VIDEO_ID", "VIDEO_NAME", "SENTENCE_ID", "SENTENCE_NAME", "START_REALIGNED",
                    "END_REALIGNED", "SENTENCE")
PHOENIX_CORPUS = "annotations/manual/PHOENIX-2014-T.{split}.corpus.csv"
PHOENIX_FRAMES = "features/fullFrame-210x260px/{split}/{name}"


def index_gif_folder(root: str, signer_pattern: str) -> Index:
    """X.gif + X.txt pairs anywhere under `root`; a top folder train/val/dev/test is the split."""
    folder = _existing_dir(root, "data.root", "the folder of .gif/.txt pairs")
    pattern = re.compile(signer_pattern)
    clips, skipped = [], []
    for gif in sorted(folder.rglob("*.gif")):
        rel = gif.relative_to(folder)
        text = gif.with_suffix(".txt")
        if not text.exists():
            skipped.append(Skipped(str(gif), f"no caption: {text.name} is missing"))
            continue
        caption = text.read_text(errors="replace").strip()
        if not caption:
            skipped.append(Skipped(str(gif), f"empty caption in {text.name}"))
            continue
        match = pattern.search(gif.stem)
        signer = gif.stem if match is None else match.group(1 if match.groups() else 0)
        split = official_split(rel.parts[0]) if len(rel.parts) > 1 else None
        clips.append(Clip(str(rel.with_suffix("")), gif, caption, signer, split=split))
    for text in sorted(folder.rglob("*.txt")):
        if not text.with_suffix(".gif").exists():
            missing = text.with_suffix(".gif").name
            skipped.append(Skipped(str(text), f"no video: {missing} is missing"))
    return clips, skipped


def index_how2sign(annotations: str, video_dir: str, val_annotations: Optional[str],
                   test_annotations: Optional[str]) -> Index:
    """How2Sign's tab-separated sentence files; one clip SENTENCE_NAME.mp4 per row.

    How2Sign names no signer: clips are grouped by VIDEO_ID (one recording), so a
    signer-disjoint split keeps the sentences of one recording together.
    """
    videos = _existing_dir(video_dir, "data.video_dir", "the folder of SENTENCE_NAME.mp4 clips")
    files = {"train": ("data.annotations", annotations),
             "val": ("data.val_annotations", val_annotations),
             "test": ("data.test_annotations", test_annotations)}
    single = val_annotations is None and test_annotations is None
    clips, skipped = [], []
    for split, (key, file) in files.items():
        if file is None:
            continue
        table = _read_table(file, key, sep="\t", columns=HOW2SIGN_COLUMNS)
        for row in table.itertuples(index=False):
            name = str(row.SENTENCE_NAME)
            clip = Clip(name, videos / f"{name}.mp4", _text(row.SENTENCE), str(row.VIDEO_ID),
                        split=None if single else split)
            _add(clip, clips, skipped)
    return clips, skipped


def index_phoenix14t(root: str, caption_column: str) -> Index:
    """PHOENIX-2014-T: |-separated corpus files, one folder of PNG frames per sentence."""
    base = _existing_dir(root, "data.root", "the PHOENIX-2014-T folder (annotations/, features/)")
    clips, skipped = [], []
    for split, part in (("train", "train"), ("dev", "val"), ("test", "test")):
        file = base / PHOENIX_CORPUS.format(split=split)
        table = _read_table(str(file), "data.root", sep="|",
                            columns=("name", "speaker", caption_column))
        for row in table.to_dict("records"):
            name = str(row["name"])
            folder = base / PHOENIX_FRAMES.format(split=split, name=name)
            clip = Clip(f"{split}/{name}", folder, _text(row[caption_column]), str(row["speaker"]),
                        split=part)
            _add(clip, clips, skipped)
    return clips, skipped


def index_manifest(path: str) -> Index:
    """A CSV or JSONL file: path, text, and optional start, end (seconds), signer, split.

    Relative paths are taken from the manifest's folder. A clip without a signer is its own.
    """
    file = Path(path).expanduser()
    if not file.is_file():
        raise DataError(f"data.path={path} does not exist: set data.path to a .csv or .jsonl "
                        "manifest")
    if file.suffix.lower() == ".csv":
        rows = pd.read_csv(file, dtype=str, keep_default_na=False).to_dict("records")
    elif file.suffix.lower() in (".jsonl", ".json"):
        rows = [json.loads(line) for line in file.read_text().splitlines() if line.strip()]
    else:
        raise DataError(f"data.path={path}: a manifest is a .csv or .jsonl file")
    if rows and not {"path", "text"} <= set(rows[0]):
        raise DataError(f"data.path={path} needs the columns path and text, has {sorted(rows[0])}")
    clips, skipped = [], []
    for number, row in enumerate(rows, start=1):
        name = str(row.get("path") or f"row {number}")
        try:
            start, end = _seconds(row.get("start")), _seconds(row.get("end"))
        except ValueError:
            reason = f"start/end are not seconds: {row.get('start')!r}, {row.get('end')!r}"
            skipped.append(Skipped(str(file.parent / name), reason))
            continue
        video = (file.parent / name).resolve()
        clip_id = name if start is None and end is None else f"{name}@{start}-{end}"
        split = official_split(str(row["split"])) if _text(row.get("split")) else None
        clip = Clip(clip_id, video, _text(row.get("text")), _text(row.get("signer")) or clip_id,
                    start, end, split)
        _add(clip, clips, skipped)
    return clips, skipped


def _add(clip: Clip, clips: list[Clip], skipped: list[Skipped]) -> None:
    """Keep a listed clip, or record why not: a missing file or an empty caption."""
    if not clip.path.exists():
        skipped.append(Skipped(str(clip.path), "listed file missing on disk"))
    elif not clip.caption:
        skipped.append(Skipped(str(clip.path), "empty caption"))
    else:
        clips.append(clip)


def _existing_dir(path: str, key: str, what: str) -> Path:
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise DataError(f"{key}={path} does not exist: set {key} to {what}")
    return folder


def _read_table(file: str, key: str, sep: str, columns: Iterable[str]) -> pd.DataFrame:
    if not Path(file).expanduser().is_file():
        raise DataError(f"{key}: the annotation file {file} does not exist")
    table = pd.read_csv(Path(file).expanduser(), sep=sep, dtype=str, keep_default_na=False,
                        quoting=3)  # quoting=3: sentences contain quotes
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise DataError(f"{key}: {file} lacks the columns {missing} (has {list(table.columns)})")
    return table


def _text(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(value).strip()


def _seconds(value) -> Optional[float]:
    return None if _text(value) == "" else float(value)
