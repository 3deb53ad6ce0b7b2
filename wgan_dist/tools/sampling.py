"""What `python -m wgan_dist.sample` draws, apart from its command line: the noise stream keyed
by --seed, the slerp of --interpolate, the inputs (noise, labels, grid rows) its flags ask for,
the check of --label, and one generator call. Importable without defining flags.
"""

from typing import Optional

import keras
import numpy as np
import tensorflow as tf

from wgan_dist.data import images
from wgan_dist.algorithm import losses
from wgan_dist.algorithm import random_keys

DEFAULT_GRID = 64
DEFAULT_FRAMES = 10
DEFAULT_PER_CLASS = 8  # Columns of the per-class grid, as in training's sample grid.


def noise(seed: int, num: int, noise_dim: int) -> np.ndarray:
  """num standard-normal noise vectors keyed by `seed` alone."""
  return tf.random.stateless_normal(
      [num, noise_dim], seed=random_keys.key(seed, 0, 0, random_keys.SAMPLE_NOISE)).numpy()


def generate(generator: keras.Model, z: np.ndarray, labels: Optional[np.ndarray]) -> np.ndarray:
  """G(z) or G(z, labels) in inference mode, as a numpy array."""
  return generator(losses.generator_inputs(tf.constant(z), labels), training=False).numpy()


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
