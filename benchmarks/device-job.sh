# Sourced by the device job scripts (benchmarks/*/run.sh) after they define R (their results folder)
# and job(): `run.sh start` runs job() in the background (the device machine's call limit is 10
# minutes, and a background job dies with the machine: call `wait` again at once), `run.sh wait N`
# waits up to N s and copies what exists to $OUT. Call the device with carry [".gpu"]: the packed
# llama.cpp source and wheels are git-ignored.
# setup: the wheels the device lacks, llama.cpp's CUDA build (.gpu/build-cuda.sh, waited for) and the
# environment every script then runs in (ggufprof from this tree on that build's libraries). W: /tmp/w.
setup() {
  python3 -m pip install -q --no-index --no-deps --target /tmp/site .gpu/*.whl
  export LLAMA_CPP_LIB_PATH=$W/build/bin PYTHONPATH=$W:$PWD:/tmp/site PYTHONUNBUFFERED=1
  until bash .gpu/build-cuda.sh | tee -a $R/build.txt | grep -q "build rc=0"; do
    grep -q "build rc=[1-9]" $R/build.txt && exit 1; sleep 5; done
}
case "${1:-}" in
  start) nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > $R/gpu.txt 2>&1
         setsid nohup bash "$0" job > $R/job.log 2>&1 < /dev/null & sleep 5; tail -3 $R/job.log ;;
  job) job ;;
  wait) for i in $(seq 1 "${2:-500}"); do [ -f $R/DONE ] && break; sleep 1; done
        tail -25 $R/job.log
        cp $R/*.md $R/*.txt $R/*.json $R/job.log ${OUT:-/tmp} 2>/dev/null
        [ -f $R/DONE ] && echo "JOB DONE" || echo "job still running" ;;
  *) echo "usage: $0 start|wait N"; exit 2 ;;
esac
