"""Command line: a PNG of generated images from a workdir's latest checkpoint.

  python -m wgan_dist.sample --workdir=runs/mnist                  # 8x8 grid -> W/sample.png
  python -m wgan_dist.sample --workdir=runs/mnist --num=16 --seed=3 --out=grid.png
  python -m wgan_dist.sample --workdir=runs/mnist --interpolate    # 10-frame strip
  python -m wgan_dist.sample --workdir=runs/mnist --ema            # the EMA generator

The noise is keyed by --seed alone, so the same seed shows the same noise at every checkpoint.
--interpolate walks between two noise vectors along the great circle (slerp): z ~ N(0, I) lies
near a sphere of radius sqrt(noise_dim), and a straight line between two such points passes
through norms the generator never saw in training.
"""

import os

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
_NUM = flags.DEFINE_integer('num', None, 'Images: default 64 (an 8x8 grid), or 10 frames with '
                            '--interpolate.')
_OUT = flags.DEFINE_string('out', None, 'PNG to write; default W/sample.png or '
                           'W/interpolation.png.')
_SEED = flags.DEFINE_integer('seed', 0, 'Seed of the noise.')
_EMA = flags.DEFINE_bool('ema', False, 'Use the EMA generator (needs train.ema_decay > 0).')
_INTERPOLATE = flags.DEFINE_bool('interpolate', False,
                                 'One strip interpolating between two noise vectors.')
flags.mark_flags_as_required(['workdir'])

DEFAULT_GRID = 64
DEFAULT_FRAMES = 10


def noise(seed: int, num: int, noise_dim: int) -> np.ndarray:
  """num standard-normal noise vectors keyed by `seed` alone."""
  return tf.random.stateless_normal(
      [num, noise_dim], seed=random_keys.key(seed, 0, 0, random_keys.SAMPLE_NOISE)).numpy()


def slerp(start: np.ndarray, end: np.ndarray, num: int) -> np.ndarray:
  """num points from `start` to `end` (both included) along the great circle between them."""
  fractions = np.linspace(0.0, 1.0, num)[:, None]
  cos_angle = np.dot(start, end) / (np.linalg.norm(start) * np.linalg.norm(end))
  angle = np.arccos(np.clip(cos_angle, -1.0, 1.0))
  if angle < 1e-6:  # (Almost) the same direction: the line is the arc.
    return (1 - fractions) * start + fractions * end
  return (np.sin((1 - fractions) * angle) * start + np.sin(fractions * angle) * end) / np.sin(
      angle)


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  workdir = _WORKDIR.value
  interpolate = _INTERPOLATE.value
  num = _NUM.value if _NUM.value is not None else (
      DEFAULT_FRAMES if interpolate else DEFAULT_GRID)
  if num < (2 if interpolate else 1):
    raise app.UsageError(f'--num={num}: at least {2 if interpolate else 1}')
  try:
    restored = restore.load_generator(workdir, ema=_EMA.value)
  except restore.RestoreError as error:
    restore.exit_with_error(error)
  noise_dim = restored.config.model.noise_dim
  if interpolate:
    start, end = noise(_SEED.value, 2, noise_dim)
    z = slerp(start, end, num).astype(np.float32)
    rows = 1
  else:
    z = noise(_SEED.value, num, noise_dim)
    rows = images.grid_rows(num)
  generated = restored.generator(z, training=False).numpy()
  out = _OUT.value or os.path.join(workdir, 'interpolation.png' if interpolate else 'sample.png')
  if os.path.dirname(out):
    tf.io.gfile.makedirs(os.path.dirname(out))
  images.write_png(out, images.to_grid(generated, rows=rows))
  print(f'{"EMA generator" if restored.ema else "Generator"} at step {restored.step} '
        f'({restored.checkpoint}): {num} images -> {out}')


if __name__ == '__main__':
  app.run(main)
