"""Every data format from fixtures written here, every fault listed with its reason."""

from __future__ import annotations

import json

import pytest
import torch
from data_fixtures import (
    plant_gif_faults,
    truncate,
    write_frame_folder,
    write_gif,
    write_gif_folder,
    write_video,
)

import text2sign.data.clip_cache as clip_cache
from text2sign.data.clips import DataError
from text2sign.data.datamodule import (
    GifFolderDataModule,
    How2SignDataModule,
    ManifestDataModule,
    Phoenix14TDataModule,
)

HOW2SIGN_HEADER = ("VIDEO_ID\tVIDEO_NAME\tSENTENCE_ID\tSENTENCE_NAME\tSTART_REALIGNED\t"
                   "END_REALIGNED\tSENTENCE\n")


def common(tmp_path, **overrides):
    settings = dict(num_frames=4, image_size=16, batch_size=2, num_workers=0, seed=0,
                    split="signer", val_fraction=0.25, test_fraction=0.25, fit="crop",
                    short_clips="pad", fps=None, cache_dir=str(tmp_path / "cache"))
    return {**settings, **overrides}


def reasons(datamodule) -> dict[str, str]:
    report = datamodule.report()
    return {s["file"].split("/")[-1]: s["reason"] for s in report["skipped"] + report["padded"]}


def check_items(datamodule, num_frames=4, size=16):
    for dataset in datamodule.datasets.values():
        item = dataset[0]
        assert item["video"].dtype == torch.uint8
        assert item["video"].shape == (3, num_frames, size, size)
        assert item["caption"] and isinstance(item["signer"], str)
    batch = next(iter(datamodule.train_dataloader()))
    assert batch["video"].shape == (datamodule.batch_size, 3, num_frames, size, size)


def test_gif_folder_lists_every_fault(tmp_path):
    root = write_gif_folder(tmp_path / "gifs")
    expected = plant_gif_faults(root)
    datamodule = GifFolderDataModule(str(root), r"^([^_]+)_",
                                     **common(tmp_path, short_clips="skip"))
    found = reasons(datamodule)
    assert set(found) == set(expected)
    for name, fragment in expected.items():
        assert fragment in found[name], (name, found[name])
    report = datamodule.report()
    assert sum(s["clips"] for s in report["splits"].values()) == 12  # every good clip, no more
    json.dumps(report)
    check_items(datamodule)


def test_gif_folder_signer_regex_and_official_subfolders(tmp_path):
    for part in ("train", "dev", "test"):
        for s in range(2):
            write_gif(tmp_path / "g" / part / f"clip{s}-signer{s}.gif")
            (tmp_path / "g" / part / f"clip{s}-signer{s}.txt").write_text("hi")
    datamodule = GifFolderDataModule(str(tmp_path / "g"), r"signer(\d+)",
                                     **common(tmp_path, split="official", batch_size=1))
    report = datamodule.report()
    assert sorted(report["split_ids"]["val"]) == ["dev/clip0-signer0", "dev/clip1-signer1"]
    assert report["splits"]["train"]["signers"] == ["0", "1"]


def test_short_clips_are_padded_with_their_last_frame_and_listed(tmp_path):
    root = write_gif_folder(tmp_path / "gifs", num_frames=2)
    datamodule = GifFolderDataModule(str(root), r"^([^_]+)_", **common(tmp_path))
    assert len(datamodule.report()["padded"]) == 12 and not datamodule.report()["skipped"]
    red = datamodule.datasets["val"][0]["video"][0, :, 0, 0]
    assert red.tolist() == [0, 10, 10, 10]


def test_how2sign_tsv_with_official_files(tmp_path):
    videos = tmp_path / "clips"
    files = {}
    for part in ("train", "val", "test"):
        rows = []
        for i in range(3):
            name = f"{part}vid{i}_{i}-5-rgb_front"
            if not (part == "train" and i == 2):  # listed, missing on disk
                write_video(videos / f"{name}.mp4")
            sentence = "" if (part == "val" and i == 2) else f"We sign {part} {i}."
            fields = [f"{part}vid{i}", f"{part}vid{i}-5-rgb_front", str(i), name, "1.5", "3.0",
                      sentence]
            rows.append("\t".join(fields) + "\n")
        files[part] = tmp_path / f"how2sign_{part}.csv"
        files[part].write_text(HOW2SIGN_HEADER + "".join(rows))
    datamodule = How2SignDataModule(str(files["train"]), str(videos), str(files["val"]),
                                    str(files["test"]), **common(tmp_path, split="official",
                                                                 batch_size=1))
    found = reasons(datamodule)
    assert found["trainvid2_2-5-rgb_front.mp4"] == "listed file missing on disk"
    assert found["valvid2_2-5-rgb_front.mp4"] == "empty caption"
    assert [d["clips"] for d in datamodule.report()["splits"].values()] == [2, 2, 3]
    check_items(datamodule)


