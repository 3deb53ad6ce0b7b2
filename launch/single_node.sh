#!/usr/bin/env bash
# Train on every GPU of this node (one MirroredStrategy replica per GPU), or on the CPU when
# there is none. Extra flags pass through, e.g.:
#   launch/single_node.sh --config=configs/mnist.py --config.train.n_critic=3
#   CUDA_VISIBLE_DEVICES=0 launch/single_node.sh --config=configs/mnist.py   # one GPU only
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ " $* " != *" --config="* ]]; then
  set -- --config=configs/mnist.py "$@"
fi
exec python -m wgan_dist.main "$@"
