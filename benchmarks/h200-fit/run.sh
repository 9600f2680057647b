#!/usr/bin/env bash
# The H200 run behind benchmarks/h200-fit/ (README.md there): fit's placement search with --verify on a
# real GPU beside llama.cpp's own fit, and estimate --total's time beside llama-fit-params'. From the
# repo root on the device machine:
#   bash benchmarks/h200-fit/run.sh start    # build llama.cpp with CUDA, make the models, run
#   PARTS="fits loadmode" bash benchmarks/h200-fit/run.sh start    # some of: speed fits loadmode
#   bash benchmarks/h200-fit/run.sh wait N   # wait up to N s, then copy what exists to $OUT
set -u
W=/tmp/w; R=$W/fit; mkdir -p $R
job() {
  set -x
  setup
  python3 scripts/make_shaped.py qwen2-7b $W/qwen2-7b.gguf
  python3 scripts/make_shaped.py qwen3moe-30b-a3b $W/qwen3moe-30b-a3b.gguf
  case " ${PARTS:-speed fits loadmode} " in *" speed "*) speed ;; esac
  case " ${PARTS:-speed fits loadmode} " in *" loadmode "*)  # CUDA_Host, AMX: writes $R/lm17_cuda.json
    OUT=$R python3 benchmarks/load-mode/cuda_check.py $W/qwen2-7b.gguf > $R/cuda_check.txt 2>&1 ;; esac
  case " ${PARTS:-speed fits loadmode} " in *" fits "*) fits ;; esac
  echo done > $R/DONE
}
speed() {
  python3 scripts/bench_estimate_speed.py $W/qwen2-7b.gguf --bin $W/build/bin -c 4096 --rounds 5 --profile -- -ngl all \
    > $R/speed.txt 2>&1
  python3 scripts/bench_estimate_speed.py $W/qwen3moe-30b-a3b.gguf --bin $W/build/bin -c 4096 --rounds 5 --profile \
    -- -ngl all -ncmoe 24 >> $R/speed.txt 2>&1
}
fits() {
  C="--case $W/qwen2-7b.gguf:32768:4096 --case $W/qwen2-7b.gguf:32768:6144"
  C="$C --case $W/qwen3moe-30b-a3b.gguf:32768:8192 --case $W/qwen3moe-30b-a3b.gguf:32768:14336"
  python3 scripts/gpu_fit_search.py --bin $W/build/bin -ct f16,q8_0 --margin 0 --md $R/fit-margin0.md $C
  python3 scripts/gpu_fit_search.py --bin $W/build/bin -ct f16,q8_0 --margin 1024 --md $R/fit-margin1024.md $C
}
source "$(dirname "$0")/../device-job.sh"
