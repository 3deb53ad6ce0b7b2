"""Resident memory per call of the paths a training run repeats (BENCHMARKS.md, "Memory over
time"), each alone in this process, so that what grows can be told apart without a long run:

  python benchmarks/memory_probe.py summary checkpoint finite

- summary: 10 `tf.summary.scalar` writes and a flush (what Monitor.write_scalars does per log);
- checkpoint: `CheckpointManager.save` of a small model (the chief), and a new manager in a
  scratch directory per save (the other workers, training/checkpointing.py);
- finite: the per-variable finiteness check before every save (training/state.py);
- monitor: `Monitor.write_scalars` of a log line's 12 scalars and `Monitor.write_samples` of a
  4x4 grid (training/monitoring.py), what every log and sample interval writes.

Each runs 20 warm-up calls, then N calls between two readings of VmRSS (after gc.collect), and
prints the growth per call and the CPU seconds taken.
"""

import gc
import os
import re
import shutil
import sys
import tempfile
import time
from typing import Callable

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')
import numpy as np  # pylint: disable=wrong-import-position
import tensorflow as tf  # pylint: disable=wrong-import-position


def rss_mb() -> float:
  with open('/proc/self/status') as f:
    return int(re.search(r'VmRSS:\s+(\d+) kB', f.read())[1]) / 1024


def probe(name: str, call: Callable[[int], object], calls: int, warmup: int = 20) -> None:
  for index in range(warmup):
    call(index)
  gc.collect()
  before, cpu = rss_mb(), time.process_time()
  for index in range(calls):
    call(index)
  gc.collect()
  after = rss_mb()
  print(f'{name}: {calls} calls, {(after - before) * 1024 / calls:.2f} KB/call (RSS '
        f'{before:.0f} -> {after:.0f} MB), {time.process_time() - cpu:.1f} CPU s', flush=True)


def _model() -> tf.keras.Model:
  return tf.keras.Sequential([tf.keras.Input((32,)), tf.keras.layers.Dense(64),
                              tf.keras.layers.Dense(64)])


def main(which: list[str]) -> None:
  directory = tempfile.mkdtemp()
  try:
    if 'summary' in which:
      writer = tf.summary.create_file_writer(os.path.join(directory, 'events'))

      def summaries(step: int) -> None:
        with writer.as_default():
          for index in range(10):
            tf.summary.scalar(f'train/metric{index}', float(step), step=step)
        writer.flush()
      probe('eager tf.summary.scalar (10 scalars + flush)', summaries, 20000)
    if 'checkpoint' in which:
      checkpoint = tf.train.Checkpoint(model=_model(), step=tf.Variable(0))
      manager = tf.train.CheckpointManager(checkpoint, os.path.join(directory, 'ckpt'), 3)
      probe('CheckpointManager.save (chief)', lambda i: manager.save(checkpoint_number=i), 300)

      def scratch_save(step: int) -> None:
        scratch = tempfile.mkdtemp()
        tf.train.CheckpointManager(checkpoint, scratch, 1).save(checkpoint_number=step)
        shutil.rmtree(scratch)
      probe('a new CheckpointManager per save (other workers)', scratch_save, 300)
    if 'finite' in which:
      weights = _model().weights
      probe('finiteness check of 4 variables',
            lambda i: [bool(tf.reduce_all(tf.math.is_finite(v))) for v in weights], 2000)
    if 'monitor' in which:
      from wgan_dist.training import monitoring  # pylint: disable=import-outside-toplevel
      monitor = monitoring.Monitor(os.path.join(directory, 'run'), total_steps=10**9,
                                   images_per_step=64)
      tags = ['train/critic_loss', 'train/generator_loss', 'train/gradient_penalty',
              'train/wasserstein_estimate', 'train/critic_grad_norm',
              'train/generator_grad_norm', 'perf/steps_per_sec', 'perf/images_per_sec',
              'train/learning_rate', 'train/generator_learning_rate', 'train/augment_p',
              'train/critic_overfit']
      probe('Monitor.write_scalars (12 scalars)',
            lambda i: monitor.write_scalars(i, {tag: 0.1 * i for tag in tags}), 20000)
      grid = np.random.default_rng(0).uniform(-1, 1, (16, 28, 28, 1)).astype(np.float32)
      probe('Monitor.write_samples (a 4x4 grid: PNG + image summary)',
            lambda i: monitor.write_samples(i, grid), 2000)
  finally:
    shutil.rmtree(directory)


if __name__ == '__main__':
  main(sys.argv[1:])
