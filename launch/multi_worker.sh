#!/usr/bin/env bash
# One worker of a multi-worker job: run this on every host, with the same host list and each
# host's own index (0 = the chief, which writes the workdir).
#   WORKER_HOSTS=node1:12345,node2:12345 TASK_INDEX=0 launch/multi_worker.sh --config=configs/mnist.py
#   WORKER_HOSTS=node1:12345,node2:12345 TASK_INDEX=1 launch/multi_worker.sh --config=configs/mnist.py
# Builds TF_CONFIG from them; each worker uses all its local GPUs (or its CPU). --workdir must
# name a directory on storage every worker sees (checkpoints are restored from it).
# Prints once which port this worker listens on: TensorFlow's server binds it on every
# interface, with no authentication, for the whole job (docs/security.md says what to do).
set -euo pipefail
cd "$(dirname "$0")/.."
: "${WORKER_HOSTS:?set WORKER_HOSTS to host:port,host:port,... (the same list on every worker)}"
: "${TASK_INDEX:?set TASK_INDEX to the position of this worker in WORKER_HOSTS (0 = chief)}"
TF_CONFIG=$(python - "$WORKER_HOSTS" "$TASK_INDEX" <<'PY'
import json, sys
hosts = [host for host in sys.argv[1].split(',') if host]
index = int(sys.argv[2])
if not 0 <= index < len(hosts):
  sys.exit(f'TASK_INDEX={index} is not a position in WORKER_HOSTS ({len(hosts)} hosts)')
# Said once, before TensorFlow starts: its server binds 0.0.0.0:<port>, not the host named.
port = hosts[index].rpartition(':')[2]
print(f'multi_worker: worker {index} of {len(hosts)} listens on port {port} on all interfaces for '
      f'the whole job (workers: {",".join(hosts)}): TensorFlow\'s server, unauthenticated: whoever '
      'reaches it can run code as this user; keep these ports on a trusted network '
      '(docs/security.md)', file=sys.stderr)
print(json.dumps({'cluster': {'worker': hosts}, 'task': {'type': 'worker', 'index': index}}))
PY
)
export TF_CONFIG
if [[ " $* " != *" --config="* ]]; then
  set -- --config=configs/mnist.py "$@"
fi
if [[ " $* " != *" --config.distribution.strategy="* ]]; then
  set -- "$@" --config.distribution.strategy=multi_worker  # Overrides must follow --config.
fi
exec python -m wgan_dist.main "$@"
