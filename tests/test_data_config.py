"""Every data option composes with every scale; typos and wrong types fail at composition."""

from __future__ import annotations

import pytest
from conftest import compose_config
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf
from omegaconf.errors import MissingMandatoryValue
from test_config import group_options

PATHS = {"synthetic": [], "gif_folder": ["data.root=/d"], "manifest": ["data.path=/m.csv"],
         "phoenix14t": ["data.root=/d"],
         "how2sign": ["data.annotations=/a.csv", "data.video_dir=/d"]}


def test_every_option_has_a_path_entry():
    assert sorted(PATHS) == group_options("data")


@pytest.mark.parametrize("scale", group_options("scale"))
@pytest.mark.parametrize("option", sorted(PATHS))
def test_every_data_option_composes_with_every_scale(tmp_path, option, scale):
    cfg = compose_config([f"data={option}", f"scale={scale}", *PATHS[option]], tmp_path)
    data = OmegaConf.to_container(cfg, resolve=True)["data"]
    assert data["_target_"].startswith("text2sign.data.datamodule.")
    assert cfg.model.num_frames == cfg.data.num_frames


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (["data=gif_folder", "data.rot=/d"], ["data.rot", "GifFolderDataModule"]),
        (["data=gif_folder", "data.fit=square"], ["data.fit", "crop", "pad"]),
        (["data=manifest", "data.num_frames=abc"], ["data.num_frames", "abc"]),
        (["data=how2sign", "data.split=speaker"], ["data.split", "signer", "official"]),
        (["data=phoenix14t", "data.short_clips=drop"], ["data.short_clips", "skip"]),
        (["data=synthetic", "data.root=/d"], ["data.root", "SyntheticSignDataModule"]),
    ],
)
def test_data_typos_fail_with_the_key(tmp_path, overrides, expected):
    with pytest.raises(ConfigCompositionException) as err:
        compose_config(overrides, tmp_path)
    message = str(err.value) + str(err.value.__cause__ or "")
    for fragment in expected:
        assert fragment.lower() in message.lower(), message


def test_a_missing_root_names_the_key(tmp_path):
    cfg = compose_config(["data=gif_folder"], tmp_path)
    with pytest.raises(MissingMandatoryValue,
                       match=r"Missing mandatory value: root\n.*full_key: data\.root"):
        OmegaConf.to_container(cfg, throw_on_missing=True)
