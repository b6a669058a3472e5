"""Training and sampling speed of a composed config, against plain PyTorch.

    python -m text2sign.cli.bench [train overrides] [bench.KEY=VALUE ...] bench.out=FILE

On the device present (CUDA if any, else the CPU) it times, after `bench.warmup_steps`:
the framework's training step (a real pl.Trainer fit with the run's per-step callbacks and
loggers and progress bar), a plain PyTorch loop with the same module, batches, precision,
optimizer, gradient clipping and EMA update (`ema=true`: one foreach kernel, as the EMA
callback does), and a plain eager fp32 loop without the fast path (perf off, TF32 off).
Checkpoints and validation are off in every loop. Each figure is the median of
`bench.steps` steps (CUDA synchronised); `overhead_ms` is what the framework adds to a step,
and `host_reads_per_step` counts, in each loop, the reads that make the host wait for the
device (text2sign.host_sync.HostReads). Also: sampling time per clip
(guided DDIM), text-encoder time per step (frozen with a warm cache, finetuned forward and
backward), peak memory and MFU (FLOPs of one step by torch.utils.flop_counter against the
GPU's peak). A figure that cannot be measured is null, with the reason under `notes`.
"""

from __future__ import annotations

import dataclasses
import itertools
import platform
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from contextlib import nullcontext
from typing import Any

import pytorch_lightning as pl
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch.profiler import ProfilerActivity, profile
from torch.utils.data import DataLoader

from text2sign.callbacks.ema import EMA
from text2sign.callbacks.step_cost import flop_counter, mfu, peak_flops
from text2sign.cli.errors import one_line_errors
from text2sign.config import CONF, BenchConfig, register_configs
from text2sign.host_sync import HostReads
from text2sign.module import UNCONDITIONAL_CAPTION, TextToSignModule
from text2sign.perf import AUTOCAST_DTYPES, FastPath
from text2sign.run.job import build_module, known_warnings_silenced
from text2sign.rundir.files import atomic_write_json
from text2sign.timing import median_ms, synchronize

GB = 1024**3


# ------------------------------------------------------------------------------------ config
def compose_configs(overrides: list[str], output_dir: str) -> tuple[DictConfig, DictConfig]:
    """(train config, bench config) from command-line overrides; `bench.*` go to the second.

    The compose API writes nothing: no Hydra run directory appears in the working directory.
    """
    bench_args = [o.removeprefix("bench.") for o in overrides if o.startswith("bench.")]
    bench = OmegaConf.merge(OmegaConf.structured(BenchConfig), OmegaConf.load(CONF / "bench.yaml"),
                            OmegaConf.from_dotlist(bench_args))
    register_configs()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("train", [o for o in overrides if not o.startswith("bench.")])
    cfg.paths.output_dir = output_dir  # no Hydra run: nothing else reads its runtime
    return cfg, bench


# ------------------------------------------------------------------------------------ timing
def step_times(stamps: list[float], warmup: int) -> list[float]:
    """Seconds between consecutive stamps (one per step), warm-up steps left out."""
    return [b - a for a, b in itertools.pairwise(stamps)][warmup:]


def median_of(times: list[float]) -> float:
    """The median of `times` (seconds) in milliseconds."""
    return 1000 * statistics.median(times)


class StepStamps(pl.Callback):
    """A timestamp when the first batch starts and after every batch (the last callback)."""

    def __init__(self, device: torch.device):
        self.device, self.stamps = device, []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if not self.stamps:
            synchronize(self.device)
            self.stamps.append(time.perf_counter())

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        synchronize(self.device)
        self.stamps.append(time.perf_counter())


# ------------------------------------------------------------------------------------ loops
def first_batches(cfg: DictConfig, n: int) -> list[dict]:
    """The first `n` training batches of the configured data, held in memory."""
    datamodule = instantiate(cfg.data)
    datamodule.setup("fit")
    batches = []
    while len(batches) < n:  # more epochs when one is shorter than n batches
        epoch = list(itertools.islice(datamodule.train_dataloader(), n - len(batches)))
        if not epoch:
            raise ValueError("the training data yields no batch: check data.num_train")
        batches += epoch
    return batches


