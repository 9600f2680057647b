#!/usr/bin/env bash
# The H100 run behind benchmarks/h100/ (see README.md there). Runs on the device machine from the
# repo root, as one background job that survives the 10-minute call limit:
#   bash benchmarks/h100/run.sh start    # build llama.cpp with CUDA, make the 1.1B model, sweep, llama-bench
#   bash benchmarks/h100/run.sh wait N   # wait up to N s, then copy what exists to $OUT
set -u
W=/tmp/w; R=$W/h100; mkdir -p $R
env_setup() {
  export LLAMA_CPP_LIB_PATH=$W/build/bin
  export PYTHONPATH=$W:$PWD:/tmp/site PYTHONUNBUFFERED=1
}
job() {
  set -x
  python3 -m pip install -q --no-index --no-deps --target /tmp/site .gpu/*.whl
  env_setup
  bash .gpu/build-cuda.sh                                 # ~5 min on 16 cores, background inside
  python3 scripts/make_fixtures.py --llama-1b $W/llama-1b.gguf
  M=$W/llama-1b.gguf; T=$(python3 -c "import psutil; print(psutil.cpu_count(logical=False))")
  python3 -m ggufprof inspect $M
  for ngl in 23 12; do python3 -m ggufprof estimate $M -c 131072 -ctk q8_0 -ctv q8_0 -ngl $ngl; done
  S="python3 -m ggufprof sweep $M --out $R/sweep -ct f16,q8_0,q4_0 -fa on -p 512 -n 128 -t $T --timeout 900 --resume"
  $S -c 4096,32768,131072 -ngl 23 --kv-offload both -d 0 -r 10       # all layers on the GPU, KV on GPU / host
  $S -c 131072 -ngl 23 --kv-offload on -d 32768 -r 5                 # tg/pp at depth 32768
  $S -c 4096,32768,131072 -ngl 12 --kv-offload both -d 0 -r 3        # half: 11 of 22 layers + output
  B="$W/build/bin/llama-bench -m $M -fa 1 -p 512 -n 128 -t $T -o jsonl"
  for t in f16 q8_0 q4_0; do                                         # same settings, same repetitions
    $B -ngl 99 -ctk $t -ctv $t -d 0 -nkvo 0,1 -r 10 >> $R/llama-bench.jsonl
    $B -ngl 99 -ctk $t -ctv $t -d 32768 -r 5 >> $R/llama-bench.jsonl
    $B -ngl 12 -ctk $t -ctv $t -d 0 -nkvo 0,1 -r 3 >> $R/llama-bench.jsonl
  done
  echo done > $R/DONE
}
case "${1:-}" in
  start) env_setup; nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > $R/gpu.txt 2>&1
         setsid nohup bash "$0" job > $R/job.log 2>&1 < /dev/null & sleep 5; tail -3 $R/job.log ;;
  job) job ;;
  wait) for i in $(seq 1 "${2:-500}"); do [ -f $R/DONE ] && break; sleep 1; done
        tail -25 $R/job.log
        [ -d $R/sweep ] && cp $R/sweep/results.jsonl $R/sweep/results.csv ${OUT:-/tmp} 2>/dev/null
        [ -d $R/sweep/logs ] && tar czf ${OUT:-/tmp}/logs.tgz -C $R/sweep logs
        cp $R/llama-bench.jsonl $R/job.log $R/gpu.txt ${OUT:-/tmp} 2>/dev/null
        [ -f $R/DONE ] && echo "JOB DONE" || echo "job still running" ;;
  *) echo "usage: $0 start|wait N"; exit 2 ;;
esac
