#!/usr/bin/env bash
# Smoke test of a GPU node (about 5 minutes or less; one line per check, exit 1 if any failed):
# the tiny config trains on 1 GPU and on 2 logical GPUs under float32, mixed_float16 and
# mixed_bfloat16 with jit_compile off and on; 1 and 2 GPUs agree; a resumed run is bit-identical
# with TF_DETERMINISTIC_OPS=1; NCCL all-reduce works when there are >= 2 physical GPUs.
#   launch/gpu_smoke.sh                      # the first GPUs of CUDA_VISIBLE_DEVICES (or 0, 1)
#   launch/gpu_smoke.sh --rehearse_on_cpu    # no GPU: the same checks on CPU devices
# Without a GPU it says "no GPU" and exits 0 (CI runs it so). Details: wgan_dist/gpu_smoke.py.
set -euo pipefail
cd "$(dirname "$0")/.."
exec python -m wgan_dist.gpu_smoke "$@"
