"""Fill the decode-once cache ahead of training, with the same overrides as train.py.

    python -m text2sign.cli.prepare data=gif_folder data.root=DIR scale=full

Decodes every clip of the chosen data option at the composed settings into data.cache_dir,
then prints the split and every skipped or padded file with its reason (what a run records
in its data_report.json). Jobs of a later sweep read from the cache.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from text2sign.cli.errors import one_line_errors
from text2sign.config import CONF, register_configs
from text2sign.data.datamodule import plural
from text2sign.run.preflight import check_data

SIGNERS_SHOWN = 8


def prepare(overrides: list[str]) -> dict:
    """The data report of the datamodule that `train.py OVERRIDES` would build."""
    register_configs()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=overrides)
    check_data(cfg)
    report = instantiate(cfg.data).report()
    report["cache_dir"] = cfg.data.get("cache_dir")
    return report


def describe(report: dict[str, Any]) -> str:
    """The split and every skipped or padded file, as printed."""
    sha1 = report.get("split_sha1")
    lines = [f"data={report['name']}: split" + (f" {sha1[:12]} (split_sha1)" if sha1 else "")]
    for part, split in report["splits"].items():
        signers = [str(s) for s in split["signers"]]
        shown = ", ".join(signers[:SIGNERS_SHOWN]) + (", ..." if len(signers) > SIGNERS_SHOWN
                                                      else "")
        lines.append(f"  {part:5} {plural(split['clips'], 'clip'):>11}, "
                     f"{plural(len(signers), 'signer')}: {shown}")
    for kind in ("skipped", "padded"):
        files = report.get(kind, [])
        lines.append(f"{kind} {plural(len(files), 'file')}" + (":" if files else ""))
        lines += [f"  {entry['file']}: {entry['reason']}" for entry in files]
    if report.get("cache_dir"):
        lines.append(f"cache: {report['cache_dir']}")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    with one_line_errors("prepare"):  # a DataError names the key to fix
        report = prepare(argv)
    print(describe(report))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
