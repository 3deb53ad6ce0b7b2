#!/usr/bin/env bash
# Train on every GPU of this node (one MirroredStrategy replica per GPU), or on the CPU when
# there is none. The global batch is split evenly over the GPUs. Extra flags pass through:
#   launch/multi_gpu.sh --config=configs/mnist.py --config.train.n_critic=3
#   CUDA_VISIBLE_DEVICES=0,1 launch/multi_gpu.sh --config=configs/mnist.py   # two of the GPUs
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ " $* " != *" --config="* ]]; then
  set -- --config=configs/mnist.py "$@"
fi
if [[ " $* " != *" --config.distribution.strategy="* ]]; then
  set -- "$@" --config.distribution.strategy=mirrored  # Overrides must follow --config.
fi
exec python -m wgan_dist.main "$@"
