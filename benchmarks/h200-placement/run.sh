#!/usr/bin/env bash
# The H200 run behind benchmarks/h200-placement/ (README.md there): placement flags on a real GPU with
# real-shaped zero-weight models (scripts/make_shaped.py). From the repo root on the device machine:
#   bash benchmarks/h200-placement/run.sh start    # build llama.cpp with CUDA, make the models, compare
#   bash benchmarks/h200-placement/run.sh wait N   # wait up to N s, then copy what exists to $OUT
set -u
W=/tmp/w; R=$W/placement; mkdir -p $R
job() {
  set -x
  setup
  python3 scripts/make_shaped.py qwen3moe-30b-a3b $W/qwen3moe-30b-a3b.gguf
  python3 scripts/make_shaped.py qwen2-7b $W/qwen2-7b.gguf
  B="--bin $W/build/bin --real -ct f16 --ctx 4096,32768"
  python3 scripts/gpu_placement.py $W/qwen3moe-30b-a3b.gguf $B --md $R/qwen3moe.md \
    --flags "-ngl all" --flags "-ngl all -ncmoe 24" --flags "-ngl all -ot exps=CPU"
  python3 scripts/gpu_placement.py $W/qwen2-7b.gguf $B --md $R/qwen2-7b.md \
    --flags "-ngl all" --flags "-ngl 14"
  echo done > $R/DONE
}
source "$(dirname "$0")/../device-job.sh"
