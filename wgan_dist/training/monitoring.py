"""What a run reports: TensorBoard scalars and images, sample PNGs, the resolved config (as
config.json, as text and as the HParams dashboard's hyperparameters), and a console line per log
interval.

Throughput (perf/steps_per_sec, perf/images_per_sec) and the ETA count only the time spent in
training calls: logging, sampling, evaluating and saving in between are left out, so the curve
does not dip at every evaluation or save.
"""

import os
from typing import Optional

import ml_collections
import numpy as np
import tensorflow as tf
from absl import logging
from tensorboard.plugins.hparams import api as hparams_api

from wgan_dist.data import images


class Monitor:
  """Writes TensorBoard events under `workdir/train` and sample grids under `workdir/samples`.

  Scalars: train/<metric> (critic_loss, generator_loss, gradient_penalty, wasserstein_estimate,
  critic_grad_norm, generator_grad_norm; with AC-GAN conditioning also critic_classifier_loss
  and generator_classifier_loss), perf/steps_per_sec, perf/images_per_sec, and what the
  caller adds (learning rates, loss scales, eval/*); image `samples`; text `config`.
  """

  def __init__(self, workdir: str, *, total_steps: int, images_per_step: int,
               is_chief: bool = True):
    self._workdir = workdir
    self._total_steps = total_steps
    self._images_per_step = images_per_step
    # Under multi-worker only the chief writes; the others keep the console line (their own
    # throughput) and write nothing into the shared workdir.
    self._is_chief = is_chief
    self._writer = (tf.summary.create_file_writer(os.path.join(workdir, 'train')) if is_chief
                    else tf.summary.create_noop_writer())
    self._sums: dict[str, float] = {}
    self._steps_in_window = 0
    # Steps and seconds of the timed training calls in the window (throughput and ETA).
    self._timed_steps = 0
    self._timed_seconds = 0.0

  @property
  def writer(self) -> tf.summary.SummaryWriter:
    """The run's summary writer under workdir/train (a no-op writer on workers other than the
    chief), for periodic actions that write summaries of their own."""
    return self._writer

  def write_config(self, config: ml_collections.ConfigDict, step: int) -> None:
    """Saves the resolved config as config.json and as a TensorBoard text summary."""
    if not self._is_chief:
      return
    text = config.to_json_best_effort(indent=2, sort_keys=True)
    tf.io.gfile.makedirs(self._workdir)
    with tf.io.gfile.GFile(os.path.join(self._workdir, 'config.json'), 'w') as f:
      f.write(text)
    with self._writer.as_default():
      tf.summary.text('config', '```\n' + text + '\n```', step=step)

  def write_hparams(self, config: ml_collections.ConfigDict, metric_tags: list[str]) -> None:
    """The HParams dashboard: the flattened config as hyperparameters, `metric_tags` (eval/*)
    as its metrics, so runs under one --logdir compare side by side.

    Every run writes the experiment's description (these hparams and metrics) into its own
    event file, so any single run is complete; TensorBoard takes the columns from one of them.
    """
    if not self._is_chief:
      return
    values = flat_config(config)
    with self._writer.as_default():
      hparams_api.hparams_config(
          hparams=[hparams_api.HParam(name) for name in sorted(values)],
          metrics=[hparams_api.Metric(tag, display_name=tag) for tag in metric_tags])
      hparams_api.hparams(values, trial_id=self._workdir)
    self._writer.flush()

  def accumulate(self, metrics: dict[str, float], num_steps: int,
                 seconds: Optional[float]) -> None:
    """Adds the means of `num_steps` steps to the running window; `seconds` is how long their
    training call took (None: leave it out of the throughput, e.g. the call that traced)."""
    for name, value in metrics.items():
      self._sums[name] = self._sums.get(name, 0.0) + float(value) * num_steps
    self._steps_in_window += num_steps
    if seconds is not None:
      self._timed_steps += num_steps
      self._timed_seconds += seconds

  def log(self, step: int, extra_scalars: Optional[dict[str, float]] = None) -> dict[str, float]:
    """Writes the window's means, throughput and `extra_scalars` (full tags) at `step`, prints a
    line, and resets the window."""
    extra_scalars = extra_scalars or {}
    means = {name: total / self._steps_in_window for name, total in self._sums.items()}
    # A window made only of the first (tracing) call has no meaningful throughput.
    measured = self._timed_seconds > 0 and self._timed_steps > 0
    steps_per_sec = self._timed_steps / self._timed_seconds if measured else float('nan')
    images_per_sec = steps_per_sec * self._images_per_step
    with self._writer.as_default():
      for name, value in means.items():
        tf.summary.scalar(f'train/{name}', value, step=step)
      if measured:
        tf.summary.scalar('perf/steps_per_sec', steps_per_sec, step=step)
        tf.summary.scalar('perf/images_per_sec', images_per_sec, step=step)
      for tag, value in extra_scalars.items():
        tf.summary.scalar(tag, value, step=step)
    self._writer.flush()
    eta = (self._total_steps - step) / steps_per_sec if measured else float('nan')
    # AC-GAN runs: the auxiliary classifier's cross-entropy on real images and on the fakes.
    classifier = ''.join(f'  {label} {means[name]:.4f}' for label, name in (
        ('cls(real)', 'critic_classifier_loss'), ('cls(fake)', 'generator_classifier_loss'))
                         if name in means)
    logging.info(
        'step %d/%d | critic %.4f  gp %.4f  W %.4f  gen %.4f%s | %.2f steps/s  %.0f images/s | '
        'ETA %s%s', step, self._total_steps, means['critic_loss'], means['gradient_penalty'],
        means['wasserstein_estimate'], means['generator_loss'], classifier, steps_per_sec,
        images_per_sec, _format_seconds(eta),
        ''.join(f' | {tag.split("/")[-1]} {value:g}' for tag, value in extra_scalars.items()))
    self._sums, self._steps_in_window = {}, 0
    self._timed_steps, self._timed_seconds = 0, 0.0
    return means

  def write_scalars(self, step: int, scalars: dict[str, float]) -> None:
    """Writes `scalars` (full tags, e.g. eval/fid) at `step`."""
    with self._writer.as_default():
      for tag, value in scalars.items():
        tf.summary.scalar(tag, value, step=step)
    self._writer.flush()

  def write_samples(self, step: int, samples: np.ndarray, rows: int = 4) -> Optional[str]:
    """Writes the grid (`rows` rows: 4x4 unconditional, one row per class for a conditional
    model) as `samples/step_NNNNNN.png` and TensorBoard image `samples`."""
    if not self._is_chief:
      return None
    grid = images.to_grid(samples, rows=rows)
    path = os.path.join(self._workdir, 'samples', f'step_{step:06d}.png')
    tf.io.gfile.makedirs(os.path.dirname(path))
    images.write_png(path, grid)
    with self._writer.as_default():
      tf.summary.image('samples', grid[None], step=step)
    self._writer.flush()
    return path

  def close(self) -> None:
    self._writer.close()


def flat_config(config: ml_collections.ConfigDict) -> dict[str, object]:
  """{'train.learning_rate': 0.0001, ...}: every leaf as a bool, int, float or str (what the
  HParams plugin accepts; tuples such as profile_steps become their text)."""
  flat = {}

  def visit(prefix: str, node) -> None:
    for key, value in node.items():
      name = f'{prefix}{key}'
      if isinstance(value, (ml_collections.ConfigDict, dict)):
        visit(name + '.', value)
      else:
        flat[name] = value if isinstance(value, (bool, int, float, str)) else str(value)

  visit('', config)
  return flat


def _format_seconds(seconds: float) -> str:
  if not np.isfinite(seconds):
    return '?'
  minutes, secs = divmod(int(seconds), 60)
  hours, minutes = divmod(minutes, 60)
  return f'{hours}:{minutes:02d}:{secs:02d}'

