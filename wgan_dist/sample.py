"""Command line: a PNG of generated images from a workdir's latest checkpoint.

  python -m wgan_dist.sample --workdir=runs/mnist                  # 8x8 grid -> W/sample.png
  python -m wgan_dist.sample --workdir=runs/mnist --num=16 --seed=3 --out=grid.png
  python -m wgan_dist.sample --workdir=runs/mnist --interpolate    # 10-frame strip
  python -m wgan_dist.sample --workdir=runs/mnist --ema            # the EMA generator

A class-conditional run (model.num_classes = K > 0) draws one row per class by default, K rows
of --num columns (default 8), column j the same noise vector in every row; --label=k draws
--num images (default 64) of class k alone; --interpolate draws one strip per class, or of
class k alone with --label=k. --label outside [0, K), or given for an unconditional run, is a
one-line error before any work.

  python -m wgan_dist.sample --workdir=runs/mnist_cond              # K x 8: one row per digit
  python -m wgan_dist.sample --workdir=runs/mnist_cond --label=3    # 8x8 grid of threes

The noise is keyed by --seed alone, so the same seed shows the same noise at every checkpoint;
the labels are fixed by the flags (no random draw), so a command always shows the same images
of a checkpoint. --interpolate walks between two noise vectors along the great circle (slerp):
z ~ N(0, I) lies near a sphere of radius sqrt(noise_dim), and a straight line between two such
points passes through norms the generator never saw in training.
"""

import os
from typing import Optional

from wgan_dist import tf_log_level  # pylint: disable=wrong-import-position

tf_log_level.quiet_by_default()  # Before TensorFlow is imported.

import numpy as np  # pylint: disable=wrong-import-position
import tensorflow as tf  # pylint: disable=wrong-import-position
from absl import app  # pylint: disable=wrong-import-position
from absl import flags  # pylint: disable=wrong-import-position

from wgan_dist import images  # pylint: disable=wrong-import-position
from wgan_dist import random_keys  # pylint: disable=wrong-import-position
from wgan_dist import restore  # pylint: disable=wrong-import-position

_WORKDIR = flags.DEFINE_string('workdir', None, 'Work directory of a training run.')
_NUM = flags.DEFINE_integer('num', None, 'Images: default 64 (an 8x8 grid); per class (default '
                            '8) in a conditional run\'s grid without --label; frames (default '
                            '10) with --interpolate.')
_OUT = flags.DEFINE_string('out', None, 'PNG to write; default W/sample.png or '
                           'W/interpolation.png.')
_SEED = flags.DEFINE_integer('seed', 0, 'Seed of the noise.')
_EMA = flags.DEFINE_bool('ema', False, 'Use the EMA generator (needs train.ema_decay > 0).')
_INTERPOLATE = flags.DEFINE_bool('interpolate', False,
                                 'One strip interpolating between two noise vectors (one per '
                                 'class in a conditional run without --label).')
_LABEL = flags.DEFINE_integer('label', None, 'Class-conditional runs: draw this class only, in '
                              '[0, model.num_classes); default one row per class.')
flags.mark_flags_as_required(['workdir'])

DEFAULT_GRID = 64
DEFAULT_FRAMES = 10
DEFAULT_PER_CLASS = 8  # Columns of the per-class grid, as in training's sample grid.


def noise(seed: int, num: int, noise_dim: int) -> np.ndarray:
  """num standard-normal noise vectors keyed by `seed` alone."""
  return tf.random.stateless_normal(
      [num, noise_dim], seed=random_keys.key(seed, 0, 0, random_keys.SAMPLE_NOISE)).numpy()


def generate(generator, z: np.ndarray, labels: Optional[np.ndarray]) -> np.ndarray:
  """G(z) or G(z, labels) in inference mode, as a numpy array."""
  # Both inputs as tensors: Keras refuses a list mixing tensors and arrays.
  inputs = tf.constant(z) if labels is None else [tf.constant(z), tf.constant(labels)]
  return generator(inputs, training=False).numpy()


