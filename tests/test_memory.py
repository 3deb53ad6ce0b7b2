"""Memory that a long run must not gain per log: TensorFlow keeps every eager tensor made from a
Python int or float in a cache it never empties, so writing each log's figures and step as
Python numbers grew the process by about 2.3 KB per log (12 scalars); the monitor writes them
through a traced function fed a list and a NumPy step (training/monitoring.py). The whole run's
slope is benchmarks/memory_bench.py's (BENCHMARKS.md, "Memory over time")."""

import gc
import re

from wgan_dist.training import monitoring

TAGS = ('train/critic_loss', 'train/generator_loss', 'train/gradient_penalty',
        'train/wasserstein_estimate', 'train/critic_grad_norm', 'train/generator_grad_norm',
        'perf/steps_per_sec', 'perf/images_per_sec', 'train/learning_rate',
        'train/generator_learning_rate', 'train/augment_p', 'train/critic_overfit')
CALLS = 4000
# Measured: 0.03 KB a call now, 2.3 KB before (9 MB over these calls); the bound leaves room for
# the allocator's own growth and catches a return of the per-value cache entries.
MAX_GROWTH_MB = 2.5


def _rss_mb() -> float:
  gc.collect()
  with open('/proc/self/status') as f:
    return int(re.search(r'VmRSS:\s+(\d+) kB', f.read())[1]) / 1024


def test_logging_distinct_figures_and_steps_keeps_no_memory(tmp_path):
  monitor = monitoring.Monitor(str(tmp_path), total_steps=10**9, images_per_step=64)
  for step in range(200):  # Tracing, the writer's buffers.
    monitor.write_scalars(step, {tag: 0.1 * step + index for index, tag in enumerate(TAGS)})
  before = _rss_mb()
  for step in range(200, 200 + CALLS):
    monitor.write_scalars(step, {tag: 0.1 * step + index for index, tag in enumerate(TAGS)})
  growth = _rss_mb() - before
  monitor.close()
  assert growth < MAX_GROWTH_MB, f'{growth:.1f} MB over {CALLS} logs'
