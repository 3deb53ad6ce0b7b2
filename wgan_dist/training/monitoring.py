"""What a run reports: TensorBoard scalars and images, sample PNGs, the resolved config (as
config.json, as text and as the HParams dashboard's hyperparameters), the Custom Scalars layout,
and a console line per log interval. Which run directory and tag each figure is written to, and
why, is dashboards.py's (docs/tensorboard.md shows the result).

Throughput (perf/steps_per_sec, perf/images_per_sec) and the ETA count only the time spent in
training calls: logging, sampling, evaluating and saving in between are left out, so the curve
does not dip at every evaluation or save.

Memory over a long run: TensorFlow keeps every eager tensor it makes from a Python int or float
in a process-wide cache that is never emptied (about 0.7 KB per distinct value), so an eager
`tf.summary.scalar(tag, 0.123, step=4567)` keeps its value and its step for good: 20,000 log
calls of 10 scalars grew the process by 179 MB. Scalars and sample images are therefore written
by traced functions (one per run directory and set of tags) fed a float32 list and a NumPy step,
which that cache does not see (BENCHMARKS.md, "Memory over time").
"""

import os
from typing import Optional

import ml_collections
import numpy as np
import tensorflow as tf
from absl import logging
from tensorboard.plugins.hparams import api as hparams_api

from tensorboard.plugins.custom_scalar import summary as custom_scalar_summary
from tensorboard.plugins.hparams import summary as hparams_summary

from wgan_dist.data import images
from wgan_dist.training import dashboards


# A traced summary write: (values, step) -> None.
_TracedWrite = tf.types.experimental.GenericFunction


