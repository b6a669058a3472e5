"""Cold torch.compile time: the whole network (as before regional compilation) against its
blocks (UNet3D.compile), with an empty inductor cache; and the warm time of one round.

    python benchmarks/compile_time.py eager|whole|regional [--device cuda]

One round: a training step at batch 2, then inference at batch 4 and at batch 8 (validation,
sampling). Prints one JSON line; run each mode in a fresh process.
"""

import argparse
import json
import os
import tempfile
import time

os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp()  # cold: nothing compiled before

import torch  # noqa: E402

from text2sign.models.unet3d import CONTEXT_MULTIPLE, UNet3D  # noqa: E402


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["eager", "whole", "regional"])
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.manual_seed(0)
    model = UNet3D(context_dim=64, base_channels=32, channel_mults=(1, 2, 4), num_res_blocks=2,
                   attention_levels=(1, 2), num_heads=4).to(args.device)
    if args.mode == "whole":
        model.context_multiple = CONTEXT_MULTIPLE
        model.denoise = torch.compile(model.denoise)
    elif args.mode == "regional":
        model.compile()
    context = torch.randn(8, 8, 64, device=args.device)

    def train_step(batch: int) -> None:
        model.train()
        x = torch.randn(batch, 3, 8, 32, 32, device=args.device)
        t = torch.randint(0, 1000, (batch,), device=args.device)
        model(x, t, context[:batch], None).square().mean().backward()

    def inference(batch: int) -> None:
        model.eval()
        with torch.no_grad():
            model(torch.randn(batch, 3, 8, 32, 32, device=args.device),
                  torch.randint(0, 1000, (batch,), device=args.device), context[:batch], None)

    figures = {"mode": args.mode, "device": args.device, "torch": torch.__version__,
               "first_train_step_s": timed(lambda: train_step(2)),
               "first_inference_s": timed(lambda: inference(4)),
               "second_inference_batch_s": timed(lambda: inference(8)),
               "warm_round_s": timed(lambda: (train_step(2), inference(4), inference(8)))}
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
