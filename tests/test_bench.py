"""python -m text2sign.cli.bench: every figure present and computed as defined, at the tiny scale."""

from __future__ import annotations

import itertools
import json

import pytest
import torch
from hydra.core.global_hydra import GlobalHydra
from omegaconf.errors import ConfigKeyError

from text2sign.callbacks.step_cost import StepCost
from text2sign.cli import bench
from text2sign.run.job import build_module

QUICK = ["scale=tiny", "bench.warmup_steps=1", "bench.steps=3", "bench.sample_steps=2",
         "bench.sample_repeats=1", "bench.encoder_repeats=2"]
KEYS = ["device", "lightning_step_ms", "plain_step_ms", "overhead_ratio", "eager_fp32_step_ms",
        "speedup_vs_eager_fp32", "clips_per_s", "peak_memory_gb", "mfu",
        "inference_ms_per_clip", "text_encoder_ms_per_step"]


@pytest.fixture(autouse=True)
def clear_hydra():
    yield
    GlobalHydra.instance().clear()


def clock(*durations: float) -> list[float]:
    """Stamps of steps that took `durations` seconds."""
    return [0.0, *itertools.accumulate(durations)]


# step times the loops are made to report (seconds): one warm-up step, then 4 timed ones
LIGHTNING = clock(1.0, 0.02, 0.02, 0.04, 0.04)  # median 30 ms; 40 ms if the warm-up counted
PLAIN = clock(1.0, 0.01, 0.01, 0.03, 0.03)  # median 20 ms
EAGER = clock(1.0, 0.05, 0.05, 0.07, 0.07)  # median 60 ms


@pytest.mark.slow  # over 10 s: the default suite keeps under 5 minutes
def test_bench_writes_every_key_from_the_steps_it_timed(tmp_path, monkeypatch):
    """The loops run for real; their step times are replaced by known ones, so that every
    figure can be checked against its definition (docs/performance.md: The benchmark)."""
    real_lightning, real_plain, modules = bench.lightning_stamps, bench.plain_stamps, []

    def check(measured: list[float], batches: list) -> None:
        assert len(measured) == len(batches) + 1  # a stamp at the start, one after each step
        assert all(b > a for a, b in itertools.pairwise(measured))

    def lightning(cfg, module, batches, device):
        check(real_lightning(cfg, module, batches, device), batches)
        return LIGHTNING

    def plain(module, batches, *args):
        check(real_plain(module, batches, *args), batches)
        modules.append(module)
        return PLAIN if module is modules[0] else EAGER  # the eager module is built last

    monkeypatch.setattr(bench, "lightning_stamps", lightning)
    monkeypatch.setattr(bench, "plain_stamps", plain)
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "bench.json"
    bench.main([*QUICK, "bench.profile_steps=2", f"bench.out={out}"])
    results = json.loads(out.read_text())
    assert set(KEYS) <= results.keys()
    assert len(set(map(id, modules))) == 2  # the framework's module, then the eager one
    assert results["lightning_step_ms"] == pytest.approx(30.0)
    assert results["plain_step_ms"] == pytest.approx(20.0)
    assert results["eager_fp32_step_ms"] == pytest.approx(60.0)
    assert results["overhead_ratio"] == pytest.approx(1.5)
    assert results["speedup_vs_eager_fp32"] == pytest.approx(2.0)
    assert results["clips_per_s"] == pytest.approx(4 / 0.030)  # batch 4 at scale=tiny
    for key in ("inference_ms_per_clip", "flops_per_step"):
        assert results[key] > 0, key
    encoder = results["text_encoder_ms_per_step"]
    assert 0 < encoder["frozen"] < encoder["finetuned"]  # the cache beats running the model
    # no GPU here: memory and MFU are unknown, and say why
    assert results["peak_memory_gb"] is None and "peak_memory_gb" in results["notes"]
    assert results["mfu"] is None and "mfu" in results["notes"]
    assert results["batch_sweep"] == [] and results["best_batch"] is None
    assert "GPU" in results["notes"]["best_batch"]
    assert results["overhead_ms"] == pytest.approx(10.0)
    assert results["first_step_s"] == pytest.approx(1.0)  # the warm-up step of LIGHTNING
    assert results["host_reads_per_step"]["lightning"] == results["host_reads_per_step"]["plain"]
    assert results["peak_rss_gb"] > 0 and results["complete"] is True
    traces = {tmp_path / f"bench.{loop}.trace.json" for loop in ("lightning", "plain")}
    assert set(tmp_path.iterdir()) == {out, *traces}  # no Hydra output directory in the cwd
    for loop in ("lightning", "plain"):  # the profile, of the real loops (times not replaced)
        ops = results["profile"][loop]
        times = [op["self_cpu_ms"] for op in ops]
        assert len(ops) == 20 and times == sorted(times, reverse=True) and times[0] > 0
        assert any("conv" in op["name"] for op in ops), ops  # the denoiser's work was seen
        assert (tmp_path / f"bench.{loop}.trace.json").stat().st_size > 0