def lightning_stamps(cfg: DictConfig, module: TextToSignModule, batches: list[dict],
                     device: torch.device) -> list[float]:
    """A real fit over `batches`, with the run's per-step callbacks, loggers and progress bar."""
    stamps = StepStamps(device)
    per_step = ["training_log", "gpu_memory", "ema"]
    if cfg.trainer.enable_progress_bar:
        per_step.append("progress_bar")
    callbacks = [*(instantiate(cfg.callbacks[name]) for name in per_step), stamps]
    trainer = instantiate(
        cfg.trainer, max_steps=len(batches), max_epochs=1, limit_val_batches=0,
        num_sanity_val_steps=0, accumulate_grad_batches=1, enable_checkpointing=False,
        callbacks=callbacks, logger=[instantiate(c) for c in cfg.logger.values()],
    )
    trainer.fit(module, train_dataloaders=DataLoader(batches, batch_size=None))
    return stamps.stamps


def autocast_context(precision: str, device: torch.device):
    dtype = AUTOCAST_DTYPES.get(str(precision))
    return nullcontext() if dtype is None else torch.autocast(device.type, dtype=dtype)


def train_step(module: TextToSignModule, batch: dict, device: torch.device,
               precision: str) -> torch.Tensor:
    """Forward and backward of one batch, as plain PyTorch: the module's own step loss."""
    batch = {**batch, "video": batch["video"].to(device, non_blocking=True)}
    with autocast_context(precision, device):
        loss = module.step_loss(batch)
    loss.backward()
    return loss


def plain_stamps(module: TextToSignModule, batches: list[dict], device: torch.device,
                 precision: str, clip_norm: float | None, ema: EMA | None = None) -> list[float]:
    """The plain PyTorch loop: forward, backward, clipping, optimizer and LR-scheduler step,
    and the EMA update when `ema` is given."""
    module.configure_model()  # the fast path, as Lightning applies it before a fit
    module.to(device).train()
    optimizer, scheduler = optimizer_and_scheduler(module)
    params = [p for group in optimizer.param_groups for p in group["params"]]
    if ema is not None:
        ema.track({n: p for n, p in module.named_parameters() if p.requires_grad})
    synchronize(device)
    stamps = [time.perf_counter()]
    for batch in batches:
        train_step(module, batch, device, precision)
        if clip_norm:
            torch.nn.utils.clip_grad_norm_(params, clip_norm)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if scheduler is not None:
            scheduler.step()
        if ema is not None:
            ema.update()
        synchronize(device)
        stamps.append(time.perf_counter())
    return stamps


def plain_ema(cfg: DictConfig) -> EMA | None:
    """The run's EMA for the plain loop (a fresh average), or None with ema=false."""
    return instantiate(cfg.callbacks.ema) if cfg.ema else None


