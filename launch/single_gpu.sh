#!/usr/bin/env bash
# Train on one GPU (the first visible one, or GPU=N), one replica, no collectives: the setup for
# debugging and for runs that fit one device. Extra flags pass through:
#   launch/single_gpu.sh --config=configs/mnist.py
#   GPU=2 launch/single_gpu.sh --config=configs/mnist.py:quick
set -euo pipefail
cd "$(dirname "$0")/.."
export CUDA_VISIBLE_DEVICES=${GPU:-${CUDA_VISIBLE_DEVICES:-0}}
CUDA_VISIBLE_DEVICES=${CUDA_VISIBLE_DEVICES%%,*}  # Only the first of a list.
if [[ " $* " != *" --config="* ]]; then
  set -- --config=configs/mnist.py "$@"
fi
if [[ " $* " != *" --config.distribution.strategy="* ]]; then
  set -- "$@" --config.distribution.strategy=one_device  # Overrides must follow --config.
fi
exec python -m wgan_dist.main "$@"
