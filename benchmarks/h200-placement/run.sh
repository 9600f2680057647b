#!/usr/bin/env bash
# The H200 run behind benchmarks/h200-placement/ (README.md there): placement flags on a real GPU with
# real-shaped zero-weight models (scripts/make_shaped.py). From the repo root on the device machine:
#   bash benchmarks/h200-placement/run.sh start    # build llama.cpp with CUDA, make the models, compare
#   bash benchmarks/h200-placement/run.sh wait N   # wait up to N s, then copy what exists to $OUT
set -u
W=/tmp/w; R=$W/placement; mkdir -p $R
env_setup() {
  export LLAMA_CPP_LIB_PATH=$W/build/bin
  export PYTHONPATH=$W:$PWD:/tmp/site PYTHONUNBUFFERED=1
}
job() {
  set -x
  python3 -m pip install -q --no-index --no-deps --target /tmp/site .gpu/*.whl
  env_setup
  until bash .gpu/build-cuda.sh | tee -a $R/build.txt | grep -q "build rc=0"; do
    grep -q "build rc=[1-9]" $R/build.txt && exit 1; sleep 5; done
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
