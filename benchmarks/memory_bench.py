"""Memory of a training run over time (BENCHMARKS.md, "Memory over time").

  python benchmarks/memory_bench.py --minutes=10 --warmup_minutes=3 --out=/tmp/rss.csv \
      [--nodefault_flags] [-- extra flags for wgan_dist.main]

Runs `python -m wgan_dist.main` (by default the quick recipe on the embedded 5,000-digit
sample, which the MNIST evaluation scores (a prepared data set has no evaluation), 2 logical CPU
replicas, and every periodic action often: logging, samples, evaluation and checkpoints every
100 steps, so minutes exercise what hours would) in a
temporary workdir, reads the process's resident set size (VmRSS, /proc/<pid>/status) every
`--every_secs`, and stops it with SIGTERM after `--minutes`. Writes `seconds,rss_mb,step` rows
to `--out` and prints one JSON line: the least-squares slope of RSS against time after the
warm-up, in MB per minute, with the first and last RSS and the 1-minute load average (the
machine is shared: a figure taken under a high load is marked by it).
"""

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np
from absl import app
from absl import flags

_MINUTES = flags.DEFINE_float('minutes', 10.0, 'How long the run is measured.')
_WARMUP = flags.DEFINE_float('warmup_minutes', 3.0, 'Minutes left out of the slope (tracing, '
                             'the first evaluation and save, allocator pools filling).')
_EVERY = flags.DEFINE_float('every_secs', 10.0, 'Seconds between RSS readings.')
_OUT = flags.DEFINE_string('out', None, 'CSV file for the readings (seconds, rss_mb, step).')
_DEFAULT_FLAGS = flags.DEFINE_bool(
    'default_flags', True, 'Start from DEFAULT_FLAGS (the quick recipe, actions every 100 steps); '
    '--nodefault_flags: only the flags after --, e.g. another --config.')
_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

DEFAULT_FLAGS = (
    '--config=configs/mnist.py:quick', '--config.data.source=embedded_mnist',
    '--config.distribution.cpu_replicas=2', '--config.train.num_steps=10000000',
    '--config.log_every_steps=100', '--config.sample_every_steps=100',
    '--config.eval_every_steps=100', '--config.num_eval_samples=256',
    '--config.checkpoint_every_steps=100')


def rss_mb(pid: int) -> float:
  """The resident set size of process `pid` in MB (VmRSS)."""
  with open(f'/proc/{pid}/status') as f:
    return int(re.search(r'VmRSS:\s+(\d+) kB', f.read())[1]) / 1024


def slope_mb_per_minute(seconds: np.ndarray, rss: np.ndarray, warmup_secs: float) -> float:
  """Least-squares slope of `rss` (MB) against time, in MB per minute, after `warmup_secs`."""
  kept = seconds >= warmup_secs
  if kept.sum() < 2:
    raise ValueError(f'fewer than 2 readings after the warm-up of {warmup_secs:g} s')
  return float(np.polyfit(seconds[kept] / 60.0, rss[kept], 1)[0])


def _per_steps(rows: list, warmup_secs: float) -> float:
  """Least-squares slope of RSS against the logged step after the warm-up, in KB per 1,000
  steps: what a leak per step or per action costs whatever the machine's speed."""
  kept = [(step, rss) for seconds, rss, step in rows if seconds >= warmup_secs]
  steps = np.array([step for step, _ in kept], dtype=np.float64)
  if len(kept) < 2 or np.ptp(steps) == 0:
    return float('nan')
  return round(float(np.polyfit(steps / 1000.0, [rss for _, rss in kept], 1)[0]) * 1024, 1)


def _last_step(log_path: str) -> int:
  with open(log_path, errors='replace') as f:
    steps = re.findall(r'\] step (\d+)/', f.read())
  return int(steps[-1]) if steps else 0


def main(argv: list[str]) -> None:
  extra = argv[1:]
  with tempfile.TemporaryDirectory() as workdir:
    log_path = os.path.join(workdir, 'run.log')
    with open(log_path, 'w') as log:
      process = subprocess.Popen(
          [sys.executable, '-m', 'wgan_dist.main',
           *(DEFAULT_FLAGS if _DEFAULT_FLAGS.value else ()), *extra,
           f'--workdir={os.path.join(workdir, "run")}'],
          cwd=_REPO, stdout=log, stderr=subprocess.STDOUT)
    rows = []
    start = time.monotonic()
    try:
      while time.monotonic() - start < _MINUTES.value * 60 and process.poll() is None:
        rows.append((time.monotonic() - start, rss_mb(process.pid), _last_step(log_path)))
        if _OUT.value:
          with open(_OUT.value, 'a') as out:
            out.write('%.1f,%.1f,%d\n' % rows[-1])
        time.sleep(_EVERY.value)
    finally:
      if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=300)
    if process.returncode not in (0, 128 + signal.SIGTERM):
      with open(log_path, errors='replace') as f:
        sys.exit(f'the run failed (exit status {process.returncode}):\n' + f.read()[-3000:])
  seconds, rss = np.array([r[0] for r in rows]), np.array([r[1] for r in rows])
  print(json.dumps({
      'slope_mb_per_minute': round(slope_mb_per_minute(seconds, rss, _WARMUP.value * 60), 2),
      'rss_first_mb': round(rss[0], 1), 'rss_after_warmup_mb': round(
          rss[seconds >= _WARMUP.value * 60][0], 1), 'rss_last_mb': round(rss[-1], 1),
      'minutes': round(seconds[-1] / 60, 1), 'steps': rows[-1][2],
      'slope_kb_per_1000_steps': _per_steps(rows, _WARMUP.value * 60),
      'load_average': round(os.getloadavg()[0], 1)}))


if __name__ == '__main__':
  app.run(main)
