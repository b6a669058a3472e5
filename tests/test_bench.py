"""python -m text2sign.bench: every figure present and sane, at the tiny scale."""

from __future__ import annotations

import json

import pytest
from hydra.core.global_hydra import GlobalHydra

from text2sign import bench

QUICK = ["scale=tiny", "bench.warmup_steps=1", "bench.steps=3", "bench.sample_steps=2",
         "bench.sample_repeats=1", "bench.encoder_repeats=2"]
KEYS = ["device", "lightning_step_ms", "plain_step_ms", "overhead_ratio", "eager_fp32_step_ms",
        "speedup_vs_eager_fp32", "clips_per_s", "peak_memory_gb", "mfu",
        "inference_ms_per_clip", "text_encoder_ms_per_step"]


@pytest.fixture(autouse=True)
def clear_hydra():
    yield
    GlobalHydra.instance().clear()


def test_bench_writes_every_key_with_sane_values(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "bench.json"
    bench.main([*QUICK, f"bench.out={out}"])
    results = json.loads(out.read_text())
    assert set(KEYS) <= results.keys()
    for key in ("lightning_step_ms", "plain_step_ms", "eager_fp32_step_ms", "clips_per_s",
                "inference_ms_per_clip", "flops_per_step"):
        assert results[key] > 0, key
    assert results["overhead_ratio"] == pytest.approx(
        results["lightning_step_ms"] / results["plain_step_ms"])
    assert results["speedup_vs_eager_fp32"] == pytest.approx(
        results["eager_fp32_step_ms"] / results["lightning_step_ms"])
    assert results["clips_per_s"] == pytest.approx(4 / results["lightning_step_ms"] * 1000)
    encoder = results["text_encoder_ms_per_step"]
    assert 0 < encoder["frozen"] < encoder["finetuned"]  # the cache beats running the model
    # no GPU here: memory and MFU are unknown, and say why
    assert results["peak_memory_gb"] is None and "peak_memory_gb" in results["notes"]
    assert results["mfu"] is None and "mfu" in results["notes"]
    assert results["peak_rss_gb"] > 0
    assert list(tmp_path.iterdir()) == [out]  # no Hydra output directory in the cwd


def test_bench_rejects_an_unknown_key():
    with pytest.raises(Exception, match="nope"):
        bench.main(["scale=tiny", "bench.nope=1"])


def test_peak_flops_by_device_name_and_precision():
    assert bench.peak_flops("NVIDIA H100 80GB HBM3", "bf16-mixed", tf32=True) == 989e12
    assert bench.peak_flops("NVIDIA H100 PCIe", "32-true", tf32=True) == 378e12
    assert bench.peak_flops("NVIDIA L4", "32-true", tf32=False) == 30.3e12
    assert bench.peak_flops("NVIDIA L40S", "bf16-mixed", tf32=True) is None
