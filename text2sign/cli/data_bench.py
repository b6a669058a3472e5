"""Data throughput: first-time decoding into the cache, and reading from it.

    python -m text2sign.cli.data_bench [--clips 64] [--workers 2] [--batch-size 16]

Writes MP4 clips (48 frames, 128x96) to a temporary folder, builds data=manifest on them at
16 frames x 64x64 (the first build decodes every clip), then reads training batches from
the cache for a few epochs through a DataLoader with --workers worker processes.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import av
import numpy as np

from text2sign.data.datamodule import ManifestDataModule

NUM_FRAMES, IMAGE_SIZE, BATCH = 16, 64, 16


def write_clips(folder: Path, count: int) -> Path:
    """`count` noisy MP4 clips and their manifest (noise: the decoder cannot shortcut it)."""
    rng = np.random.default_rng(0)
    rows = []
    for i in range(count):
        path = folder / f"clip{i}.mp4"
        with av.open(str(path), mode="w") as container:
            stream = container.add_stream("libx264", rate=25)
            stream.height, stream.width, stream.pix_fmt = 96, 128, "yuv420p"
            for _ in range(48):
                frame = rng.integers(0, 256, (96, 128, 3), dtype=np.uint8)
                container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
            container.mux(stream.encode())
        rows.append({"path": path.name, "text": f"clip {i}", "signer": f"s{i % 8}"})
    manifest = folder / "manifest.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return manifest


def build(manifest: Path, cache: Path, workers: int, batch_size: int) -> ManifestDataModule:
    return ManifestDataModule(
        str(manifest), num_frames=NUM_FRAMES, image_size=IMAGE_SIZE, batch_size=batch_size,
        num_workers=workers, seed=0, split="random", val_fraction=0.1, test_fraction=0.1,
        fit="crop", short_clips="pad", fps=None, cache_dir=str(cache))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--batch-size", type=int, help=f"clips per batch (default: {BATCH}, or "
                        "every training clip when there are fewer)")
    args = parser.parse_args(argv)
    if (args.clips < 3 or (args.batch_size is not None and args.batch_size < 1)
            or args.workers < 0 or args.epochs < 1):
        parser.error("--clips must be at least 3 (train, val, test), --batch-size and --epochs "
                     "at least 1, --workers at least 0")
    with tempfile.TemporaryDirectory() as tmp:
        manifest = write_clips(Path(tmp), args.clips)
        start = time.perf_counter()
        datamodule = build(manifest, Path(tmp) / "cache", args.workers, batch_size=1)
        decode_s = time.perf_counter() - start
        train = len(datamodule.datasets["train"])  # 10% each are held out for val and test
        if (args.batch_size or 0) > train:
            parser.error(f"--batch-size {args.batch_size} is larger than the {train} training "
                         f"clips of --clips {args.clips}: lower --batch-size or raise --clips")
        datamodule.batch_size = args.batch_size or min(BATCH, train)
        print(f"first-time decoding: {args.clips / decode_s:.1f} clips/s "
              f"({args.clips} clips of 48 frames 128x96 -> 64x64, {max(1, args.workers)} threads)")
        loader = datamodule.train_dataloader()
        next(iter(loader))  # start the workers
        start, clips = time.perf_counter(), 0
        for _ in range(args.epochs):
            for batch in loader:
                clips += len(batch["video"])
        read_s = time.perf_counter() - start
        print(f"cached reads: {clips / read_s:.0f} clips/s ({NUM_FRAMES} frames x "
              f"{IMAGE_SIZE}x{IMAGE_SIZE}, batch {datamodule.batch_size}, {args.workers} "
              "DataLoader workers)")


if __name__ == "__main__":
    main()