def test_a_bench_killed_before_its_end_keeps_the_figures_it_measured(tmp_path, monkeypatch):
    """A time limit that stops the bench in its last part (the batch sweep, on a GPU)."""
    def killed(*args):
        raise KeyboardInterrupt("the time limit")

    monkeypatch.setattr(bench, "batch_sweep", killed)
    out = tmp_path / "bench.json"
    with pytest.raises(KeyboardInterrupt):
        bench.main([*QUICK, f"bench.out={out}"])
    results = json.loads(out.read_text())
    assert results["complete"] is False and "largest_batch" not in results
    for key in ("lightning_step_ms", "inference_ms_per_clip", "eager_fp32_step_ms"):
        assert results[key] > 0, key
    assert results["overrides"][-1] == f"bench.out={out}"


def test_bench_rejects_an_unknown_key():
    with pytest.raises(ConfigKeyError, match="Key 'nope' not in 'BenchConfig'"):
        bench.main(["scale=tiny", "bench.nope=1"])


def test_a_runs_mfu_is_its_flops_per_clip_at_its_clips_per_second_over_the_peak():
    cost = StepCost()
    cost.flops, cost.clips = 6e12, 2  # one micro-batch of 2 clips
    assert cost.mfu(clips_per_s=10.0) is None  # no GPU: no peak
    cost.peak_flops = 1e15
    assert cost.mfu(clips_per_s=10.0) == pytest.approx(3e12 * 10 / 1e15)


def test_peak_flops_by_device_name_and_precision():
    assert bench.peak_flops("NVIDIA H100 80GB HBM3", "bf16-mixed", tf32=True) == 989e12
    assert bench.peak_flops("NVIDIA H100 PCIe", "32-true", tf32=True) == 378e12
    assert bench.peak_flops("NVIDIA L4", "32-true", tf32=False) == 30.3e12
    assert bench.peak_flops("NVIDIA L40S", "bf16-mixed", tf32=True) is None


def test_the_framework_adds_no_host_read_to_a_training_step(tmp_path):
    """Each read that makes a GPU's host wait for it (text2sign.host_sync.HostReads) happens in
    the plain loop too: a fit with the run's per-step callbacks, loggers (every step at
    scale=tiny), progress bar and EMA adds none. On 6a7d214 it added five per step: the
    non-finite check, the training log's loss and the progress bar's three metrics."""
    cfg, _ = bench.compose_configs(["scale=tiny", "trainer.enable_progress_bar=true", "ema=true"],
                                   str(tmp_path))
    batches = bench.first_batches(cfg, 8)
    module = build_module(cfg)
    bench.warm_caption_cache(module, batches)
    reads = bench.host_reads_per_step(cfg, module, batches, torch.device("cpu"))
    assert reads["plain"]  # on a CPU host-side tensors count too: the counter does count
    assert reads["lightning"] == reads["plain"]
