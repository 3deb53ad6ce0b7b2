#!/usr/bin/env bash
# Try multi-worker training on one machine: N worker processes on 127.0.0.1 (free ports), one
# MultiWorkerMirroredStrategy job. Waits for all workers; exits non-zero if any failed.
#   launch/local_cluster.sh 2 --config=configs/mnist.py:quick
# Worker 0 is the chief: it writes the workdir (default runs/<config stem>); worker i's console
# output goes to <workdir>/../<stem>_worker<i>.log for i > 0 (and to this terminal for 0).
# Each worker gets an equal share of the CPU cores via TF's thread pools.
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
    WORKER_HOSTS=$hosts TASK_INDEX=$index launch/multi_worker.sh "$@" &
  else
    WORKER_HOSTS=$hosts TASK_INDEX=$index launch/multi_worker.sh "$@" \
      >"$log_dir/worker$index.log" 2>&1 &
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
