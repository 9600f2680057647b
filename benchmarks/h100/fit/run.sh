#!/usr/bin/env bash
# The H100 run behind benchmarks/h100/fit/ (see README.md there): the whole footprint per device,
# `ggufprof fit --vram --verify`, and llama.cpp's own fit (llama-fit-params) beside it.
# Runs on the device machine from the repo root, with .gpu carried (llama.cpp source, wheels, and
# .gpu/models: SmolLM2's header, two tiny hybrid models from llama.cpp's architecture suite):
#   bash benchmarks/h100/fit/run.sh start    # background job: build, models, runs (STAGES="compare fit sweep")
#   bash benchmarks/h100/fit/run.sh wait N   # wait up to N s, then pack what exists into $OUT
set -u
W=/tmp/w; R=$W/fit; mkdir -p $R
env_setup() {
  export LLAMA_CPP_LIB_PATH=$W/build/bin PYTHONPATH=$W:$PWD:/tmp/site PYTHONUNBUFFERED=1  # $W/llama_cpp: the release's Python package
}
build() {  # build-cuda.sh's configuration, plus llama-fit-params (tools/fit-params)
  [ -x $W/build/bin/llama-fit-params ] && return 0
  mkdir -p $W && tar xzf .gpu/llama-src.tgz -C $W
  echo 'add_subdirectory(fit-params)' >> $W/llama.cpp/tools/CMakeLists.txt
  cmake -S $W/llama.cpp -B $W/build -G Ninja -DGGML_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 \
    -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_APP=OFF \
    -DLLAMA_CURL=OFF -DBUILD_SHARED_LIBS=ON > $W/cfg.log 2>&1 || { tail $W/cfg.log; return 1; }
  cmake --build $W/build -j"$(nproc)" --target llama ggml llama-fit-params > $W/build.log 2>&1 || { tail -20 $W/build.log; return 1; }
}
job() {
  set -x
  python3 -m pip install -q --no-index --no-deps --target /tmp/site .gpu/*.whl
  env_setup
  build || exit 1
  [ -f $W/llama-1b.gguf ] || python3 scripts/make_fixtures.py --llama-1b $W/llama-1b.gguf
  # SmolLM2-135M rebuilt from its header: zero weights, same shapes, types and memory (NOTES.md)
  cp .gpu/models/smollm2.header $W/smollm2.gguf && truncate -s "$(cat .gpu/models/smollm2.size)" $W/smollm2.gguf
  L1B=$W/llama-1b.gguf SMOL=$W/smollm2.gguf
  C="python3 scripts/compare_fit_params.py --bin $W/build/bin"
  case " ${STAGES:-compare fit sweep} " in *" compare "*)
  # 1. memory per device and the largest context, against llama.cpp's fit
  $C $L1B -ngl all --md $R/cmp-llama1b-all.md   > $R/cmp.txt 2>&1
  $C $L1B -ngl 12 --md $R/cmp-llama1b-12.md    >> $R/cmp.txt 2>&1
  $C $SMOL -ngl all --md $R/cmp-smollm2-all.md >> $R/cmp.txt 2>&1
  $C fixtures/gemma3-swa.gguf -ngl all --md $R/cmp-gemma3-all.md >> $R/cmp.txt 2>&1
  # hybrids (attention + recurrent state) from llama.cpp's suite: trained context 256, nothing to search
  for m in qwen35-dense jamba-dense; do $C .gpu/models/$m.gguf -ngl all --memory-only --md $R/cmp-$m-all.md >> $R/cmp.txt 2>&1; done
  esac
  case " ${STAGES:-compare fit sweep} " in *" fit "*)
  # 2. fit --vram, each answer created for real and measured
  F="python3 -m ggufprof fit"
  for b in 3GiB 4GiB 5GiB; do $F $L1B --vram $b -ngl all --verify --json > $R/fit-llama1b-all-$b.json 2>> $R/fit.err; done
  for b in 2500MiB 3GiB; do $F $L1B --vram $b -ngl 12 --verify --json > $R/fit-llama1b-12-$b.json 2>> $R/fit.err; done
  $F $SMOL --vram 1300MiB -ngl all --verify --json > $R/fit-smollm2-all-1300MiB.json 2>> $R/fit.err
  $F fixtures/gemma3-swa.gguf --vram 1050MiB -ngl all --no-swa-full --verify --json > $R/fit-gemma3-all-1050MiB.json 2>> $R/fit.err
  $F $L1B --vram 4GiB -ngl all --verify > $R/fit-llama1b-all-4GiB.txt 2>&1
  $F $L1B --vram 3GiB -ngl 12 --verify > $R/fit-llama1b-12-3GiB.txt 2>&1
  esac
  case " ${STAGES:-compare fit sweep} " in *" sweep "*)
  # 3. sweeps: the whole predicted footprint per device beside measured VRAM, in every record
  S="python3 -m ggufprof sweep --timeout 600 -p 512 -n 32 -r 2 -t 16"
  $S $L1B --out $R/sweep-llama1b -ct f16,q8_0,q4_0 -c 8192,65536 -ngl all,12 -fa on,off > $R/sweep.txt 2>&1
  $S $SMOL --out $R/sweep-smollm2 -ct f16,q8_0,q4_0 -c 8192 -ngl all,16 -fa on >> $R/sweep.txt 2>&1
  $S fixtures/gemma3-swa.gguf --out $R/sweep-gemma3 -ct f16,q8_0 -c 4096 -ngl all -np 1,4 --kv-unified both -fa on >> $R/sweep.txt 2>&1
  esac
  echo done > $R/DONE
}
case "${1:-}" in
  start) rm -rf $R/*; export STAGES; nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > $R/gpu.txt 2>&1
         setsid nohup bash "$0" job > $R/job.log 2>&1 < /dev/null & sleep 5; tail -3 $R/job.log ;;
  job) job ;;
  wait) for i in $(seq 1 "${2:-500}"); do [ -f $R/DONE ] && break; sleep 1; done
        tail -15 $R/job.log
        tar czf ${OUT:-/tmp}/fit.tgz -C $W fit
        [ -f $R/DONE ] && echo "JOB DONE" || echo "job still running" ;;
  *) echo "usage: $0 start|wait N"; exit 2 ;;
esac
