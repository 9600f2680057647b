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
case "${1:-}" in
  start) nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > $R/gpu.txt 2>&1
         setsid nohup bash "$0" job > $R/job.log 2>&1 < /dev/null & sleep 5; tail -3 $R/job.log ;;
  job) job ;;
  wait) for i in $(seq 1 "${2:-500}"); do [ -f $R/DONE ] && break; sleep 1; done
        tail -25 $R/job.log
        cp $R/*.md $R/job.log $R/gpu.txt ${OUT:-/tmp} 2>/dev/null
        [ -f $R/DONE ] && echo "JOB DONE" || echo "job still running" ;;
  *) echo "usage: $0 start|wait N"; exit 2 ;;
esac
