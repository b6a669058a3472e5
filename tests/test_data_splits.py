"""Splits: signer-disjoint, random, official; the same split in every run of a sweep."""

from __future__ import annotations

from pathlib import Path

import pytest
from data_fixtures import write_gif_folder
from test_data_formats import common

from text2sign.data.clips import Clip, DataError
from text2sign.data.datamodule import GifFolderDataModule
from text2sign.data.splits import split_clips


def clips(signers: int = 10, per_signer: int = 4) -> list[Clip]:
    parts = ("train", "val", "test")
    return [Clip(f"s{s}_{i}", Path(f"s{s}_{i}.gif"), "hi", f"s{s}", split=parts[i % 3])
            for s in range(signers) for i in range(per_signer)]


def ids(parts):
    return {part: {c.id for c in part_clips} for part, part_clips in parts.items()}


def test_signer_split_is_disjoint_and_complete():
    parts = split_clips(clips(), "signer", 0.2, 0.2, seed=0)
    signers = {part: {c.signer for c in cs} for part, cs in parts.items()}
    assert not signers["train"] & signers["val"] and not signers["train"] & signers["test"]
    assert not signers["val"] & signers["test"]
    assert (len(signers["val"]), len(signers["test"])) == (2, 2)
    assert sum(len(cs) for cs in parts.values()) == 40


def test_random_and_official_splits():
    random = ids(split_clips(clips(), "random", 0.1, 0.1, seed=0))
    assert (len(random["val"]), len(random["test"]), len(random["train"])) == (4, 4, 32)
    official = split_clips(clips(), "official", 0.1, 0.1, seed=0)
    assert all(c.split == part for part, cs in official.items() for c in cs)
    assert ids(split_clips(clips(), "random", 0.1, 0.1, seed=1)) != random  # the seed matters


def test_impossible_splits_name_the_key():
    with pytest.raises(DataError, match="data.split=signer needs at least 3 signers"):
        split_clips(clips(signers=2), "signer", 0.2, 0.2, seed=0)
    unlabelled = [Clip("a", Path("a"), "hi", "s")]
    with pytest.raises(DataError, match="data.split=official"):
        split_clips(unlabelled, "official", 0.2, 0.2, seed=0)


def test_the_split_is_the_same_in_every_run_and_recorded(tmp_path):
    root = write_gif_folder(tmp_path / "gifs", signers=5)
    first = GifFolderDataModule(str(root), r"^([^_]+)_", **common(tmp_path)).report()
    again = GifFolderDataModule(str(root), r"^([^_]+)_", **common(tmp_path)).report()
    assert first["split_ids"] == again["split_ids"] and first["split_sha1"] == again["split_sha1"]
    other = GifFolderDataModule(str(root), r"^([^_]+)_", **common(tmp_path, seed=1)).report()
    assert other["split_sha1"] != first["split_sha1"]
    capped = GifFolderDataModule(str(root), r"^([^_]+)_",
                                 **common(tmp_path, num_train=3, num_test=1)).report()
    assert [len(capped["split_ids"][p]) for p in ("train", "val", "test")] == [3, 3, 1]


def test_too_few_training_clips_for_a_batch_says_what_each_part_got_and_the_ways_out(tmp_path):
    root = write_gif_folder(tmp_path / "gifs", signers=3)  # 9 clips: one signer per part
    with pytest.raises(DataError) as error:
        GifFolderDataModule(str(root), r"^([^_]+)_", **common(tmp_path, batch_size=8)).setup("fit")
    assert str(error.value) == (
        "data=gif_folder: data.batch_size=8 is larger than the 3 training clips "
        "(data.split=signer: train 3 clips of 1 signer, val 3 clips of 1 signer, test 3 clips of "
        "1 signer; 0 files skipped). Use a smaller data.batch_size (at most 3), data.split=random "
        "(the clips, not the signers, are split) or more clips from more signers")
    datamodule = GifFolderDataModule(str(root), r"^([^_]+)_",
                                     **common(tmp_path, batch_size=3))  # the first way out works
    assert len(datamodule.datasets["train"]) == 3