def slerp(start: np.ndarray, end: np.ndarray, num: int) -> np.ndarray:
  """num points from `start` to `end` (both included) along the great circle between them."""
  fractions = np.linspace(0.0, 1.0, num)[:, None]
  cos_angle = np.dot(start, end) / (np.linalg.norm(start) * np.linalg.norm(end))
  angle = np.arccos(np.clip(cos_angle, -1.0, 1.0))
  if angle < 1e-6:  # (Almost) the same direction: the line is the arc.
    return (1 - fractions) * start + fractions * end
  return (np.sin((1 - fractions) * angle) * start + np.sin(fractions * angle) * end) / np.sin(
      angle)


def label_error(label: Optional[int], num_classes: int) -> Optional[str]:
  """Why `--label` does not fit a run with `num_classes` classes, or None when it does."""
  if label is None:
    return None
  if num_classes == 0:
    return (f'--label={label}: this run is unconditional (model.num_classes=0) and takes no '
            'label; drop --label')
  if not 0 <= label < num_classes:
    return (f'--label={label} is outside [0, {num_classes}) (model.num_classes={num_classes} '
            'for this run)')
  return None


def sample_inputs(*, seed: int, noise_dim: int, num_classes: int, label: Optional[int],
                  num: Optional[int], interpolate: bool
                  ) -> tuple[np.ndarray, Optional[np.ndarray], int]:
  """(noise [N, noise_dim] float32, labels int32 [N] or None, grid rows) for the flags.

  Unconditional: `num` images in the squarest grid, or one interpolation strip. Conditional
  with `label`: the same, every image of that class. Conditional without: one row per class
  (`images.class_rows`), `num` columns of noise (or interpolation frames) shared by the rows.
  """
  per_class_grid = num_classes > 0 and label is None
  if num is None:
    num = DEFAULT_FRAMES if interpolate else (DEFAULT_PER_CLASS if per_class_grid
                                              else DEFAULT_GRID)
  if interpolate:
    start, end = noise(seed, 2, noise_dim)
    z = slerp(start, end, num).astype(np.float32)
  else:
    z = noise(seed, num, noise_dim)
  if per_class_grid:
    z, labels = images.class_rows(z, range(num_classes))
    return z, labels, num_classes
  rows = 1 if interpolate else images.grid_rows(num)
  labels = None if num_classes == 0 else np.full(num, label, np.int32)
  return z, labels, rows


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  workdir = _WORKDIR.value
  interpolate = _INTERPOLATE.value
  num, label = _NUM.value, _LABEL.value
  if num is not None and num < (2 if interpolate else 1):
    raise app.UsageError(f'--num={num}: at least {2 if interpolate else 1}')
  try:
    # The config alone first: a --label that does not fit stops before the model is built.
    num_classes = restore.load_config(workdir).model.num_classes
    error = label_error(label, num_classes)
    if error:
      raise restore.RestoreError(error)
    restored = restore.load_generator(workdir, ema=_EMA.value)
  except restore.RestoreError as error:
    restore.exit_with_error(error)
  z, labels, rows = sample_inputs(seed=_SEED.value, noise_dim=restored.config.model.noise_dim,
                                  num_classes=num_classes, label=label, num=num,
                                  interpolate=interpolate)
  generated = generate(restored.generator, z, labels)
  num = len(z)
  out = _OUT.value or os.path.join(workdir, 'interpolation.png' if interpolate else 'sample.png')
  if os.path.dirname(out):
    tf.io.gfile.makedirs(os.path.dirname(out))
  images.write_png(out, images.to_grid(generated, rows=rows))
  classes = '' if labels is None else (f' of class {label}' if label is not None
                                         else f', one row per class ({num_classes} rows)')
  print(f'{"EMA generator" if restored.ema else "Generator"} at step {restored.step} '
        f'({restored.checkpoint}): {num} images{classes} -> {out}')


if __name__ == '__main__':
  app.run(main)
