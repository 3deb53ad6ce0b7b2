#!/usr/bin/env bash
# Try multi-worker training on one machine: N worker processes on 127.0.0.1 (free ports), one
# MultiWorkerMirroredStrategy job. Waits for all workers; exits non-zero if any failed.
#   launch/local_cluster.sh 2 --config=configs/mnist.py:quick
# Worker 0 is the chief: it writes the workdir (default runs/<config stem>); worker i's console
# output goes to $LOCAL_CLUSTER_LOG_DIR/worker<i>.log (a new temporary directory by default) for
# i > 0, and to this terminal for 0.
# GPUs: the visible GPUs (CUDA_VISIBLE_DEVICES, else every GPU nvidia-smi lists) are split
# between the workers, each getting an equal run of consecutive ones as its own
# CUDA_VISIBLE_DEVICES (8 GPUs, 2 workers: 0-3 and 4-7); GPUs left over are unused, with a
# warning; fewer GPUs than workers is an error. Without GPUs (or with CUDA_VISIBLE_DEVICES=''),
# every worker runs on the CPU. LOCAL_CLUSTER_DRY_RUN=1 prints each worker's devices and stops.
set -uo pipefail
cd "$(dirname "$0")/.."
if [[ $# -lt 1 || ! "$1" =~ ^[1-9][0-9]*$ ]]; then
  echo "usage: launch/local_cluster.sh N [flags for wgan_dist.main]  (N: number of workers >= 1)" >&2
  exit 2
fi
num_workers=$1
shift
if [[ " $* " != *" --config="* ]]; then
  set -- --config=configs/mnist.py "$@"
fi

# The GPUs to split: CUDA_VISIBLE_DEVICES when set (even empty), else nvidia-smi's list.
if [[ -n "${CUDA_VISIBLE_DEVICES+set}" ]]; then
  gpu_list=$CUDA_VISIBLE_DEVICES
elif command -v nvidia-smi >/dev/null 2>&1; then
  gpu_list=$(nvidia-smi --query-gpu=index --format=csv,noheader 2>/dev/null |
    tr -d ' ' | paste -sd, -)
else
  gpu_list=''
fi
IFS=, read -r -a gpus <<<"$gpu_list"
num_gpus=${#gpus[@]}
if ((num_gpus > 0 && num_gpus < num_workers)); then
  echo "local_cluster: $num_workers workers but $num_gpus GPU(s) ($gpu_list): start at most" \
    "$num_gpus workers, or set CUDA_VISIBLE_DEVICES= to run them all on the CPU" >&2
  exit 2
fi
per_worker=$((num_gpus / num_workers))
if ((num_gpus % num_workers)); then
  echo "local_cluster: warning: $num_gpus GPUs do not split evenly over $num_workers workers;" \
    "GPU(s) ${gpus[*]:per_worker*num_workers} stay unused" >&2
fi
worker_gpus=()
for ((index = 0; index < num_workers; index++)); do
  share=("${gpus[@]:index*per_worker:per_worker}")
  worker_gpus+=("$(IFS=,; echo "${share[*]}")")
  echo "local_cluster: worker $index: CUDA_VISIBLE_DEVICES=${worker_gpus[index]}" >&2
done
if [[ "${LOCAL_CLUSTER_DRY_RUN:-0}" == 1 ]]; then
  exit 0
fi

# N free loopback ports, comma-separated host:port.
hosts=$(python - "$num_workers" <<'PY'
import socket, sys
sockets = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in sockets:
  s.bind(('127.0.0.1', 0))
print(','.join(f'127.0.0.1:{s.getsockname()[1]}' for s in sockets))
for s in sockets:
  s.close()
PY
)
log_dir=${LOCAL_CLUSTER_LOG_DIR:-$(mktemp -d -t wgan_dist_cluster.XXXXXX)}
mkdir -p "$log_dir"
pids=()
for ((index = 0; index < num_workers; index++)); do
  if ((index == 0)); then
    CUDA_VISIBLE_DEVICES=${worker_gpus[index]} WORKER_HOSTS=$hosts TASK_INDEX=$index \
      launch/multi_worker.sh "$@" &
  else
    CUDA_VISIBLE_DEVICES=${worker_gpus[index]} WORKER_HOSTS=$hosts TASK_INDEX=$index \
      launch/multi_worker.sh "$@" >"$log_dir/worker$index.log" 2>&1 &
  fi
  pids+=($!)
done
echo "local_cluster: $num_workers workers on $hosts; logs of workers 1.. in $log_dir" >&2
status=0
for index in "${!pids[@]}"; do
  if ! wait "${pids[$index]}"; then
    if ((index == 0)); then
      echo "local_cluster: worker 0 (the chief) failed; its output is above" >&2
    else
      echo "local_cluster: worker $index failed; see $log_dir/worker$index.log" >&2
    fi
    status=1
  fi
done
exit $status
