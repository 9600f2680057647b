#!/usr/bin/env bash
# scripts/bench_sweep.py on the device machine's CPU (16 dedicated cores, GPU unused): ggufprof vs
# llama-bench and llama-batched-bench on a machine nobody else shares, unlike the 2-vCPU VM.
# llama.cpp is built from the vendored source (.gpu/llama-src.tgz, carried) with CUDA, as the
# other runs here, and the GPU is hidden (CUDA_VISIBLE_DEVICES=""): a CPU-only build loaded through
# llama-cpp-python's bindings crashed in llama_model_load_from_file there (not investigated); SmolLM2 is
# rebuilt from its header (.gpu/models: zero weights, same shapes, types and speed).
#   bash benchmarks/h100/cpu-speed/run.sh start ; bash benchmarks/h100/cpu-speed/run.sh wait N
set -u
W=/tmp/wc; R=$W/out; mkdir -p $R
job() {
  set -x
  python3 -m pip install -q --no-index --no-deps --target /tmp/site .gpu/*.whl
  mkdir -p $W && tar xzf .gpu/llama-src.tgz -C $W
  echo 'add_subdirectory(batched-bench)' >> $W/llama.cpp/tools/CMakeLists.txt
  cmake -S $W/llama.cpp -B $W/build -G Ninja -DGGML_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 -DLLAMA_BUILD_TESTS=OFF \
    -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_APP=OFF -DLLAMA_CURL=OFF \
    -DBUILD_SHARED_LIBS=ON > $W/cfg.log 2>&1 || { tail $W/cfg.log; exit 1; }
  cmake --build $W/build -j"$(nproc)" --target llama ggml llama-bench llama-batched-bench > $W/build.log 2>&1 \
    || { tail -20 $W/build.log; exit 1; }
  mkdir -p $W/cache
  cp .gpu/models/smollm2.header $W/cache/SmolLM2-135M-Instruct.Q4_1.gguf
  truncate -s "$(cat .gpu/models/smollm2.size)" $W/cache/SmolLM2-135M-Instruct.Q4_1.gguf
  export LLAMA_CPP_LIB_PATH=$W/build/bin PYTHONPATH=$W:$PWD:/tmp/site PYTHONUNBUFFERED=1 GGUFPROF_CACHE=$W/cache
  export CUDA_VISIBLE_DEVICES=""  # the CPU alone, GPU hidden
  lscpu | grep -E "Model name|^CPU\(s\)|Thread|Core" > $R/cpu.txt
  python3 scripts/bench_sweep.py --threads 8 --repetitions 3 --rounds ${ROUNDS:-5} --no-repack \
    --llama-bench $W/build/bin/llama-bench --batched-bench $W/build/bin/llama-batched-bench --out $R/sweeps > $R/bench.txt 2>&1
  echo done > $R/DONE
}
case "${1:-}" in
  start) rm -rf $R/*; setsid nohup bash "$0" job > $R/job.log 2>&1 < /dev/null & sleep 3; tail -2 $R/job.log ;;
  job) job ;;
  wait) for i in $(seq 1 "${2:-500}"); do [ -f $R/DONE ] && break; sleep 1; done
        tail -30 $R/bench.txt 2>/dev/null || tail -20 $R/job.log
        cp $R/bench.txt $R/cpu.txt $R/job.log ${OUT:-/tmp} 2>/dev/null
        [ -f $R/DONE ] && echo "JOB DONE" || echo "job still running" ;;
  *) echo "usage: $0 start|wait N"; exit 2 ;;
esac