class Monitor:
  """Writes TensorBoard events under `workdir/train` (the EMA generator's evaluation under
  `workdir/train/ema`) and sample grids under `workdir/samples`.

  Scalars: train/<metric> (critic_loss, generator_loss, gradient_penalty, wasserstein_estimate,
  critic_grad_norm, generator_grad_norm; with AC-GAN conditioning also critic_classifier_loss
  and generator_classifier_loss), perf/steps_per_sec, perf/images_per_sec, and what the
  caller adds (learning rates, loss scales, eval/* and eval_ema/*), each where
  `dashboards.placements` puts it (core/* copies of the headline figures, the EMA generator's in
  its own run, class shares as eval_class_share/<k>); image `samples`; text `config`.
  """

  def __init__(self, workdir: str, *, total_steps: int, images_per_step: int,
               is_chief: bool = True):
    self._workdir = workdir
    self._total_steps = total_steps
    self._images_per_step = images_per_step
    # Under multi-worker only the chief writes; the others keep the console line (their own
    # throughput) and write nothing into the shared workdir.
    self._is_chief = is_chief
    # {run directory under workdir: writer}; the EMA run's is made when it first has a figure,
    # so a run without an EMA generator has no empty `train/ema` run.
    self._writers: dict[str, tf.summary.SummaryWriter] = {}
    self._writer = self._writer_for(dashboards.TRAIN_RUN)
    # {(run, tags): traced writer of those scalars}; the tag sets are the code's (the log line's
    # metrics, an evaluation's figures), so a run makes a handful.
    self._scalar_writes: dict[tuple[str, tuple[str, ...]], _TracedWrite] = {}
    self._image_write: Optional[_TracedWrite] = None
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

  def _writer_for(self, run: str) -> tf.summary.SummaryWriter:
    if run not in self._writers:
      self._writers[run] = (
          tf.summary.create_file_writer(os.path.join(self._workdir, run)) if self._is_chief
          else tf.summary.create_noop_writer())
    return self._writers[run]

  def write_hparams(self, config: ml_collections.ConfigDict, metric_tags: list[str]) -> None:
    """The dashboards that compare runs, written once at the start: HParams (the flattened
    config as hyperparameters; the headline evaluation figures and the Wasserstein estimate as
    metrics, `dashboards.hparams_metrics`) and the Custom Scalars layout (`dashboards.layout`).
    `metric_tags` are the eval/* (and eval_ema/*) figures this run logs.

    The session is the `train` run with no group name, so its row is named as TensorBoard names
    that run (relative to --logdir), not by the training-time path. Every run writes the
    experiment's description into its own event file with the same metric columns, so the table
    is the same whichever run TensorBoard takes them from.
    """
    if not self._is_chief:
      return
    values = flat_config(config)
    with self._writer.as_default():
      hparams_api.hparams_config(
          hparams=[hparams_api.HParam(name) for name in sorted(values)],
          metrics=dashboards.hparams_metrics(metric_tags))
      # hparams_api.hparams would set a group name (a trial id, or a hash of the values), which
      # the table shows instead of the run's name.
      _write_raw(hparams_summary.session_start_pb(values, group_name=''))
      _write_raw(custom_scalar_summary.pb(dashboards.layout(metric_tags)))
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
    scalars = {f'train/{name}': value for name, value in means.items()}
    if measured:
      scalars.update({'perf/steps_per_sec': steps_per_sec, 'perf/images_per_sec': images_per_sec})
    self.write_scalars(step, {**scalars, **extra_scalars})
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
    """Writes `scalars` ({name: value}, e.g. eval/fid, eval_ema/fid) at `step`, each where
    `dashboards.placements(name)` puts it."""
    by_run: dict[str, list[tuple[str, float]]] = {}
    for name, value in scalars.items():
      for run, tag in dashboards.placements(name):
        by_run.setdefault(run, []).append((tag, value))
    for run, points in by_run.items():
      tags = tuple(tag for tag, _ in points)
      write = self._scalar_writes.get((run, tags))
      if write is None:
        write = self._scalar_writes[run, tags] = _traced_scalar_write(self._writer_for(run), tags)
      # float32: what tf.summary.scalar stores anyway.
      write(tf.constant([value for _, value in points], tf.float32), step_tensor(step))
      self._writer_for(run).flush()

  def write_samples(self, step: int, samples: np.ndarray, rows: int = 4) -> Optional[str]:
    """Writes the grid (`rows` rows: 4x4 unconditional, one row per class for a conditional
    model) as `samples/step_NNNNNN.png` and TensorBoard image `samples`."""
    if not self._is_chief:
      return None
    grid = images.to_grid(samples, rows=rows)
    path = os.path.join(self._workdir, 'samples', f'step_{step:06d}.png')
    tf.io.gfile.makedirs(os.path.dirname(path))
    images.write_png(path, grid)
    if self._image_write is None:
      self._image_write = _traced_image_write(self._writer, 'samples')
    self._image_write(tf.convert_to_tensor(grid[None]), step_tensor(step))
    self._writer.flush()
    return path

  def close(self) -> None:
    for writer in self._writers.values():
      writer.close()


def step_tensor(step: int) -> tf.Tensor:
  """`step` as an int64 tensor made from a NumPy scalar: a Python int would stay in TensorFlow's
  scalar cache for good, one entry per distinct step (module docstring)."""
  return tf.constant(np.int64(step))


def _traced_scalar_write(writer: tf.summary.SummaryWriter, tags: tuple[str, ...]
                         ) -> _TracedWrite:
  """write(values float32 [len(tags)], step int64): tf.summary.scalar of each tag, traced once
  (module docstring: eager writes keep memory)."""
  @tf.function(autograph=False)
  def write(values: tf.Tensor, step: tf.Tensor) -> None:
    with writer.as_default():
      for index, tag in enumerate(tags):
        tf.summary.scalar(tag, values[index], step=step)
  return write


def _traced_image_write(writer: tf.summary.SummaryWriter, tag: str) -> _TracedWrite:
  """write(images [1, H, W, C] uint8, step int64): tf.summary.image, traced once per shape."""
  @tf.function(autograph=False, reduce_retracing=True)
  def write(images_: tf.Tensor, step: tf.Tensor) -> None:
    with writer.as_default():
      tf.summary.image(tag, images_, step=step)
  return write


def _write_raw(summary) -> None:
  """Writes a summary proto (of the plugins' own builders) to the default writer at step 0."""
  tf.summary.experimental.write_raw_pb(summary.SerializeToString(), step=0)


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