def host_reads_per_step(cfg: DictConfig, module: TextToSignModule, batches: list[dict],
                        device: torch.device) -> dict[str, dict[str, float]]:
    """Per loop, the reads that make the host wait for the device in one training step, by
    the place in the code that asks: the difference between a run of all `batches` and one
    of half of them, so that what a loop does once (set-up, teardown) cancels out."""
    loops = {
        "lightning": lambda part: lightning_stamps(cfg, module, part, device),
        "plain": lambda part: plain_stamps(module, part, device, str(cfg.trainer.precision),
                                           cfg.trainer.gradient_clip_val, plain_ema(cfg)),
    }
    half = batches[: len(batches) // 2]
    per_step = {}
    for name, loop in loops.items():
        counts = []
        for part in (half, batches):
            with HostReads(device) as reads:
                loop(part)
            counts.append(reads.counts)
        extra = counts[1] - counts[0]
        per_step[name] = {place: n / (len(batches) - len(half)) for place, n in extra.items()}
    return per_step


def optimizer_and_scheduler(module: TextToSignModule) -> tuple[torch.optim.Optimizer, Any]:
    configured = module.configure_optimizers()
    if isinstance(configured, torch.optim.Optimizer):
        return configured, None
    return configured["optimizer"], configured["lr_scheduler"]["scheduler"]


def eager_fp32_config(cfg: DictConfig) -> DictConfig:
    """The config without the fast path (`FastPath()`: every switch off), in fp32."""
    plain_path = dataclasses.asdict(FastPath())
    return OmegaConf.merge(cfg, {"perf": plain_path, "trainer": {"precision": "32-true"}})


def batch_sweep(module: TextToSignModule, batch: dict, device: torch.device, precision: str,
                limit: int, flops_per_clip: float, peak: float | None,
                steps: int) -> list[dict[str, Any]]:
    """Plain training steps (forward, backward, optimizer step) at the configured batch times
    1, 2, 4, ... up to `limit` clips, while they fit in GPU memory: per batch size the median
    step time of `steps` steps after a warm-up one, its clips per second and its MFU (None
    with an unknown `peak`). Empty off a GPU (the CPU has no fixed memory limit)."""
    if device.type != "cuda":
        return []
    optimizer, _ = optimizer_and_scheduler(module.to(device).train())
    rows, size = [], len(batch["caption"])
    while size <= limit:
        repeats = size // len(batch["caption"])
        big = {"video": batch["video"].repeat(repeats, 1, 1, 1, 1),
               "caption": list(batch["caption"]) * repeats}

        def step() -> None:
            train_step(module, big, device, precision)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        try:
            ms = median_ms(step, steps, device)
        except torch.cuda.OutOfMemoryError:
            break
        finally:
            optimizer.zero_grad(set_to_none=True)
        clips_per_s = size / ms * 1000
        rows.append({"batch_size": size, "step_ms": ms, "clips_per_s": clips_per_s,
                     "mfu": mfu(flops_per_clip, clips_per_s, peak)})
        size *= 2
    optimizer.state.clear()  # its moments, before the next part measures memory
    torch.cuda.empty_cache()
    return rows


def warm_caption_cache(module: TextToSignModule, batches: list[dict]) -> None:
    """Encode every caption once, as after the first epoch: otherwise a frozen encoder's
    cache would make whichever loop runs first pay for all the encoding."""
    with torch.no_grad():
        for batch in batches:
            module.text_encoder([*batch["caption"], UNCONDITIONAL_CAPTION])


def count_flops(module: TextToSignModule, batch: dict, device: torch.device) -> int:
    """FLOPs of one eager training step (forward and backward), caption cache warm."""
    module.to(device).train()
    with flop_counter() as counter:
        train_step(module, batch, device, "32-true")
    module.zero_grad(set_to_none=True)
    return counter.get_total_flops()


# ------------------------------------------------------------------------------ other parts
def profile_loops(cfg: DictConfig, module: TextToSignModule, batches: list[dict],
                  device: torch.device, trace_prefix: str | None) -> dict[str, list[dict]]:
    """torch.profiler over a Lightning fit and the plain loop of `batches`, after the timed
    loops (compiled and warm): for each, the operators that took the most time on the device
    (the CPU without one), and a Chrome trace `<trace_prefix>.<loop>.trace.json` if given."""
    on_gpu = device.type == "cuda"
    activities = [ProfilerActivity.CPU, *([ProfilerActivity.CUDA] if on_gpu else [])]
    loops = {
        "lightning": lambda: lightning_stamps(cfg, module, batches, device),
        "plain": lambda: plain_stamps(module, batches, device, str(cfg.trainer.precision),
                                      cfg.trainer.gradient_clip_val, plain_ema(cfg)),
    }
    tops = {}
    for name, loop in loops.items():
        with profile(activities=activities) as profiler:
            loop()
        if trace_prefix:
            profiler.export_chrome_trace(f"{trace_prefix}.{name}.trace.json")
        tops[name] = top_operators(profiler.key_averages(), on_gpu)
    return tops


def top_operators(events, on_gpu: bool, n: int = 20) -> list[dict]:
    """The `n` operators with the most self time on the device (on_gpu) or the CPU."""
    def device_ms(event) -> float:
        return event.self_device_time_total / 1000

    def cpu_ms(event) -> float:
        return event.self_cpu_time_total / 1000

    ranked = sorted(events, key=device_ms if on_gpu else cpu_ms, reverse=True)[:n]
    return [{"name": e.key, "calls": e.count, "self_cpu_ms": round(cpu_ms(e), 3),
             "self_device_ms": round(device_ms(e), 3) if on_gpu else None} for e in ranked]


def short_place(place: str) -> str:
    """A "file:line function" place, the file named from its package (site-packages) or repo."""
    for root in ("site-packages/", "text2sign/"):
        if root in place:
            return place[place.index(root) + (len(root) if root == "site-packages/" else 0):]
    return place


def text_encoder_ms(cfg: DictConfig, batches: list[dict], device: torch.device,
                    repeats: int) -> dict[str, float]:
    """Milliseconds per training step of the encoder: frozen once every caption is cached,
    and finetuned (forward and backward), at the batch size."""
    precision = cfg.trainer.precision
    frozen = instantiate(cfg.text_encoder, trainable=False, trainable_layers=None, lr=None,
                         layer_lr_decay=1.0)
    finetuned = instantiate(cfg.text_encoder, trainable=True, trainable_layers=None)
    frozen.to(device)
    finetuned.to(device).train()
    for batch in batches:  # the first epoch fills the cache
        frozen(list(batch["caption"]))
    captions = [list(b["caption"]) for b in batches]

    def finetune_step() -> None:
        with autocast_context(precision, device):
            features, _ = finetuned(captions[0])
        features.float().sum().backward()
        finetuned.zero_grad(set_to_none=True)

    with autocast_context(precision, device):
        frozen_ms = median_ms(lambda: [frozen(c) for c in captions], repeats, device)
    return {"frozen": frozen_ms / len(captions),
            "finetuned": median_ms(finetune_step, repeats, device)}


def inference_ms(module: TextToSignModule, prompt: str, bench: DictConfig,
                 device: torch.device) -> float:
    """One guided clip: `bench.sample_steps` DDIM steps, conditional and unconditional batched."""
    module.to(device)
    return median_ms(
        lambda: module.sample([prompt], bench.sample_steps, bench.sample_guidance_scale, seed=0),
        bench.sample_repeats, device,
    )


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"


# ------------------------------------------------------------------------------------ main
def run(cfg: DictConfig, bench: DictConfig,
        save: Callable[[dict[str, Any]], None] = lambda results: None) -> dict[str, Any]:
    """Every figure of the benchmark for a composed train config.

    `save(results)` is called after each part with the figures so far (`complete` false until
    the last), so that a bench killed by a time limit keeps what it measured.
    """
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    warmup, precision = bench.warmup_steps, str(cfg.trainer.precision)
    pl.seed_everything(cfg.seed, workers=True)
    batches = first_batches(cfg, warmup + bench.steps + 1)
    name = device_name(device)
    results: dict[str, Any] = {
        "device": name, "complete": False, "batch_size": len(batches[0]["caption"]),
        "precision": precision, "perf": OmegaConf.to_container(cfg.perf),
        "settings": OmegaConf.to_container(bench),
        "versions": {"python": platform.python_version(), "torch": torch.__version__,
                     "pytorch_lightning": pl.__version__,
                     "cuda": torch.version.cuda if device.type == "cuda" else None},
        "notes": {},
    }
    notes = results["notes"]

    module = build_module(cfg).to(device)
    warm_caption_cache(module, batches)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    lightning_times, plain_times, first_steps = [], [], []
    for _ in range(bench.rounds):  # alternated, so that a slow spell hits both loops alike
        stamps = lightning_stamps(cfg, module, batches, device)
        first_steps.append(stamps[1] - stamps[0])
        lightning_times += step_times(stamps, warmup)
        plain_times += step_times(plain_stamps(module, batches, device, precision,
                                               cfg.trainer.gradient_clip_val, plain_ema(cfg)),
                                  warmup)
    lightning, plain = median_of(lightning_times), median_of(plain_times)
    peak_memory = torch.cuda.max_memory_allocated(device) / GB if device.type == "cuda" else None
    if peak_memory is None:
        notes["peak_memory_gb"] = "no CUDA device: see peak_rss_gb (the process's peak RSS)"
    results.update(first_step_s=first_steps[0],  # compilation included, from a cold cache
                   lightning_step_ms=lightning, plain_step_ms=plain,
                   overhead_ratio=lightning / plain, overhead_ms=lightning - plain,
                   clips_per_s=results["batch_size"] / lightning * 1000,
                   peak_memory_gb=peak_memory)
    save(results)

    eager = build_module(eager_fp32_config(cfg)).to(device)
    warm_caption_cache(eager, batches)
    flops = count_flops(eager, batches[0], device)
    eager_ms = median_of(step_times(plain_stamps(eager, batches, device, "32-true",
                                                 cfg.trainer.gradient_clip_val, plain_ema(cfg)),
                                    warmup))
    del eager
    FastPath(**cfg.perf).apply_global_settings()  # the eager module switched TF32 off
    peak = peak_flops(name, precision, cfg.perf.tf32) if device.type == "cuda" else None
    if peak is None:
        notes["mfu"] = (f"peak FLOP/s of {name!r} at {precision} unknown "
                       "(text2sign/callbacks/step_cost.py, PEAK_FLOPS)")
    results.update(eager_fp32_step_ms=eager_ms, speedup_vs_eager_fp32=eager_ms / lightning,
                   flops_per_step=flops,
                   mfu=mfu(flops / results["batch_size"], results["clips_per_s"], peak))
    save(results)

    reads = host_reads_per_step(cfg, module, batches[:2 * bench.host_read_steps], device)
    results["host_reads_per_step"] = {loop: sum(places.values()) for loop, places in reads.items()}
    results["host_reads"] = {loop: {short_place(place): n for place, n in places.items()}
                             for loop, places in reads.items()}
    save(results)

    if bench.profile_steps:
        trace_prefix = str(bench.out).removesuffix(".json") if bench.out else None
        results["profile"] = profile_loops(cfg, module, batches[:bench.profile_steps], device,
                                           trace_prefix)
        save(results)

    # sampling shapes recompile: after the figures above
    results["inference_ms_per_clip"] = inference_ms(module, batches[0]["caption"][0], bench,
                                                    device)
    results["text_encoder_ms_per_step"] = text_encoder_ms(cfg, batches, device,
                                                          bench.encoder_repeats)
    save(results)

    # last: on a GPU it steps up to bench.largest_batch_limit clips
    sweep = batch_sweep(module, batches[0], device, precision, bench.largest_batch_limit,
                        flops / results["batch_size"], peak, bench.steps)
    results["batch_sweep"] = sweep
    results["largest_batch"] = sweep[-1]["batch_size"] if sweep else None
    results["best_batch"] = max(sweep, key=lambda row: row["clips_per_s"]) if sweep else None
    if not sweep:
        notes["largest_batch"] = notes["best_batch"] = (
            "measured on a GPU only (the CPU has no fixed memory limit)")
    results["peak_rss_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / GB
    results["complete"] = True
    return results


def table(results: dict[str, Any]) -> str:
    """The figures as an aligned two-column table."""
    rows = [(k, v) for k, v in results.items()
            if k not in ("perf", "settings", "notes", "profile", "host_reads", "batch_sweep")]
    rows += [(f"batch {row['batch_size']}", row) for row in results.get("batch_sweep", [])]
    rows += [(f"note: {k}", v) for k, v in results["notes"].items()]
    for loop, ops in results.get("profile", {}).items():
        rows += [(f"profile: {loop} #{i + 1}", f"{op['name']}: {fmt(op['self_device_ms'] or op['self_cpu_ms'])} ms")
                 for i, op in enumerate(ops[:5])]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {fmt(v)}" for k, v in rows)


def fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict):
        return ", ".join(f"{k}={fmt(v)}" for k, v in value.items())
    return "n/a" if value is None else str(value)


def main(argv: Iterable[str] | None = None) -> dict[str, Any]:
    overrides = list(sys.argv[1:] if argv is None else argv)
    with tempfile.TemporaryDirectory(prefix="text2sign-bench-") as run_dir:
        cfg, bench = compose_configs(overrides, run_dir)

        def save(results: dict[str, Any]) -> None:
            if bench.out:
                atomic_write_json(bench.out, {**results, "overrides": overrides})

        with known_warnings_silenced():
            results = run(cfg, bench, save)
    results["overrides"] = overrides
    save(results)
    print(table(results))
    return results


if __name__ == "__main__":
    with one_line_errors("bench"):
        main()
