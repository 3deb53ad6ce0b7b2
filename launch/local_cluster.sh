#!/usr/bin/env bash
# Try multi-worker training on one machine: N worker processes on 127.0.0.1 (free ports), one
# MultiWorkerMirroredStrategy job. Waits for all workers and exits with their status: the
# chief's if it failed, else the first failed worker's, else 0 (143 when a SIGTERM stopped them).
#   launch/local_cluster.sh 2 --config=configs/mnist.py:quick
# Worker 0 is the chief: it writes the workdir (default runs/<config stem>); worker i's console
# output goes to $LOCAL_CLUSTER_LOG_DIR/worker<i>.log (a new temporary directory by default) for
# i > 0, and to this terminal for 0.
# GPUs: the visible GPUs (CUDA_VISIBLE_DEVICES, else every GPU nvidia-smi lists) are split
# between the workers, each getting an equal run of consecutive ones as its own
# CUDA_VISIBLE_DEVICES (8 GPUs, 2 workers: 0-3 and 4-7); GPUs left over are unused, with a
# warning; fewer GPUs than workers is an error. Without GPUs (or with CUDA_VISIBLE_DEVICES=''),
# every worker runs on the CPU. LOCAL_CLUSTER_DRY_RUN=1 prints each worker's devices and the
# network the workers would get, and stops.
# Signals: SIGTERM and SIGINT (`kill`, Ctrl-C) are passed on to every worker, once each (they
# stop after saving a checkpoint, docs/resume.md; a second SIGINT stops them at once), and the
# script waits for them. The workers run in process groups of their own (job control, `set -m`)
# so that a Ctrl-C in the terminal reaches them through the script only, not twice. (Started
# with SIGINT ignored, e.g. with `&` from another script, bash cannot trap it: use SIGTERM.)
# Network: TensorFlow's server in each worker listens on every interface, unauthenticated, even
# though the workers name 127.0.0.1. So the workers run in a private network namespace of their
# own, which has nothing but a loopback: their ports cannot be reached from outside it, not even
# from this machine's loopback (nor can the workers reach any other network: data sets must be
# cached, e.g. by one single-process run). As root this is `unshare --net`; as another user
# `unshare --user --map-root-user --net` (unprivileged user namespaces), then back to the user's
# own uid. Where neither is permitted, or with LOCAL_CLUSTER_NETWORK=host, the workers use the
# machine's network, with one warning line. One line says which network the workers got.
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

# The workers' network. Inside the namespace (this script runs again there, as the same
# process) _LOCAL_CLUSTER_NAMESPACE names how it was made.
network=${LOCAL_CLUSTER_NETWORK:-private}
if [[ "$network" != private && "$network" != host ]]; then
  echo "local_cluster: LOCAL_CLUSTER_NETWORK=$network: allowed: private (the default: the" \
    "workers' own network namespace where the system permits it) or host" >&2
  exit 2
fi
namespace=${_LOCAL_CLUSTER_NAMESPACE:-}
unset _LOCAL_CLUSTER_NAMESPACE  # Not passed on to the workers.
if [[ "$network" == private && -z "$namespace" ]]; then
  # A new network namespace has its loopback down: bring it up (TensorFlow's server and its
  # clients need 127.0.0.1) with the ioctls `ip link set lo up` makes (SIOCGIFFLAGS, then
  # SIOCSIFFLAGS with IFF_UP added), so that iproute2 need not be installed.
  lo_up='import fcntl, socket, struct
with socket.socket() as s:
  flags = struct.unpack_from("H", fcntl.ioctl(s, 0x8913, struct.pack("40s", b"lo")), 16)[0]
  fcntl.ioctl(s, 0x8914, struct.pack("16sH22x", b"lo", flags | 0x1))'
  attempts=()
  if ((EUID == 0)); then
    attempts+=('unshare --net')
  fi
  attempts+=('unshare --user --map-root-user --net')
  why='unshare not found'
  for attempt in "${attempts[@]}"; do
    command -v unshare >/dev/null 2>&1 || break
    read -r -a enter <<<"$attempt"
    # In the namespace: loopback up, then (under a user namespace) back to the user's own uid
    # and gid with --map-user (util-linux >= 2.38; before it the workers run as the namespace's
    # root, which is the user outside it: their files are the user's either way).
    enter+=(bash -c 'python -c "$1" && shift && exec "$@"' local_cluster "$lo_up")
    if [[ "$attempt" == *--user* ]] && unshare --help 2>&1 | grep -q -- '--map-user'; then
      enter+=(unshare --user "--map-user=$(id -u)" "--map-group=$(id -g)")
    fi
    # Tried first: once exec'd, a failure could not fall back.
    if why=$("${enter[@]}" true 2>&1); then
      namespace=$attempt
      break
    fi
    why=$(head -n 1 <<<"$why")
  done
  if [[ -n "$namespace" && "${LOCAL_CLUSTER_DRY_RUN:-0}" != 1 ]]; then
    # The same process (exec all the way), so signals and the exit status are the script's.
    export _LOCAL_CLUSTER_NAMESPACE=$namespace
    exec "${enter[@]}" bash launch/local_cluster.sh "$num_workers" "$@"
  fi
fi
if [[ -n "$namespace" ]]; then
  network_line="local_cluster: network: the workers' own namespace ($namespace), loopback only:"
  network_line+=" their ports cannot be reached from outside it (nor other networks from inside)"
elif [[ "$network" == host ]]; then
  network_line="local_cluster: warning: LOCAL_CLUSTER_NETWORK=host: the workers' ports listen"
  network_line+=" on all interfaces, unauthenticated, for the whole job (docs/security.md)"
else
  network_line="local_cluster: warning: no private network namespace for the workers ($why):"
  network_line+=" their ports listen on all interfaces, unauthenticated, for the whole job"
  network_line+=" (docs/security.md)"
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
echo "$network_line" >&2
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
# Passes a signal on to every worker still running (the trap runs when `wait` is interrupted).
forward() {
  local pid
  for pid in "${pids[@]}"; do
    kill -s "$1" "$pid" 2>/dev/null
  done
}
trap 'forward TERM' TERM
trap 'forward INT' INT
set -m  # Each worker in a process group of its own (see "Signals" above).
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
set +m
echo "local_cluster: $num_workers workers on $hosts; logs of workers 1.. in $log_dir" >&2
status=0
for index in "${!pids[@]}"; do
  # A trapped signal interrupts `wait` (it returns 128 + the signal) while the worker runs on:
  # wait again until the worker has ended, then once more for its own status (bash keeps it).
  while kill -0 "${pids[index]}" 2>/dev/null; do
    wait "${pids[index]}"
  done
  wait "${pids[index]}"
  code=$?
  if ((code != 0)); then
    if ((index == 0)); then
      echo "local_cluster: worker 0 (the chief) failed (exit status $code); its output is above" >&2
    else
      echo "local_cluster: worker $index failed (exit status $code); see" \
        "$log_dir/worker$index.log" >&2
    fi
    if ((status == 0)); then
      status=$code
    fi
  fi
done
exit $status
