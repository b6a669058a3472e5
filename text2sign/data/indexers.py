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
# Each file-based data option's input paths: data.KEY -> (a "folder" or a "file", what it is)
INPUTS = {
    "gif_folder": {"root": ("folder", "the folder of .gif/.txt pairs")},
    "how2sign": {"annotations": ("file", "How2Sign's sentence file"),
                 "video_dir": ("folder", "the folder of SENTENCE_NAME.mp4 clips"),
                 "val_annotations": ("file", "How2Sign's validation sentence file"),
                 "test_annotations": ("file", "How2Sign's test sentence file")},
    "phoenix14t": {"root": ("folder", "the PHOENIX-2014-T folder (annotations/, features/)")},
    "manifest": {"path": ("file", "a .csv or .jsonl manifest")},
}


def index_gif_folder(root: str, signer_pattern: str) -> Index:
    """X.gif + X.txt pairs anywhere under `root`; a top folder train/val/dev/test is the split."""
    folder = input_path("gif_folder", "root", root)
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
    videos = input_path("how2sign", "video_dir", video_dir)
    files = {"train": ("annotations", annotations), "val": ("val_annotations", val_annotations),
             "test": ("test_annotations", test_annotations)}
    single = val_annotations is None and test_annotations is None
    clips, skipped = [], []
    for split, (key, file) in files.items():
        if file is None:
            continue
        table = _read_table(input_path("how2sign", key, file), f"data.{key}", sep="\t",
                            columns=HOW2SIGN_COLUMNS)
        for row in table.itertuples(index=False):
            name = str(row.SENTENCE_NAME)
            clip = Clip(name, videos / f"{name}.mp4", _text(row.SENTENCE), str(row.VIDEO_ID),
                        split=None if single else split)
            _add(clip, clips, skipped)
    return clips, skipped


def index_phoenix14t(root: str, caption_column: str) -> Index:
    """PHOENIX-2014-T: |-separated corpus files, one folder of PNG frames per sentence."""
    base = input_path("phoenix14t", "root", root)
    clips, skipped = [], []
    for split, part in (("train", "train"), ("dev", "val"), ("test", "test")):
        file = base / PHOENIX_CORPUS.format(split=split)
        if not file.is_file():
            raise DataError(f"data.root={root}: the annotation file {file} does not exist")
        table = _read_table(file, "data.root", sep="|", columns=("name", "speaker", caption_column))
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
    A row whose start/end cannot be a window of its video is skipped, naming its line.
    """
    file = input_path("manifest", "path", path)
    rows = _manifest_rows(file)
    if rows and not {"path", "text"} <= set(rows[0][1]):
        raise DataError(f"data.path={path} needs the columns path and text, has "
                        f"{sorted(rows[0][1])}")
    clips, skipped = [], []
    for line, row in rows:
        name = str(row.get("path") or f"line {line}")
        given = {key: row[key] for key in ("start", "end")
                 if row.get(key) is not None and str(row[key]).strip()}
        origin = f"{file} line {line}" + (
            f" ({', '.join(f'{k}={v}' for k, v in given.items())})" if given else "")
        try:
            start, end = _window(row.get("start"), row.get("end"))
        except ValueError as problem:
            skipped.append(Skipped(str(file.parent / name), f"{origin}: {problem}"))
            continue
        video = (file.parent / name).resolve()
        clip_id = name if start is None and end is None else f"{name}@{start}-{end}"
        split = official_split(str(row["split"])) if _text(row.get("split")) else None
        clip = Clip(clip_id, video, _text(row.get("text")), _text(row.get("signer")) or clip_id,
                    start, end, split, origin)
        _add(clip, clips, skipped)
    return clips, skipped


def _manifest_rows(file: Path) -> list[tuple[int, dict]]:
    """(line number in the file, row) of a CSV or JSONL manifest; a DataError names the line
    that cannot be parsed."""
    if file.suffix.lower() == ".csv":
        try:
            table = pd.read_csv(file, dtype=str, keep_default_na=False)
        except (ValueError, pd.errors.ParserError) as err:
            raise DataError(f"data.path={file} is not a readable CSV manifest ({err}): fix the "
                            "file") from None
        return list(enumerate(table.to_dict("records"), start=2))  # line 1 is the header
    if file.suffix.lower() not in (".jsonl", ".json"):
        raise DataError(f"data.path={file}: a manifest is a .csv or .jsonl file")
    rows = []
    for number, line in enumerate(file.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise DataError(f"data.path={file}: line {number} is not valid JSON ({err.msg} at "
                            f"column {err.colno}): fix that line of the manifest") from None
        if not isinstance(row, dict):
            raise DataError(f"data.path={file}: line {number} is not a JSON object "
                            '({"path": ..., "text": ...}): fix that line of the manifest')
        rows.append((number, row))
    return rows


def _window(start, end) -> tuple[Optional[float], Optional[float]]:
    """A row's start and end in seconds (None: the start or end of the video); a ValueError
    says why they are no window."""
    start, end = _seconds(start, "start"), _seconds(end, "end")
    if start is not None and end is not None and end <= start:
        raise ValueError(f"end={end:g} is not after start={start:g}: the window is empty"
                         if end == start else f"start={start:g} is after end={end:g}")
    return start, end


def _seconds(value, key: str) -> Optional[float]:
    """A start or end cell in seconds (None when empty); a ValueError names what is wrong."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{key}={value!r} is not a number of seconds") from None
    if not math.isfinite(seconds):
        edge = "beginning" if key == "start" else "end"
        raise ValueError(f"{key}={value} is not a finite number of seconds: leave {key} empty "
                         f"for the {edge} of the video")
    if seconds < 0:
        raise ValueError(f"{key}={value} is negative: seconds into the video start at 0")
    return seconds


def _add(clip: Clip, clips: list[Clip], skipped: list[Skipped]) -> None:
    """Keep a listed clip, or record why not: a missing file or an empty caption."""
    if not clip.path.exists():
        skipped.append(Skipped(str(clip.path), "listed file missing on disk"))
    elif not clip.caption:
        skipped.append(Skipped(str(clip.path), "empty caption"))
    else:
        clips.append(clip)


def input_path(option: str, key: str, value: str) -> Path:
    """The path `data.KEY` of data option `option` names (INPUTS), if it is an existing folder
    or file as it must be; else a DataError that names the key and what it must be."""
    kind, what = INPUTS[option][key]
    path = Path(value).expanduser()
    if not path.exists():
        raise DataError(f"data.{key}={value} does not exist: set data.{key} to {what}")
    if path.is_dir() != (kind == "folder"):
        found = "folder" if path.is_dir() else "file"
        raise DataError(f"data.{key}={value} is a {found}, not a {kind}: set data.{key} to {what}")
    return path


def _read_table(file: Path, key: str, sep: str, columns: Iterable[str]) -> pd.DataFrame:
    table = pd.read_csv(file, sep=sep, dtype=str, keep_default_na=False,
                        quoting=3)  # quoting=3: sentences contain quotes
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise DataError(f"{key}: {file} lacks the columns {missing} (has {list(table.columns)})")
    return table


def _text(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(value).strip()
