#!/usr/bin/env bash
# The GPU checks of docs/performance.md, in one pass that fits a 10-minute call on an H200
# (about 9 minutes), most wanted first, each part with its own time limit:
#   1. a short scale=full run end to end: train, validate, samples, evaluation (status completed);
#   2. a 2-job sweep with hydra/launcher=parallel, a few steps each;
#   3. the GPU-only tests (tests/test_gpu.py: CUDA-graph sampling, placement after training);
#   4. the compiled bench at scale=full: overhead, MFU at the best batch, sampling, a profile.
# Usage: bash benchmarks/gpu_checks.sh OUT_DIR [SECONDS] [override ...]
#   OUT_DIR gets run_full_results.json, sweep_results.json, gpu_tests.log, bench_compiled.json;
#   SECONDS: the time this script may take (default 540); a part that would not fit is skipped;
#   overrides go to every command (e.g. text_encoder.name=/path/to/encoder).
set -u -o pipefail
out=$(realpath -m "${1:?usage: gpu_checks.sh OUT_DIR [SECONDS] [override ...]}")
budget=${2:-540}
shift $(( $# >= 2 ? 2 : 1 ))
mkdir -p "$out"
deadline=$(( SECONDS + budget ))
py=${PYTHON:-python}
work=$(mktemp -d)
extra=("$@")

# part LIMIT NAME CMD...: CMD with at most LIMIT seconds (less if the budget ends sooner)
part() {
  local limit=$1 name=$2; shift 2
  local left=$(( deadline - SECONDS ))
  (( left < 30 )) && { echo "== $name: skipped, ${left}s left"; return; }
  (( limit > left )) && limit=$left
  echo "== $name (at most ${limit}s): $*"
  local start=$SECONDS
  timeout --signal=INT --kill-after=15 "$limit" "$@"
  echo "== $name: exit $? after $(( SECONDS - start ))s"
}

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
"$py" -c "import torch, pytorch_lightning as pl; print('torch', torch.__version__, 'cudnn', \
  torch.backends.cudnn.version(), 'pytorch_lightning', pl.__version__)"

part 210 "scale=full run" "$py" train.py scale=full "${extra[@]}" hydra.run.dir="$work/run_full" \
  trainer.max_steps=100 trainer.val_check_interval=50 trainer.limit_val_batches=2 \
  callbacks.last_checkpoint.every_n_train_steps=50 eval.num_videos=8 eval.retrieval.num_clips=16
cp "$work/run_full/results.json" "$out/run_full_results.json"

part 120 "2-job sweep" "$py" train.py -m hydra/launcher=parallel scale=full "${extra[@]}" ema=true,false \
  hydra.sweep.dir="$work/sweep" trainer.max_steps=20 trainer.val_check_interval=20 \
  trainer.limit_val_batches=1 eval.num_videos=2 eval.retrieval.num_clips=4 'callbacks.samples.prompts=[hello]'
"$py" -c "import json, pathlib, sys; print(json.dumps({str(p.parent.name): json.loads(p.read_text()) \
  for p in sorted(pathlib.Path(sys.argv[1]).glob('*/results.json'))}, indent=1))" "$work/sweep" \
  > "$out/sweep_results.json"

part 45 "GPU tests" "$py" -m pytest -q -m "slow or not slow" tests/test_gpu.py 2>&1 | tee "$out/gpu_tests.log"

part 165 "compiled bench" "$py" -m text2sign.cli.bench scale=full "${extra[@]}" bench.profile_steps=3 \
  bench.rounds=2 bench.steps=8 bench.out="$work/bench_compiled.json"
cp "$work/bench_compiled.json" "$out/bench_compiled.json"
"$py" -c "import json, sys; r = json.load(open(sys.argv[1])); print({k: r.get(k) for k in \
  ('complete', 'overhead_ratio', 'overhead_ms', 'mfu', 'best_batch', 'inference_ms_per_clip')})" \
  "$out/bench_compiled.json"
for f in "$out"/run_full_results.json "$out"/sweep_results.json; do
  "$py" -c "import json, sys; d = json.load(open(sys.argv[1])); rs = d.values() if 'status' not in d else [d]; \
    print(sys.argv[1], [(r['status'], r.get('error'), r['train'].get('clips_per_s'), r['train'].get('mfu')) for r in rs])" "$f"
done
