"""Memory that a long run must not gain per log: TensorFlow keeps every eager tensor made from a
Python int or float in a cache it never empties, so writing each log's figures and step as
Python numbers grew the process by about 2.3 KB per log (12 scalars); the monitor writes them
through a traced function fed a list and a NumPy step (training/monitoring.py). The whole run's
slope is benchmarks/memory_bench.py's (BENCHMARKS.md, "Memory over time")."""

import subprocess
import sys

import pytest

from tests.conftest import REPO_ROOT

# Measured in a fresh process: 0.03 KB a log now, 2.3 KB before (the test fails on that code).
# Run alone so that what other tests left in a shared process does not count.
MAX_KB_PER_LOG = 0.8
_PROBE = '''
import gc, re, sys, tempfile
from wgan_dist.training import monitoring
tags = ['train/critic_loss', 'train/generator_loss', 'train/gradient_penalty',
        'train/wasserstein_estimate', 'train/critic_grad_norm', 'train/generator_grad_norm',
        'perf/steps_per_sec', 'perf/images_per_sec', 'train/learning_rate',
        'train/generator_learning_rate', 'train/augment_p', 'train/critic_overfit']
def rss_kb():
  gc.collect()
  with open('/proc/self/status') as f:
    return int(re.search(r'VmRSS:\\s+(\\d+) kB', f.read())[1])
monitor = monitoring.Monitor(tempfile.mkdtemp(), total_steps=10**9, images_per_step=64)
def log(step):  # A new step and new figures at every log, as in training.
  monitor.write_scalars(step, {tag: 0.1 * step + index for index, tag in enumerate(tags)})
for step in range(300):  # Tracing, the writer's buffers.
  log(step)
before = rss_kb()
for step in range(300, 300 + 6000):
  log(step)
print((rss_kb() - before) / 6000)
'''


@pytest.mark.slow
def test_logging_distinct_figures_and_steps_keeps_no_memory():
  result = subprocess.run([sys.executable, '-c', _PROBE], cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=600, check=False)
  assert result.returncode == 0, result.stderr[-3000:]
  kb_per_log = float(result.stdout.strip().splitlines()[-1])
  assert kb_per_log < MAX_KB_PER_LOG, f'{kb_per_log:.2f} KB per log'
