"""What only a GPU can show: CUDA-graph sampling and a run's phases on the device that trained.
Skipped without CUDA (CI); benchmarks/gpu_checks.sh runs them on a lent GPU."""

from __future__ import annotations

import pytest
import torch
from conftest import TINY, compose_config

from text2sign.models.cuda_graph import CapturedCall
from text2sign.run.job import build_module, run

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def test_a_captured_call_replays_what_the_function_computes():
    weight = torch.randn(64, 64, device="cuda")
    captured = CapturedCall(lambda x, t: (x @ weight).relu() * t[:, None])
    for _ in range(3):
        x, t = torch.randn(8, 64, device="cuda"), torch.rand(8, device="cuda")
        torch.testing.assert_close(captured(x, t), (x @ weight).relu() * t[:, None])
    assert captured.graph is not None and not captured.failed


def test_sampling_with_cuda_graphs_equals_sampling_without(tmp_path):
    plain = build_module(compose_config([*TINY, "perf.cuda_graphs=false"], tmp_path)).cuda()
    graphed = build_module(compose_config([*TINY, "perf.cuda_graphs=true"], tmp_path)).cuda()
    graphed.load_state_dict(plain.state_dict())
    with torch.no_grad():
        for p in plain.denoiser.parameters():  # zero-initialised layers would hide differences
            p.add_(0.05 * torch.randn_like(p))
    graphed.load_state_dict(plain.state_dict())
    prompts = ["hello", "thank you"]
    difference = (graphed.sample(prompts, steps=4).int() - plain.sample(prompts, steps=4).int())
    assert difference.abs().max() <= 1  # uint8 levels: rounding of the same computation


def test_a_run_on_the_gpu_completes_with_its_phases_on_the_gpu(tmp_path):
    results = run(compose_config([*TINY, "trainer.accelerator=gpu"], tmp_path))
    assert results["status"] == "completed", results["error"]
    assert results["eval"]["inference_memory_gb"] > 0  # evaluation measured CUDA memory
    assert results["train"]["peak_memory_gb"] > 0
