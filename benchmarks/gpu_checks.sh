#!/usr/bin/env bash
# The GPU figures of README "Performance", in one pass on one GPU, most wanted first:
#   1. the bench at scale=full (the fast path's defaults), with a profile of 5 steps;
#   2. a short real scale=full run: training, validation, evaluation and samples;
#   3. the bench's variants (eager bf16, channels-last, CUDA graphs, checkpointing).
# Usage: bash benchmarks/gpu_checks.sh OUT_DIR [SECONDS] [override ...]
#   OUT_DIR: bench_<variant>.json, bench_default.{lightning,plain}.trace.json, run_full.tar.gz
#   (the run directory without checkpoints);
#   SECONDS: the time this script may take (default 3600); parts that would not fit are skipped;
#   overrides go to every command (e.g. text_encoder.name=/path/to/encoder).
set -u -o pipefail
out=$(realpath -m "${1:?usage: gpu_checks.sh OUT_DIR [SECONDS] [override ...]}")
budget=${2:-3600}
shift $(( $# >= 2 ? 2 : 1 ))
mkdir -p "$out"
deadline=$(( SECONDS + budget ))
py=${PYTHON:-python}

# run LIMIT NAME CMD...: CMD with at most LIMIT seconds (less if the budget ends sooner)
run() {
  local limit=$1 name=$2; shift 2
  local left=$(( deadline - SECONDS ))
  (( left < 60 )) && { echo "== $name: skipped, ${left}s left"; return; }
  (( limit > left )) && limit=$left
  echo "== $name (at most ${limit}s): $*"
  local start=$SECONDS
  timeout --signal=INT --kill-after=20 "$limit" "$@"
  echo "== $name: exit $? after $(( SECONDS - start ))s"
}

extra=("$@")
bench() {  # bench NAME [override ...]
  local name=$1; shift
  run 600 "bench $name" "$py" -m text2sign.cli.bench scale=full "${extra[@]}" "$@" \
    bench.out="$out/bench_$name.json"
}

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
"$py" -c "import torch, pytorch_lightning as pl; print('torch', torch.__version__, 'cudnn', \
  torch.backends.cudnn.version(), 'pytorch_lightning', pl.__version__)"
bench default bench.profile_steps=5
run 600 "scale=full run" "$py" train.py scale=full "${extra[@]}" hydra.run.dir="$out/run_full" \
  trainer.max_steps=300 trainer.val_check_interval=150 trainer.limit_val_batches=4 \
  callbacks.last_checkpoint.every_n_train_steps=150 eval.num_videos=32
tar -czf "$out/run_full.tar.gz" -C "$out" --exclude=checkpoints run_full && rm -rf "$out/run_full"
bench eager_bf16 perf.compile=false
bench channels_last perf.channels_last=true
bench reduce_overhead perf.compile_mode=reduce-overhead
bench checkpointing perf.gradient_checkpointing=true
