# Sourced by the device job scripts (benchmarks/*/run.sh) after they define R (their results folder)
# and job(): `run.sh start` runs job() in the background (the device machine's call limit is 10
# minutes, and a background job dies with the machine: call `wait` again at once), `run.sh wait N`
# waits up to N s and copies what exists to $OUT. Call the device with carry [".gpu"]: the packed
# llama.cpp source and wheels are git-ignored.
case "${1:-}" in
  start) nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > $R/gpu.txt 2>&1
         setsid nohup bash "$0" job > $R/job.log 2>&1 < /dev/null & sleep 5; tail -3 $R/job.log ;;
  job) job ;;
  wait) for i in $(seq 1 "${2:-500}"); do [ -f $R/DONE ] && break; sleep 1; done
        tail -25 $R/job.log
        cp $R/*.md $R/*.txt $R/job.log ${OUT:-/tmp} 2>/dev/null
        [ -f $R/DONE ] && echo "JOB DONE" || echo "job still running" ;;
  *) echo "usage: $0 start|wait N"; exit 2 ;;
esac