def test_phoenix14t_corpus_and_frame_folders(tmp_path):
    root = tmp_path / "PHOENIX-2014-T"
    for split in ("train", "dev", "test"):
        lines = ["name|video|start|end|speaker|orth|translation"]
        for i in range(3):
            name = f"{split}_{i}"
            if not (split == "test" and i == 2):
                write_frame_folder(root / f"features/fullFrame-210x260px/{split}/{name}",
                                   num_frames=5, height=26, width=21)
            lines.append(f"{name}|{name}/1/*.png|-1|-1|Signer0{i}|REGEN|es regnet {i}")
        corpus = root / f"annotations/manual/PHOENIX-2014-T.{split}.corpus.csv"
        corpus.parent.mkdir(parents=True, exist_ok=True)
        corpus.write_text("\n".join(lines) + "\n")
    datamodule = Phoenix14TDataModule(str(root), "translation",
                                      **common(tmp_path, split="official", batch_size=1))
    report = datamodule.report()
    assert [d["clips"] for d in report["splits"].values()] == [3, 3, 2]
    assert report["splits"]["train"]["signers"] == ["Signer00", "Signer01", "Signer02"]
    assert reasons(datamodule) == {"test_2": "listed file missing on disk"}
    assert datamodule.datasets["train"][0]["caption"].startswith("es regnet")
    check_items(datamodule)


@pytest.mark.parametrize("kind", ["csv", "jsonl"])
def test_manifest_with_every_fault(tmp_path, kind):
    data = tmp_path / "corpus"
    rows = []
    for s in range(3):
        for i in range(2):
            write_video(data / f"s{s}_{i}.{'webm' if i else 'mp4'}", num_frames=20)
            rows.append({"path": f"corpus/s{s}_{i}.{'webm' if i else 'mp4'}",
                         "text": f"clip {s} {i}", "start": "0.5", "end": "1.5", "signer": f"p{s}"})
    truncate(write_video(data / "bad.mp4", num_frames=20))
    (data / "garbage.webm").write_bytes(b"\x00" * 100)
    rows += [{"path": "corpus/bad.mp4", "text": "truncated", "signer": "p0"},
             {"path": "corpus/garbage.webm", "text": "garbage", "signer": "p0"},
             {"path": "corpus/gone.mp4", "text": "missing", "signer": "p0"},
             {"path": "corpus/s0_0.mp4", "text": "", "signer": "p0"},
             {"path": "corpus/s0_0.mp4", "text": "too short", "start": "0", "end": "0.2",
              "signer": "p0"}]
    manifest = tmp_path / f"manifest.{kind}"
    if kind == "csv":
        import pandas as pd
        pd.DataFrame(rows).fillna("").to_csv(manifest, index=False)
    else:
        manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    datamodule = ManifestDataModule(str(manifest), **common(tmp_path, short_clips="skip",
                                                             batch_size=1))
    found = reasons(datamodule)
    assert set(found) == {"bad.mp4", "garbage.webm", "gone.mp4", "s0_0.mp4"}
    assert "unreadable" in found["bad.mp4"] and "unreadable" in found["garbage.webm"]
    assert found["gone.mp4"] == "listed file missing on disk"
    assert len(datamodule.report()["skipped"]) == 5  # s0_0.mp4: empty caption and too short
    clip = datamodule.datasets["val"][0]["video"]  # 0.5 s .. 1.5 s at 10 fps: frames 5..14
    assert clip[0, 0, 0, 0] >= 45 and clip[0, -1, 0, 0] <= 145
    check_items(datamodule)


@pytest.mark.parametrize(
    ("make", "key"),
    [
        (lambda p, c: GifFolderDataModule(str(p / "nope"), "^(.+)_", **c), "data.root"),
        (lambda p, c: ManifestDataModule(str(p / "m.csv"), **c), "data.path"),
        (lambda p, c: How2SignDataModule(str(p / "a.csv"), str(p), **c), "data.annotations"),
        (lambda p, c: How2SignDataModule(str(p / "a.csv"), str(p / "nope"), **c), "data.video_dir"),
        (lambda p, c: Phoenix14TDataModule(str(p), "translation", **c), "data.root"),
    ],
)
def test_missing_inputs_name_the_key_to_fix(tmp_path, make, key):
    with pytest.raises(DataError, match=key):
        make(tmp_path, common(tmp_path)).setup("fit")


def test_nothing_usable_is_a_clear_error(tmp_path):
    (tmp_path / "gifs").mkdir()
    (tmp_path / "gifs" / "a_1.gif").write_bytes(b"junk")
    (tmp_path / "gifs" / "a_1.txt").write_text("x")
    with pytest.raises(DataError, match="no usable clip"):
        GifFolderDataModule(str(tmp_path / "gifs"), "^(.+)_", **common(tmp_path)).setup("fit")


def test_clips_are_decoded_in_prepare_data_and_only_read_in_setup(tmp_path, monkeypatch):
    """Building the datamodule touches no file; prepare_data (once per machine under DDP)
    decodes; another rank's setup reads the filled cache and decodes nothing."""
    root = write_gif_folder(tmp_path / "gifs")
    GifFolderDataModule(str(tmp_path / "absent"), r"^([^_]+)_", **common(tmp_path))  # no error yet
    rank_zero = GifFolderDataModule(str(root), r"^([^_]+)_", **common(tmp_path))
    rank_zero.prepare_data()
    assert list((tmp_path / "cache").rglob("*.npy"))

    def no_decoding(*args, **kwargs):
        raise AssertionError("setup decoded a clip that prepare_data had cached")

    monkeypatch.setattr(clip_cache, "read_clip", no_decoding)
    other_rank = GifFolderDataModule(str(root), r"^([^_]+)_", **common(tmp_path))
    other_rank.setup("fit")
    assert other_rank.report()["split_ids"] == rank_zero.report()["split_ids"]
